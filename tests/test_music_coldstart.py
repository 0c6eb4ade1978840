"""Cold start: late-released items in the synthetic data, cold-only metrics equal to a per-user loop, and
model=content scoring items nobody played in training where pop and ALS cannot."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from airush.errors import ConfigError
from airush.music.data.synthetic import SyntheticPlays
from airush.music.metrics import full_ranking_metrics
from airush.music.split import global_temporal_split, split_interactions
from airush.music.task import cold_start_metrics

from conftest import SMALL

KS = [3, 5, 10]


def looped_cold_metrics(scores, masked, test, seen_train, ks):
    """Recall/NDCG@K per user the slow way: sort unmasked items by (-score, id), truth = cold test items."""
    cold = set(np.flatnonzero(seen_train.toarray().sum(axis=0) == 0))
    values = {f"cold_{m}_at_{k}": [] for m in ("recall", "ndcg") for k in ks}
    for user in range(test.shape[0]):
        truth = {int(i) for i in test[user].indices} & cold
        if not truth:
            continue
        banned = set(masked[user].indices)
        ranked = sorted(
            (i for i in range(test.shape[1]) if i not in banned), key=lambda i: (-scores[user, i], i)
        )
        for k in ks:
            hits = [ranked[j] in truth for j in range(min(k, len(ranked)))]
            dcg = sum(1 / np.log2(j + 2) for j, hit in enumerate(hits) if hit)
            idcg = sum(1 / np.log2(j + 2) for j in range(min(len(truth), k)))
            values[f"cold_recall_at_{k}"].append(sum(hits) / len(truth))
            values[f"cold_ndcg_at_{k}"].append(dcg / idcg)
    return {name: float(np.mean(v)) for name, v in values.items()}


def test_cold_metrics_cover_only_cold_items_and_match_a_loop():
    rng = np.random.default_rng(4)
    n_users, n_items = 40, 30
    train = sp.csr_matrix((rng.random((n_users, n_items)) < 0.15) * (np.arange(n_items) < 22))  # 22..29 cold
    valid = sp.csr_matrix((rng.random((n_users, n_items)) < 0.05) & (train.toarray() == 0))
    test = sp.csr_matrix((rng.random((n_users, n_items)) < 0.12) & (train + valid).toarray().__eq__(0))
    scores = rng.integers(0, 6, (n_users, n_items)).astype(np.float32)  # many ties: lower id first
    masked = (train + valid).tocsr()
    masked.data[:] = 1.0
    got = cold_start_metrics(lambda users: scores[users], masked, test.astype(np.float32), train, KS, batch=7)
    cold_cells = test.toarray()[:, 22:]
    assert got["cold_test_interactions"] == cold_cells.sum()
    assert got["cold_test_items"] == (cold_cells.sum(axis=0) > 0).sum()
    assert got["cold_test_users"] == (cold_cells.sum(axis=1) > 0).sum()
    expected = looped_cold_metrics(scores, masked, test, train, KS)
    assert set(expected) == {k for k in got if k.startswith(("cold_recall", "cold_ndcg"))}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    # the truth really is cut down: over all test items (warm ones too) the same ranking scores differently
    everything = full_ranking_metrics(lambda users: scores[users], masked, test, KS)
    assert everything["users_evaluated"] > got["cold_test_users"]
    assert all(0 < got[f"cold_recall_at_{k}"] != everything[f"recall_at_{k}"] for k in KS)


def test_without_cold_test_items_the_cold_metrics_are_left_out():
    train = sp.csr_matrix(np.eye(4, dtype=np.float32) + np.eye(4, k=1, dtype=np.float32))
    test = sp.csr_matrix(np.eye(4, k=-1, dtype=np.float32))  # items 0..2, all played in train
    got = cold_start_metrics(lambda u: np.zeros((len(u), 4), np.float32), train, test, train, [10], 10)
    assert got == {"cold_test_items": 0.0, "cold_test_interactions": 0.0}


SMALL_DATA = {"n_users": 300, "n_items": 400, "n_artists": 40}


def test_synthetic_new_items_are_the_last_ids_and_only_played_late():
    generator = SyntheticPlays(**SMALL_DATA, new_item_share=0.05, new_item_window=0.05)
    plays = generator.load(seed=5)
    inter = plays.interactions
    n_old = 400 - generator.n_new_items
    assert generator.n_new_items == 20 and plays.n_items == 400 and len(plays.items) == 400
    new = inter["item"] >= n_old
    assert inter.loc[new, "item"].nunique() >= 10
    assert not inter.duplicated(["user", "item"]).any()
    release_floor = np.quantile(inter.loc[~new, "timestamp"], 0.95)
    assert inter.loc[new, "timestamp"].min() >= np.floor(release_floor)
    # a temporal 80/10/10 split holds them in test only
    parts = global_temporal_split(inter, {"train": 0.8, "valid": 0.1, "test": 0.1})
    assert (parts["train"]["item"] < n_old).all() and (parts["valid"]["item"] < n_old).all()
    assert (parts["test"]["item"] >= n_old).sum() == new.sum()
    # metadata: existing artists, a new album each, released in the year of (or before) their first play
    items = plays.items.set_index("item")
    new_items = items.loc[n_old:]
    assert new_items["artist"].between(0, 39).all()
    assert not set(new_items["album"]) & set(items.loc[: n_old - 1, "album"])
    first_play_year = pd.to_datetime(inter[new].groupby("item")["timestamp"].min(), unit="s").dt.year
    assert (new_items.loc[first_play_year.index, "year"] <= first_play_year).all()


def test_new_items_come_on_top_of_the_catalogue_without_them():
    """Their own random stream: the first 380 items and their plays are those of a 380-item run without."""
    with_new = SyntheticPlays(**(SMALL_DATA | {"new_item_share": 0.05})).load(seed=5)
    without = SyntheticPlays(**(SMALL_DATA | {"n_items": 380, "new_item_share": 0.0})).load(seed=5)
    old = with_new.interactions[with_new.interactions["item"] < 380].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, without.interactions)
    pd.testing.assert_frame_equal(with_new.items.iloc[:380], without.items)


def test_random_split_leaves_some_new_items_without_training_plays():
    generator = SyntheticPlays()  # the default data
    inter = generator.load(seed=42).interactions
    parts = split_interactions(
        inter, {"method": "random", "ratios": {"train": 0.8, "valid": 0.1, "test": 0.1}}, seed=42
    )
    trained = set(parts["train"]["item"])
    cold_test = parts["test"][~parts["test"]["item"].isin(trained)]
    assert len(cold_test) > 0
    assert (cold_test["item"] >= generator.n_items - generator.n_new_items).all()


@pytest.mark.parametrize(
    "settings", [{"new_item_share": 1.0}, {"new_item_share": -0.1}, {"new_item_window": 0}]
)
def test_bad_new_item_settings_are_a_config_error(settings):
    with pytest.raises(ConfigError, match=r"new_item_(share|window) must be in"):
        SyntheticPlays(**SMALL_DATA, **settings).load(seed=0)


@pytest.mark.slow
def test_content_run_logs_cold_metrics(compose_cfg, tracking_uri):
    from airush.runner import run

    cfg = compose_cfg(["task=music", "model=content", "task.split.method=temporal", *SMALL["music"]])
    metrics = run(cfg)
    assert metrics["cold_test_interactions"] > 0 and metrics["cold_test_items"] > 0
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    for k in cfg.task.ks:
        for name in (f"cold_recall_at_{k}", f"cold_ndcg_at_{k}"):
            assert found.data.metrics[name] == pytest.approx(metrics[name])
    assert 0.0 < metrics["cold_recall_at_50"] <= 1.0
    assert int(found.data.params["dataset.metadata_tokens"]) > 0


@pytest.mark.slow
def test_content_beats_pop_and_als_on_cold_items_of_the_default_data():
    """Temporal split of the default synthetic data: every test play of a new release is a cold one."""
    from hydra import compose, initialize_config_module
    from hydra.utils import get_class

    from airush.music import task
    from airush.runner import model_kwargs

    with initialize_config_module("airush.conf", version_base="1.3"):
        cfgs = {
            m: compose("config", overrides=["task=music", f"model={m}", "task.split.method=temporal"])
            for m in ("content", "pop", "als")
        }
    splits = task.split(task.prepare(cfgs["pop"], None), cfgs["pop"])
    masked = (splits.seen_train + splits.valid).tocsr()
    cold = {}
    for name, cfg in cfgs.items():
        model = get_class(cfg.model._target_)(**model_kwargs(cfg))
        if model.uses_metadata:
            model.fit(splits.train, item_features=splits.item_features)
        else:
            model.fit(splits.train)
        cold[name] = cold_start_metrics(model.score, masked, splits.test, splits.seen_train, [10, 50], 2048)
    assert cold["content"]["cold_test_interactions"] > 300
    for k in (10, 50):
        assert cold["content"][f"cold_recall_at_{k}"] > cold["pop"][f"cold_recall_at_{k}"]
        assert cold["content"][f"cold_recall_at_{k}"] > cold["als"][f"cold_recall_at_{k}"]
