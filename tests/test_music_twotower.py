"""model=twotower: DDP ranks on gloo agree, identical runs give identical metrics, cold items ranked by their
metadata, save/load round trip, and the CLI with two CPU ranks recording cold-start metrics in MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from airush.compute.devices import DevicePlan
from airush.errors import ConfigError
from airush.music.data import Plays
from airush.music.data.synthetic import SyntheticPlays
from airush.music.metadata import item_metadata
from airush.music.models.twotower import TwoTowerRecommender

from conftest import SMALL, run_airush

FAST = {"dim": 16, "hidden": 32, "batch_size": 256, "learning_rate": 0.01}
GLOO2 = DevicePlan("cpu", 2, "gloo", None)


@pytest.fixture(scope="module")
def small():
    """SMALL synthetic plays (300 users x 400 items): log-play weights, 10% of each user's plays as valid."""
    plays = SyntheticPlays(n_users=300, n_items=400, n_artists=40).load(seed=0)
    inter = plays.interactions
    held = np.random.default_rng(0).random(len(inter)) < 0.1
    shape = (plays.n_users, plays.n_items)

    def csr(rows, values):
        matrix = sp.csr_matrix((values, (inter["user"][rows], inter["item"][rows])), shape=shape)
        matrix.sort_indices()
        return matrix.astype(np.float32)

    train = csr(~held, np.log1p(inter["plays"][~held].to_numpy()))
    valid = csr(held, np.ones(int(held.sum())))
    return train, valid, item_metadata(plays).matrix


@pytest.mark.slow
def test_two_gloo_ranks_train_in_sync_and_the_loss_falls(small):
    train, valid, features = small
    model = TwoTowerRecommender(**FAST, max_epochs=4, patience=10, seed=1)
    model.fit(train, item_features=features, valid=valid, devices=GLOO2)

    assert len(model.rank_checksums_) == 2
    assert model.rank_checksums_[0] == model.rank_checksums_[1]  # DDP kept both ranks' weights identical
    loss = model.history_["train_loss"]
    assert sorted(loss) == [1, 2, 3, 4]
    assert loss[4] < loss[1]
    assert set(model.history_) == {"train_loss", "valid_ndcg_at_10", "valid_recall_at_10"}
    assert model.best_epoch_ == max(
        model.history_["valid_ndcg_at_10"], key=model.history_["valid_ndcg_at_10"].get
    )
    scores = model.score(np.arange(5))
    assert scores.shape == (5, train.shape[1]) and scores.dtype == np.float32 and np.isfinite(scores).all()


@pytest.mark.slow
def test_same_command_twice_gives_identical_metrics(compose_cfg):
    """One rank on CPU: seeded initialisation, shuffles and dropout masks, deterministic kernels."""
    from airush.runner import run

    overrides = ["task=music", "model=twotower", *SMALL["music"], "model.max_epochs=3", "model.dim=16"]
    first = run(compose_cfg(overrides))
    second = run(compose_cfg(overrides))
    assert first == second
    assert 0 < first["ndcg_at_10"] <= 1


def test_save_load_round_trip_gives_identical_scores(small, tmp_path: Path):
    train, valid, features = small
    model = TwoTowerRecommender(**FAST, max_epochs=2, seed=3).fit(train, item_features=features, valid=valid)
    model.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "meta.json",
        "twotower.pt",
        "vectors.npz",
    ]
    loaded = TwoTowerRecommender.load(tmp_path / "model")
    users = np.arange(train.shape[0])
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    for name, tensor in model.network_.state_dict().items():
        assert loaded.network_.state_dict()[name].equal(tensor), name
    top = loaded.recommend(users[:4], 10, exclude=train)
    assert not train[users[:4]][np.arange(4)[:, None], top].toarray().any()


