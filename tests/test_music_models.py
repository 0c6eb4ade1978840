"""Music recommenders itemknn, ease and bpr: the model protocol, reference formulas, and beating popularity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from airush.errors import ConfigError
from airush.music.data.synthetic import SyntheticPlays
from airush.music.metrics import full_ranking_metrics
from airush.music.models.bpr import BPRRecommender
from airush.music.models.ease import EASERecommender
from airush.music.models.itemknn import ItemKNNRecommender
from airush.music.models.pop import PopularityRecommender

# small settings so each fit on the 300 x 400 data takes well under a second
FAST = {
    "itemknn": (ItemKNNRecommender, {"neighbours": 20}),
    "itemknn_bm25": (ItemKNNRecommender, {"neighbours": 20, "similarity": "bm25"}),
    "ease": (EASERecommender, {"l2": 50.0}),
    "bpr": (BPRRecommender, {"factors": 16, "iterations": 20, "num_threads": 1}),
}


@pytest.fixture(scope="module")
def train() -> sp.csr_matrix:
    plays = SyntheticPlays(n_users=300, n_items=400, n_artists=40).load(seed=0)
    inter = plays.interactions
    counts = sp.csr_matrix(
        (inter["plays"].to_numpy(np.float32), (inter["user"].to_numpy(), inter["item"].to_numpy())),
        shape=(plays.n_users, plays.n_items),
    )  # repeated (user, item) rows add up
    counts.data = np.log1p(counts.data)
    counts.sort_indices()
    return counts


def tiny(seed: int, shape=(30, 25)) -> sp.csr_matrix:
    """A small matrix with continuous weights, so similarities do not tie."""
    matrix = sp.random(*shape, density=0.2, random_state=seed, format="csr", dtype=np.float32)
    matrix.data = np.random.default_rng(seed).uniform(0.5, 3.0, matrix.nnz).astype(np.float32)
    return matrix


@pytest.mark.parametrize("name", list(FAST))
def test_scores_shape_dtype_and_save_load_round_trip(name, train, tmp_path):
    cls, kwargs = FAST[name]
    model = cls(**kwargs, seed=0).fit(train)
    users = np.array([0, 5, 17, 299])
    scores = model.score(users)
    assert scores.shape == (len(users), train.shape[1])
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()
    model.save(tmp_path / "model")
    assert not list((tmp_path / "model").glob("*.pkl"))
    loaded = cls.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.score(users), scores)
    top = loaded.recommend(users, 10, exclude=train)
    assert top.shape == (len(users), 10)
    assert not train[users][np.arange(len(users))[:, None], top].toarray().any()  # played items excluded


@pytest.mark.parametrize("name", list(FAST))
def test_same_seed_gives_identical_scores(name, train):
    """bpr too, with num_threads=1: the seed fixes its initial factors and its one sampler thread."""
    cls, kwargs = FAST[name]
    users = np.arange(train.shape[0])
    first = cls(**kwargs, seed=7).fit(train).score(users)
    np.testing.assert_array_equal(cls(**kwargs, seed=7).fit(train).score(users), first)


def test_fit_leaves_the_training_matrix_alone(train):
    before = train.copy()
    for cls, kwargs in FAST.values():
        cls(**kwargs).fit(train)
    assert (train != before).nnz == 0


def test_bpr_records_per_epoch_curves_and_advances_the_bar(train):
    class Bar:
        steps = 0

        def advance(self, n: int = 1) -> None:
            self.steps += n

    bar = Bar()
    model = BPRRecommender(factors=8, iterations=5).fit(train, bar=bar)
    assert bar.steps == 5
    assert sorted(model.history_["train_auc"]) == [1, 2, 3, 4, 5]
    assert all(0.0 <= v <= 1.0 for v in model.history_["train_auc"].values())


@pytest.mark.parametrize("shrinkage", [0.0, 3.0])
def test_itemknn_similarity_matches_dense_top_k(shrinkage, monkeypatch):
    from sklearn.metrics.pairwise import cosine_similarity

    import airush.music.models.itemknn as itemknn

    x, k = tiny(1), 4
    items = x.toarray().T.astype(np.float64)
    if shrinkage == 0:
        full = cosine_similarity(items)
    else:
        norms = np.linalg.norm(items, axis=1)
        full = items @ items.T / (np.outer(norms, norms) + shrinkage)
    np.fill_diagonal(full, 0.0)
    expected = np.zeros_like(full)
    for i, row in enumerate(full):
        top = np.argsort(-row, kind="stable")[:k]
        top = top[row[top] > 0]
        expected[i, top] = row[top]
    for block_pairs in (itemknn.BLOCK_PAIRS, 7):  # one block, and many blocks of one or two items
        monkeypatch.setattr(itemknn, "BLOCK_PAIRS", block_pairs)
        model = ItemKNNRecommender(neighbours=k, shrinkage=shrinkage).fit(x)
        np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-5, atol=1e-7)
        users = np.arange(x.shape[0])
        np.testing.assert_allclose(model.score(users), x.toarray() @ expected, rtol=1e-5, atol=1e-6)


def test_itemknn_bm25_weights_match_implicit():
    from implicit.nearest_neighbours import bm25_weight as implicit_bm25

    from airush.music.models.itemknn import bm25_weight

    x = tiny(2)
    expected = implicit_bm25(x.T, K1=1.2, B=0.75).T.toarray()
    np.testing.assert_allclose(bm25_weight(x, 1.2, 0.75).toarray(), expected, rtol=1e-5, atol=1e-6)


def test_itemknn_unknown_similarity_is_a_config_error(train):
    with pytest.raises(ConfigError, match="similarity 'jaccard' unknown"):
        ItemKNNRecommender(similarity="jaccard").fit(train)


@pytest.mark.parametrize("binarize", [True, False])
def test_ease_matches_closed_form(binarize):
    x, l2 = tiny(3, shape=(20, 12)), 3.0
    dense = x.toarray().astype(np.float64)
    if binarize:
        dense = (dense > 0).astype(np.float64)
    p = np.linalg.inv(dense.T @ dense + l2 * np.eye(12))
    b = np.eye(12) - p / np.diag(p)[None, :]  # B = I - P·diag(1/diag(P))
    model = EASERecommender(l2=l2, binarize=binarize).fit(x)
    assert model.weights_.dtype == np.float32
    np.testing.assert_allclose(np.diag(b), 0.0, atol=1e-12)
    np.testing.assert_allclose(model.weights_, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(20)), dense @ b, rtol=1e-4, atol=1e-5)


def test_ease_refuses_more_items_than_max_items(train):
    with pytest.raises(ConfigError, match=r"400 items > model\.max_items=399") as error:
        EASERecommender(max_items=399).fit(train)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def default_splits():
    """The default music setting (synthetic data at its default size, seed 42) split as `airush` does."""
    from hydra import compose, initialize_config_module

    from airush.music import task

    with initialize_config_module("airush.conf", version_base="1.3"):
        cfg = compose("config", overrides=["task=music"])
    return task.split(task.prepare(cfg, None), cfg)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["itemknn", "ease", "bpr"])
def test_beats_popularity_on_default_synthetic_data(name, default_splits):
    """Default yaml hyperparameters, the seed the CLI passes, test NDCG@10 / Recall@10 with train+valid masked."""
    from hydra import compose, initialize_config_module
    from hydra.utils import get_class

    from airush.runner import model_kwargs

    with initialize_config_module("airush.conf", version_base="1.3"):
        cfg = compose("config", overrides=["task=music", f"model={name}"])
    model = get_class(cfg.model._target_)(**model_kwargs(cfg)).fit(default_splits.train)
    masked = (default_splits.seen_train + default_splits.valid).tocsr()
    pop = PopularityRecommender().fit(default_splits.train)
    ours, base = (full_ranking_metrics(m.score, masked, default_splits.test, [10]) for m in (model, pop))
    assert ours["ndcg_at_10"] > 1.2 * base["ndcg_at_10"]
    assert ours["recall_at_10"] > 1.1 * base["recall_at_10"]
