"""Balabit Mouse Dynamics Challenge: the published folder loads as documented, and per-account
verification runs end to end (reduced to a few accounts so CI stays fast)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from airush.abuse.data.balabit import BalabitMouse
from airush.errors import DataError
from test_mlflow_models import model_files

from conftest import SHARED_DATA, run_airush

BALABIT = SHARED_DATA / "balabit"
needs_balabit = pytest.mark.skipif(not BALABIT.is_dir(), reason=f"Balabit data not found at {BALABIT}")


@pytest.mark.slow
@needs_balabit
def test_balabit_loads_the_published_layout_and_caches_it(tmp_path):
    source = BalabitMouse(str(BALABIT), cache_dir=str(tmp_path / "cache"), users=[7, 9])
    log = source.load()
    sessions = log.sessions
    assert set(sessions["user_id"]) == {7, 9}
    assert set(sessions["part"]) == {"train", "test"}
    assert (sessions.loc[sessions["part"] == "train", "label"] == 0).all()
    assert set(sessions["kind"]) == {"owner", "intruder"}
    events = log.events
    assert events["x"].max() < 16384 and events["y"].max() < 16384  # 65535 sentinels dropped
    assert events.groupby("session_id")["t_ms"].apply(lambda t: t.is_monotonic_increasing).all()
    assert set(events["event"].unique()) <= {"move", "drag", "button_down", "button_up", "wheel"}
    cached = BalabitMouse(str(BALABIT), cache_dir=str(tmp_path / "cache"), users=[7, 9]).load()
    assert cached.events.equals(events) and cached.sessions.equals(sessions)
    assert len(list((tmp_path / "cache").iterdir())) == 1


@pytest.mark.slow
@needs_balabit
def test_balabit_public_label_counts():
    sessions = BalabitMouse(str(BALABIT)).load().sessions
    assert (sessions["part"] == "train").sum() == 65
    test = sessions[sessions["part"] == "test"]
    assert len(test) == 816 and test["label"].sum() == 405


def test_not_a_balabit_folder_is_one_line(tmp_path):
    with pytest.raises(DataError, match="not a Balabit folder: training_files missing"):
        BalabitMouse(str(tmp_path)).load()


@needs_balabit
@pytest.mark.slow
def test_account_verification_on_a_few_accounts_through_the_cli(tmp_path, tracking_uri):
    args = [
        "data=balabit",
        f"data.root={BALABIT}",
        "data.users=[7,9,12,15,16,20]",  # with fewer, each model sees too few kinds of impostor
        "data.max_test_sessions=40",
        "features=actions",
        "task.scope=account",
        "model.num_boost_round=200",
        "model.num_threads=1",  # OpenMP threads spin when the CPU is shared; one is faster there
    ]
    result = run_airush(args, tmp_path, tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    assert found.data.metrics["roc_auc"] > 0.9
    assert {"eer", "recall_at_1pct_fpr", "recall_intruder"} <= set(found.data.metrics)
    models = model_files(client, found.info.run_id, "model/data/model")
    assert {f"model/data/model/{name}" for name in ("user7", "user9", "user20", "accounts.json")} <= models


def test_account_scope_needs_data_with_its_own_parts(compose_cfg):
    from airush.errors import ConfigError
    from airush.runner import run

    from conftest import SMALL

    with pytest.raises(ConfigError, match=r"task\.scope=account needs data with its own train/test parts"):
        run(compose_cfg(["task.scope=account", "features=mouse", *SMALL["abuse"]]))


def test_account_verifier_saves_and_loads_without_knowing_its_model_class(tmp_path):
    from airush.abuse.models.lgbm import LightGBMDetector
    from airush.abuse.verification import AccountVerifier

    rng = np.random.default_rng(0)
    account = np.repeat([1, 2, 3], 200)
    X = pd.DataFrame({"a": rng.normal(account, 1.0), "b": rng.normal(-account, 1.0)})
    template = LightGBMDetector(num_boost_round=30, early_stopping_rounds=5, num_threads=1)
    fitted = AccountVerifier(template, seed=0).fit(X, account)
    session = np.arange(len(X)) // 10
    fitted.save(tmp_path / "model")
    loaded = AccountVerifier.load(tmp_path / "model")
    pd.testing.assert_series_equal(
        loaded.score_sessions(X, account, session), fitted.score_sessions(X, account, session)
    )


def test_action_table_cuts_sessions_into_published_actions():
    from airush.abuse.data import EventLog
    from airush.abuse.verification import action_table
    from test_abuse_features import HANDMADE, mouse_events

    events = mouse_events(HANDMADE)
    sessions = pd.DataFrame({"session_id": [2, 1], "user_id": [5, 5], "label": [0, 0]})  # any order
    table, session_of = action_table(EventLog(events, sessions), pause_ms=10_000, min_events=4)
    # actions of >= 4 rows: session 1's first MM, its first PC, its DD; session 2's MM (right click inside)
    assert session_of.tolist() == [1, 1, 1, 2]
    assert table.groupby("session_id").size().tolist() == [4, 4, 4, 4]
    assert table["session_id"].is_monotonic_increasing
    assert table.groupby("session_id")["t_ms"].first().tolist() == [0, 20_000, 20_400, 0]
    assert "wheel" not in set(table["event"])


def test_session_score_is_the_mean_log_odds_of_its_actions():
    from airush.abuse.verification import AccountVerifier

    class Fixed:  # a fitted model whose P(not the owner) is a column of X
        def predict_proba(self, X):
            return X["p"].to_numpy()

    verifier = AccountVerifier(template=None)
    verifier.models_ = {1: Fixed(), 2: Fixed()}
    X = pd.DataFrame({"p": [0.9, 0.2, 0.6, 0.5, 1.0]})
    got = verifier.score_sessions(
        X, account=np.array([1, 1, 2, 2, 2]), session=np.array([10, 10, 11, 11, 11])
    )
    logit = np.log(X["p"].clip(1e-6, 1 - 1e-6) / (1 - X["p"].clip(1e-6, 1 - 1e-6)))
    expected = 1 / (1 + np.exp(-np.array([logit[:2].mean(), logit[2:].mean()])))
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12)
    assert got.index.tolist() == [10, 11]
    assert got[10] > 0.5  # 0.9 and 0.2: more evidence against the owner than for