def artist_catalogue(n_artists=6, warm=10, cold=2, users_per_artist=20, seed=0):
    """Each artist: `warm` items with plays, then `cold` items nobody plays, all in the artist's own genre
    (artist % 3) and album; each user plays 6 tracks of one artist and one random other track."""
    rng = np.random.default_rng(seed)
    per_artist = warm + cold
    artist = np.repeat(np.arange(n_artists), per_artist)
    items = pd.DataFrame(
        {
            "item": np.arange(len(artist)),
            "artist": artist,
            "album": artist * 10 + (np.arange(len(artist)) % per_artist >= warm),  # cold items: a new album
            "genre": artist % 3,
            "year": 1990 + artist,
        }
    )
    rows = []
    for user in range(n_artists * users_per_artist):
        liked = user // users_per_artist
        own = liked * per_artist + rng.choice(warm, 6, replace=False)
        other = rng.choice(np.flatnonzero((artist != liked) & (np.arange(len(artist)) % per_artist < warm)))
        rows += [(user, int(i), 1.0 + rng.poisson(3.0), -1) for i in [*own, other]]
    inter = pd.DataFrame(rows, columns=["user", "item", "plays", "timestamp"])
    plays = Plays(inter, items, np.arange(n_artists * users_per_artist), np.arange(len(artist)))
    train = sp.csr_matrix(
        (np.log1p(inter["plays"]), (inter["user"], inter["item"])), shape=(plays.n_users, plays.n_items)
    )
    cold_items = np.flatnonzero(np.arange(len(artist)) % per_artist >= warm)
    return train.astype(np.float32), item_metadata(plays).matrix, artist, cold_items, users_per_artist


def test_cold_items_are_scored_from_metadata_and_the_users_artist_ranks_first():
    train, features, artist, cold, per_artist = artist_catalogue()
    assert not train[:, cold].nnz  # truly cold: nobody played them in training
    model = TwoTowerRecommender(**FAST, max_epochs=15, seed=0).fit(train, item_features=features)

    assert not model.warm_items_[cold].any() and model.warm_items_.sum() == train.shape[1] - len(cold)
    users = np.arange(train.shape[0])
    scores = model.score(users)[:, cold]
    assert np.isfinite(scores).all()
    assert scores.std(axis=1).min() > 0  # not one constant for every cold item
    liked = users // per_artist
    own = artist[cold][None, :] == liked[:, None]
    # every user: both cold tracks of their artist above all ten cold tracks of the other artists
    assert (np.where(own, scores, np.inf).min(axis=1) > np.where(own, -np.inf, scores).max(axis=1)).all()


def test_without_metadata_it_is_an_id_model_and_cold_items_tie():
    """No tokens at all (e.g. data=plays without an items file): still trains; cold items have nothing to
    tell them apart, so they share one score per user."""
    train = artist_catalogue()[0]
    cold = np.flatnonzero(np.asarray(train.sum(axis=0)).ravel() == 0)
    empty = sp.csr_matrix((train.shape[1], 0), dtype=np.float32)
    model = TwoTowerRecommender(**FAST, max_epochs=3, seed=0).fit(train, item_features=empty)
    scores = model.score(np.arange(train.shape[0]))
    assert np.isfinite(scores).all()
    # one score per user up to float32 rounding: the cold items' vectors are equal, but a matmul may sum the
    # columns of one row in different orders on other CPUs (1.9e-06 apart seen on an AMD EPYC), so the
    # bound is rounding-sized, far below the spread of the other scores
    scale = np.abs(scores).max()
    assert np.ptp(scores[:, cold], axis=1).max() <= 1e-5 * scale
    assert scores.std(axis=1).min() > 1e-2 * scale


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"id_dropout": 1.0}, "model.id_dropout must be in [0, 1), got 1.0"),
        ({"history_dropout": -0.1}, "model.history_dropout must be in [0, 1), got -0.1"),
        ({"dim": 0}, "model.dim must be >= 1, got 0"),
        ({"hidden": -1}, "model.hidden must be >= 0 (0 = no MLP), got -1"),
    ],
)
def test_impossible_settings_are_one_line_config_errors(small, settings, message):
    train, _, features = small
    with pytest.raises(ConfigError) as err:
        TwoTowerRecommender(**settings).fit(train, item_features=features)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_importing_the_model_does_not_import_torch():
    code = "import sys, airush.music.models.twotower; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


@pytest.mark.slow
def test_cli_with_two_cpu_ranks_records_one_run_with_cold_metrics(tmp_path: Path, tracking_uri: str):
    args = [
        "task=music",
        "model=twotower",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "task.split.method=temporal",  # late releases only in test: cold items to report on
        "model.max_epochs=4",
        *SMALL["music"],
    ]
    result = run_airush(args, cwd=tmp_path, tracking_uri=tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "outputs" / "runs").glob("*/*"))) == 1
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    assert found.info.status == "FINISHED"
    metrics = found.data.metrics
    assert metrics["cold_test_interactions"] > 0
    assert np.isfinite([metrics[f"cold_recall_at_{k}"] for k in (10, 20, 50)]).all()
    assert found.data.params["trainer.devices"] == "2"
    curve = client.get_metric_history(found.info.run_id, "train_loss")
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(range(1, len(curve) + 1))
