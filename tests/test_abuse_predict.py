"""Every abuse session detector's MLflow Model takes raw events, and `airush.abuse.predict.predictions` scores
an events file in bounded chunks: both give the run's own test scores for the same sessions, without labels;
a model whose devices the data lacks is refused in one line."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest

from airush.abuse.data.events import EventFiles
from airush.abuse.data.synthetic import SyntheticSessions
from airush.errors import UserError
from airush.inference.predict import PredictOptions
from test_abuse_events import SPLIT, save, written
from test_mlflow_models import latest_run

DATA = ["data=events", "data.events=events.csv", "data.sessions=sessions.csv", *SPLIT]


def write_events(tmp_path: Path) -> pd.DataFrame:
    """A small labelled log as a user writes it, sessions interleaved in wall-clock order with epoch ms; the
    events as written."""
    log = SyntheticSessions(n_users=60, sessions_per_user=5, bot_share=0.15, mouse_actions=(3, 8)).load(
        seed=3
    )
    events, sessions = written(log)
    start = 1.7e12 + np.arange(len(sessions)) * 250.0
    events["t_ms"] = events["t_ms"].astype(float) + start[events["session_id"].astype(int)]
    events = events.sort_values("t_ms", kind="stable")
    save(tmp_path, events, sessions)
    return pd.read_csv(tmp_path / "events.csv")


def train(compose_cfg, tracking_uri: str, overrides: list[str]):
    """(cfg, run, the run's own test predictions) of a run on the written files."""
    from airush.runner import run

    cfg = compose_cfg([*DATA, *overrides])
    run(cfg)
    client = mlflow.MlflowClient(tracking_uri)
    found = latest_run(client, "abuse")
    expected = pd.read_parquet(Path(cfg.paths.run_dir) / "evaluation" / "test_predictions.parquet")
    return cfg, client.get_run(found.info.run_id), expected


def trained_run(cfg, run, tracking_uri: str):
    from airush.tracking.model_integrity import load_run_model

    return SimpleNamespace(
        model=load_run_model(tracking_uri, run.info.run_id), config=cfg, metrics=run.data.metrics
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "rtol"),
    [(["model.num_boost_round=60"], 1e-9), (["model=seq", "model.max_epochs=2"], 1e-5)],
    ids=["lgbm", "seq"],
)
def test_served_model_and_predictions_give_the_runs_test_scores(
    compose_cfg, tracking_uri, tmp_path, monkeypatch, overrides, rtol
):
    from airush.abuse.predict import predictions

    events = write_events(tmp_path)
    cfg, run, expected = train(compose_cfg, tracking_uri, overrides)
    test_ids = expected["session_id"].to_numpy()

    # (a) the MLflow Model: raw events (as pandas reads the CSV) in, one score per session out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(events)
    assert served["session_id"].tolist() == events["session_id"].unique().tolist()  # in the order asked
    by_session = served.set_index("session_id")["score"]
    np.testing.assert_allclose(by_session.loc[test_ids], expected["score"], rtol=rtol, atol=1e-12)

    # (b) predictions over the events file alone (no sessions file, no labels), many small buckets
    trained = trained_run(cfg, run, tracking_uri)
    source = EventFiles(str(tmp_path / "events.csv"))
    chunks = list(predictions(trained, source, PredictOptions(chunk_events=500, buckets=9)))
    assert len(chunks) == 9
    predicted = pd.concat(chunks, ignore_index=True)
    assert list(predicted.columns) == ["session_id", "score", "probability", "flagged"]
    assert sorted(predicted["session_id"]) == sorted(events["session_id"].unique())  # each session once
    scores = predicted.set_index("session_id")["score"]
    np.testing.assert_allclose(scores.loc[test_ids], expected["score"], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(scores.loc[by_session.index], by_session, rtol=rtol)  # seq: float32 batches
    # the calibrated P(bot) the run fitted on valid, the same whichever way the model is asked
    probability = predicted.set_index("session_id")["probability"]
    np.testing.assert_allclose(probability.loc[test_ids], expected["probability"], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(
        served.set_index("session_id")["probability"], probability.loc[served["session_id"]], rtol=rtol
    )
    threshold = run.data.metrics["threshold"]
    assert (predicted["flagged"] == (predicted["score"] >= threshold)).all()

    # the same from Parquet, bucket count chosen from the file's size
    events.to_parquet(tmp_path / "events.parquet")
    again = pd.concat(
        predictions(trained, EventFiles(str(tmp_path / "events.parquet")), PredictOptions(chunk_events=2000))
    )
    assert len(again) == len(predicted)
    np.testing.assert_allclose(again.set_index("session_id")["score"].loc[scores.index], scores, rtol=rtol)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, UserError)
    return message


@pytest.mark.slow
def test_a_keyboard_model_on_mouse_only_events_is_refused_in_one_line(
    compose_cfg, tracking_uri, tmp_path, monkeypatch
):
    from airush.abuse.predict import predictions

    events = write_events(tmp_path)
    cfg, run, _ = train(compose_cfg, tracking_uri, ["features=keyboard", "model.num_boost_round=30"])
    mouse_only = events[~events["event"].isin(["key_down", "key_up"])]
    mouse_only.to_csv(tmp_path / "mouse.csv", index=False)

    with pytest.raises(UserError) as err:
        next(predictions(trained_run(cfg, run, tracking_uri), EventFiles(str(tmp_path / "mouse.csv"))))
    assert one_line(err) == (
        "the model reads keyboard events only (features=keyboard), but the data has mouse events only: "
        "nothing to score it on"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    with pytest.raises(UserError, match="reads keyboard events only"):
        served.predict(mouse_only)


class Duration:
    """A stand-in detector: P(bot) = the session's duration in s, whatever it is."""

    def predict_proba(self, X):
        return X["duration_s"].to_numpy()


def interleaved_events(n: int = 50) -> pd.DataFrame:
    """`n` copies of the serving example's two sessions, all interleaved in time."""
    from airush.abuse.serving import example_events

    example = example_events()
    copies = [
        example.assign(session_id=example["session_id"] + 10 * k, t_ms=example["t_ms"] + k) for k in range(n)
    ]
    return pd.concat(copies, ignore_index=True).sort_values("t_ms", kind="stable", ignore_index=True)


def test_buckets_hold_whole_sessions_in_file_order(tmp_path):
    from airush.abuse.data.session_buckets import session_chunks

    events = interleaved_events()
    events.to_csv(tmp_path / "events.csv", index=False)
    counts = []
    chunks = list(session_chunks(tmp_path / "events.csv", 10, buckets=7, check=counts.append))
    assert len(chunks) == 7 and counts[0].sum() == len(events)
    ids = [set(chunk["session_id"]) for chunk in chunks]
    assert sum(map(len, ids)) == len(set().union(*ids)) == events["session_id"].nunique()
    for chunk in chunks:
        assert str(chunk["event"].dtype) == "category" and chunk["key"].dtype == np.int16
        for session, rows in chunk.groupby("session_id"):
            written_rows = events[events["session_id"] == session]
            assert rows["t_ms"].tolist() == written_rows["t_ms"].tolist()
            assert rows["event"].astype(str).tolist() == written_rows["event"].tolist()


def test_score_sessions_in_the_order_asked_and_bad_events_in_one_line(tmp_path):
    from airush.abuse.data.session_buckets import session_chunks
    from airush.abuse.features import SessionFeatures
    from airush.abuse.predict import score_sessions

    events = interleaved_events(3)
    asked = events.iloc[::-1]
    scored = score_sessions(Duration(), SessionFeatures(counts=True), asked)
    assert scored["session_id"].tolist() == asked["session_id"].unique().tolist()
    # each session rebased to its first event: 205 ms (mouse) and 230 ms (typing), whatever its start
    expected = np.where(scored["session_id"] % 10 == 1, 0.205, 0.23)
    np.testing.assert_allclose(scored["score"], expected, rtol=1e-12)

    with pytest.raises(UserError) as err:
        score_sessions(Duration(), SessionFeatures(counts=True), events.assign(event="click"))
    assert one_line(err).startswith("unknown event 'click'; expected one of key_down")
    with pytest.raises(UserError) as err:
        score_sessions(Duration(), SessionFeatures(counts=True), events.drop(columns="x"))
    assert one_line(err).endswith("missing x")

    events.loc[5, "button"] = "thumb"
    events.to_csv(tmp_path / "events.csv", index=False)
    with pytest.raises(UserError) as err:
        next(session_chunks(tmp_path / "events.csv", 10))
    assert one_line(err) == (
        f"{tmp_path / 'events.csv'}, row 7, column 'button': unknown button 'thumb'; "
        "expected one of none, left, right, middle, x"
    )


def test_predictions_over_generated_data_score_every_session_once():
    from airush.abuse.features import SessionFeatures
    from airush.abuse.predict import predictions
    from airush.abuse.serving import SessionEventScores

    source = SyntheticSessions(n_users=12, sessions_per_user=3, bot_share=0.2, mouse_actions=(2, 4))
    log = source.load(seed=5)
    trained = SimpleNamespace(
        model=SessionEventScores(Duration(), SessionFeatures(counts=True)),
        config=None,
        metrics={"threshold": 20.0},
    )
    chunks = list(predictions(trained, source, PredictOptions(chunk_events=3000, seed=5)))
    predicted = pd.concat(chunks, ignore_index=True)
    assert len(chunks) > 1 and predicted["session_id"].tolist() == log.sessions["session_id"].tolist()
    duration = log.events.groupby("session_id")["t_ms"].agg(lambda t: (t.max() - t.min()) / 1000)
    np.testing.assert_allclose(predicted["score"], duration.to_numpy(), rtol=1e-12)
    assert (predicted["flagged"] == (predicted["score"] >= 20.0)).all() and predicted["flagged"].any()
