"""Train on one data set, test on another (issue 11, point 3): in session scope the sessions a `part` column
marks test are exactly the test split, and `task.test_data` (a second data config, `+data@task.test_data=...`)
makes every session of another data set the test split. A test set of humans only (real users, no bots)
reports the metrics it defines (false-positive and flag rates, score quantiles), never a NaN, and is not
ranked by a ROC-AUC it cannot have."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from airush.abuse import task as abuse
from airush.abuse.data import EventLog
from airush.abuse.data.synthetic import SyntheticSessions
from airush.errors import ConfigError, DataError
from airush.records.leaderboard import metric_value
from test_abuse_events import save, written

from conftest import SHARED_DATA, SMALL, run_airush

BALABIT = SHARED_DATA / "balabit"
needs_balabit = pytest.mark.skipif(not BALABIT.is_dir(), reason=f"Balabit data not found at {BALABIT}")
UNDEFINED_WITH_ONE_CLASS = {"roc_auc", "pr_auc", "f1", "precision", "recall", "eer", "recall_at_1pct_fpr"}


def split_sessions(sessions: pd.DataFrame, cfg):
    """`abuse.split` on these sessions, with one stand-in feature row per session (the split reads labels)."""
    features = pd.DataFrame({"f": np.arange(len(sessions), dtype=np.float64)})
    unit = sessions["session_id"].to_numpy()
    prepared = abuse.PreparedSessions(EventLog(pd.DataFrame(), sessions), features, unit, "", {})
    return abuse.split(prepared, cfg)


def with_parts(sessions: pd.DataFrame, test_users) -> pd.DataFrame:
    return sessions.assign(part=np.where(sessions["user_id"].isin(test_users), "test", "train"))


# --- the part column, scope=session ------------------------------------------------------------------------


def test_part_test_sessions_are_exactly_the_test_split_in_session_scope(compose_cfg):
    cfg = compose_cfg(SMALL["abuse"])
    sessions = instantiate(cfg.data).load(seed=int(cfg.seed)).sessions
    bot_users = np.unique(sessions.loc[sessions["label"] == 1, "user_id"])
    human_users = np.setdiff1d(sessions["user_id"].unique(), bot_users)
    # the data's own test set: a quarter of each class's accounts, far from the 15% share of task.split
    test_users = np.concatenate([bot_users[::4], human_users[::4]])
    sessions = with_parts(sessions, test_users)
    splits = split_sessions(sessions, cfg)
    marked = sessions.loc[sessions["part"] == "test", "session_id"].to_numpy()
    np.testing.assert_array_equal(np.sort(splits.session_id["test"]), np.sort(marked))
    fitted = np.concatenate([splits.session_id["train"], splits.session_id["valid"]])
    np.testing.assert_array_equal(np.sort(fitted), np.sort(np.setdiff1d(sessions["session_id"], marked)))
    owner = sessions.set_index("session_id")["user_id"]
    train_users, valid_users = (set(owner[splits.session_id[k]]) for k in ("train", "valid"))
    assert not train_users & valid_users  # train and valid stay user-disjoint
    for name in ("train", "valid"):
        assert set(splits.y[name]) == {0, 1}


def test_part_test_set_leaves_train_and_valid_their_shares(compose_cfg):
    cfg = compose_cfg([*SMALL["abuse"], "task.split.ratios={train: 0.5, valid: 0.5, test: 0}"])
    sessions = instantiate(cfg.data).load(seed=int(cfg.seed)).sessions
    sessions = with_parts(sessions, sessions["user_id"].unique()[::5])
    splits = split_sessions(sessions, cfg)  # test's share is not used: the data fixes the test set
    assert abs(len(splits.y["train"]) - len(splits.y["valid"])) <= 2 * 5  # within an account or two


@pytest.mark.parametrize(
    ("part", "words"),
    [
        ("", "session 0's part is '' (1 such session): the part column marks each session train or test"),
        ("valid", "session 0's part is 'valid'"),
    ],
)
def test_a_part_that_is_neither_train_nor_test_is_refused(compose_cfg, part, words):
    cfg = compose_cfg(SMALL["abuse"])
    sessions = instantiate(cfg.data).load(seed=int(cfg.seed)).sessions
    sessions = with_parts(sessions, sessions["user_id"].unique()[::4])
    sessions.loc[0, "part"] = part
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")):
        split_sessions(sessions, cfg)


def test_a_part_column_without_test_sessions_is_refused(compose_cfg):
    cfg = compose_cfg(SMALL["abuse"])
    sessions = instantiate(cfg.data).load(seed=int(cfg.seed)).sessions.assign(part="train")
    with pytest.raises(DataError, match=r"^the sessions' part column marks none of its 300 sessions test"):
        split_sessions(sessions, cfg)


def test_a_part_split_without_bots_outside_the_test_part_names_where(compose_cfg):
    cfg = compose_cfg(SMALL["abuse"])
    sessions = instantiate(cfg.data).load(seed=int(cfg.seed)).sessions
    sessions = sessions.assign(part=np.where(sessions["label"] == 1, "test", "train"))
    with pytest.raises(DataError) as error:
        split_sessions(sessions, cfg)
    assert str(error.value).startswith(
        "the data's sessions outside part=test have no bot session (label 1) among their "
    )


# --- task.test_data: composing and refusing ----------------------------------------------------------------


def test_a_data_option_composes_as_the_test_data(compose_cfg):
    cfg = compose_cfg(["+data@task.test_data=balabit", "task.test_data.root=/somewhere/balabit"])
    assert cfg.task.test_data._target_ == "airush.abuse.data.balabit.BalabitMouse"
    assert cfg.task.test_data.root == "/somewhere/balabit"
    assert cfg.data._target_ == "airush.abuse.data.synthetic.SyntheticSessions"  # training data untouched
    assert abuse.test_data_name(cfg) == "balabit"
    assert compose_cfg([]).task.test_data is None


def test_test_data_misused_is_refused_in_one_line(compose_cfg):
    from airush.runner import build

    cfg = compose_cfg(["+data@task.test_data=balabit", "task.scope=account"])
    with pytest.raises(ConfigError, match=r"^task\.test_data is for task\.scope=session"):
        abuse.test_data(cfg)
    with pytest.raises(ConfigError, match=r"^task\.test_data=balabit: choose .* as \+data@task\.test_data="):
        abuse.test_data(compose_cfg(["task.test_data=balabit"]))
    with pytest.raises(
        ConfigError, match=r"^task\.test_labels=human relabels the test data, and task\.test_data is"
    ):
        abuse.test_data(compose_cfg(["task.test_labels=human"]))
    cfg = compose_cfg(["task=music", "+data@task.test_data=lastfm"])
    with pytest.raises(ConfigError) as error:
        build(cfg)
    assert "task.test_data is abuse's: music tests on held-out plays" in str(error.value)
    assert "\n" not in str(error.value)


# --- task.test_data end to end -----------------------------------------------------------------------------


def write_test_data(tmp_path: Path, bot_share: float) -> pd.DataFrame:
    """A small events-file test set (other seed, other session ids than the training data); its sessions."""
    log = SyntheticSessions(n_users=24, sessions_per_user=3, bot_share=bot_share, mouse_actions=(3, 8)).load(
        seed=7
    )
    offset = 100_000  # no session id shared with the training data
    events, sessions = written(log)
    events["session_id"] = events["session_id"].astype(np.int64) + offset
    sessions["session_id"] = sessions["session_id"].astype(np.int64) + offset
    save(tmp_path, events, sessions)
    return log.sessions.assign(session_id=log.sessions["session_id"] + offset)


def run_with_test_data(tmp_path: Path, tracking_uri: str, *extra: str):
    result = run_airush(
        [
            *SMALL["abuse"],
            "+data@task.test_data=events",
            "task.test_data.events=events.csv",
            "task.test_data.sessions=sessions.csv",
            *extra,
        ],
        tmp_path,
        tracking_uri,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    local = client.download_artifacts(run.info.run_id, "evaluation/test_predictions.parquet", str(tmp_path))
    return run, pd.read_parquet(local)


@pytest.mark.slow
def test_a_second_data_set_is_the_whole_test_set(tmp_path, tracking_uri):
    from sklearn.metrics import roc_auc_score

    sessions = write_test_data(tmp_path, bot_share=0.25)
    run, predictions = run_with_test_data(tmp_path, tracking_uri)
    assert run.info.status == "FINISHED"
    np.testing.assert_array_equal(np.sort(predictions["session_id"]), np.sort(sessions["session_id"]))
    labels = sessions.set_index("session_id")["label"].reindex(predictions["session_id"]).to_numpy()
    np.testing.assert_array_equal(predictions["label"].to_numpy(), labels)
    metrics = run.data.metrics
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, predictions["score"]))
    flagged = predictions["score"].to_numpy() >= metrics["threshold"]
    assert metrics["flag_rate"] == pytest.approx(flagged.mean())
    assert metrics["fpr"] == pytest.approx(flagged[labels == 0].mean())
    assert run.data.tags["airush.test_data"] == "events"
    assert run.data.params["dataset.test_sessions"] == str(len(sessions))
    assert run.data.params["dataset.sessions"] == "300"  # the training data: SMALL's 60 users x 5


@pytest.mark.slow
def test_a_test_set_of_humans_only_reports_what_it_defines_and_is_not_ranked(tmp_path, tracking_uri):
    sessions = write_test_data(tmp_path, bot_share=0.0)
    assert (sessions["label"] == 0).all()
    run, predictions = run_with_test_data(tmp_path, tracking_uri)
    metrics = run.data.metrics
    assert not UNDEFINED_WITH_ONE_CLASS & set(metrics), sorted(metrics)
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    scores = predictions["score"].to_numpy()
    assert len(scores) == len(sessions)
    assert metrics["fpr"] == pytest.approx((scores >= metrics["threshold"]).mean())
    assert metrics["flag_rate"] == metrics["fpr"]
    assert metrics["strict_fpr"] == pytest.approx((scores >= metrics["strict_threshold"]).mean())
    assert metrics["score_p50"] == pytest.approx(np.percentile(scores, 50))
    assert metric_value(run, run.data.tags["airush.primary_metric"]) is None  # no ROC-AUC: not ranked
    assert metric_value(run, "fpr") == metrics["fpr"]


@pytest.mark.slow
@needs_balabit
def test_train_on_synthetic_and_test_on_balabit_humans(tmp_path, tracking_uri):
    result = run_airush(
        [
            *SMALL["abuse"],
            "features=mouse",
            "+data@task.test_data=balabit",
            f"task.test_data.root={BALABIT}",
            "task.test_data.users=[7,9]",
            "task.test_data.max_test_sessions=20",
            "task.test_labels=human",
        ],
        tmp_path,
        tracking_uri,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    metrics = run.data.metrics
    assert {"fpr", "flag_rate", "strict_fpr", "score_p50"} <= set(metrics)
    assert not UNDEFINED_WITH_ONE_CLASS & set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["fpr"] <= 1.0
    assert run.data.tags["airush.test_data"] == "balabit"
    # users 7 and 9: their training sessions and their first 20 labelled test sessions each, all people
    assert int(run.data.params["dataset.test_sessions"]) <= 2 * 20 + 20
    assert run.data.params["dataset.test_positives"] == "0"

    # `airush predict` on the same real sessions gives the run's own test scores, flagged at its threshold
    balabit = [f"data.root={BALABIT}", "data.users=[7,9]", "data.max_test_sessions=20"]
    out = tmp_path / "balabit_scores.parquet"
    predicted = run_airush(
        ["predict", run.info.run_id, "data=balabit", *balabit, "--out", str(out)], tmp_path, tracking_uri
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    scores = pd.read_parquet(out).set_index("session_id")
    expected = pd.read_parquet(
        Path(run.data.tags["airush.run_dir"]) / "evaluation" / "test_predictions.parquet"
    )
    assert scores.index.is_unique and set(expected["session_id"]) == set(scores.index)
    np.testing.assert_allclose(
        scores.loc[expected["session_id"], "score"], expected["score"], rtol=1e-6, atol=1e-9
    )
    flagged = scores["flagged"].to_numpy()
    assert flagged.mean() == pytest.approx(metrics["flag_rate"], abs=1e-9)

    # ...and `airush explain` on the real session it scores highest: the same score, its inputs, a picture
    session = scores["score"].idxmax()
    explained = run_airush(
        ["explain", run.info.run_id, f"session={session}", "data=balabit", *balabit], tmp_path, tracking_uri
    )
    assert explained.returncode == 0, explained.stderr[-3000:]
    first = explained.stdout.splitlines()[0]
    assert first.startswith(f"session {session}: score {scores.loc[session, 'score']:.4f}"), first
    assert (tmp_path / f"session_{session}.png").stat().st_size > 10_000

    # ...and served over HTTP: raw Balabit events of three sessions in, the same scores out
    from airush.abuse.data.balabit import BalabitMouse
    from test_predict import invoke, serving

    log = BalabitMouse(str(BALABIT), users=[7, 9], max_test_sessions=20).load()
    chosen = expected["session_id"].to_numpy()[:3]
    events = log.events[log.events["session_id"].isin(chosen)]
    with serving(tmp_path, tracking_uri, run.info.run_id) as url:
        got = invoke(url, events).set_index("session_id")
    np.testing.assert_allclose(got.loc[chosen, "score"], scores.loc[chosen, "score"], rtol=1e-6, atol=1e-9)
