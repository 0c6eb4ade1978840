"""Explanations (`airush.abuse.contributions`, `airush.abuse.explain`): LightGBM contributions that add up to
its raw score, integrated gradients over model=seq's input channels that add up to its logit, top inputs by
absolute contribution; the run's artifact for its top flagged test sessions, `airush predict ... explain=true`
and `airush explain` (refusals in one line, exit 2), and the session picture as a valid PNG."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_predict import assert_one_line_refusal, last_run_id

from conftest import SMALL, run_airush

ABUSE_DATA = ["data=synthetic_abuse", *SMALL["abuse"]]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    """A PNG that decodes to a picture of a readable size."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    pixels = imread(path)
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 800, pixels.shape


def parse_top(text: str) -> list[tuple[str, float]]:
    """`name:+0.421;name:-0.102` -> [(name, value), ...]."""
    pairs = [item.rsplit(":", 1) for item in text.split(";")]
    return [(name, float(value)) for name, value in pairs]


def assert_ordered_by_size(values) -> None:
    sizes = np.abs(np.asarray(values, dtype=np.float64))
    assert (np.diff(sizes) <= 1e-12).all(), values


def small_table(seed: int = 0, rows: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """Session-like features with a signal in two of them and NaNs (as real features have)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "key_hold_cv": rng.gamma(2.0, 0.1, rows),
            "mouse_speed_p50": rng.normal(1.0, 0.3, rows),
            "noise": rng.normal(size=rows),
            "mouse_turn_p50": rng.uniform(0, 3, rows),
        },
        index=pd.Index(np.arange(1000, 1000 + rows), name="session_id"),
    )
    X.loc[X.sample(frac=0.1, random_state=seed).index, "mouse_turn_p50"] = np.nan
    y = ((X["key_hold_cv"] < 0.1) | (X["mouse_speed_p50"] > 1.5)).astype(int).to_numpy()
    return X, y


def test_lightgbm_contributions_add_up_to_its_raw_score():
    from airush.abuse.contributions import explain, top_features_text
    from airush.abuse.models.lgbm import LightGBMDetector

    X, y = small_table()
    model = LightGBMDetector(num_boost_round=40, min_child_samples=5).fit(X[:300], y[:300], X[300:], y[300:])
    explanation = explain(model, X[300:])
    raw = model.booster_.predict(X[300:], num_iteration=model.best_iteration_, raw_score=True)
    summed = explanation.base + explanation.contributions.to_numpy().sum(axis=1)
    np.testing.assert_allclose(summed, raw, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explanation.margin, raw, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explanation.score, model.predict_proba(X[300:]), rtol=1e-9)
    assert list(explanation.contributions.columns) == list(X.columns)
    assert explanation.contributions.index.tolist() == X.index[300:].tolist()
    # the signal carries the score, the noise column hardly
    mean_size = explanation.contributions.abs().mean()
    assert mean_size["noise"] < min(mean_size["key_hold_cv"], mean_size["mouse_speed_p50"])
    for row in range(len(explanation.session_ids)):
        top = explanation.top(row, 3)
        assert_ordered_by_size(top.to_numpy())
        largest = explanation.contributions.iloc[row].abs().max()
        assert abs(top.iloc[0]) == largest
        text = top_features_text(explanation, row, 3)
        assert [name for name, _ in parse_top(text)] == top.index.tolist()


def test_a_model_without_explanations_is_refused_in_one_line():
    from airush.abuse.contributions import can_explain, explain
    from airush.errors import UserError

    class Constant:
        def predict_proba(self, X):
            return np.full(len(X), 0.5)

    assert not can_explain(Constant())
    with pytest.raises(UserError, match="cannot explain its scores"):
        explain(Constant(), pd.DataFrame({"a": [1.0]}))


@pytest.fixture(scope="module")
def fitted_seq():
    """A small model=seq fitted on generated sessions, windows of 128 events (so long sessions have several),
    with its held-out sessions' events and sequences."""
    from airush.abuse.data.synthetic import SyntheticSessions
    from airush.abuse.models.seq import SequenceDetector
    from airush.abuse.sequences import session_sequences

    log = SyntheticSessions(n_users=30, sessions_per_user=4, bot_share=0.2, mouse_actions=(3, 6)).load(seed=1)
    ids, y = log.sessions["session_id"].to_numpy(), log.sessions["label"].to_numpy()
    sequences = session_sequences(log.events, ids)
    held_out = np.arange(len(ids)) % 4 == 0
    train, valid = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    model = SequenceDetector(max_events=128, width=8, layers=2, hidden=16, max_epochs=3, batch_size=16)
    model.fit(sequences.take(train), y[train], sequences.take(valid), y[valid])
    return model, log, sequences.take(valid)


@pytest.mark.slow
def test_seq_integrated_gradients_are_finite_and_complete(fitted_seq):
    from airush.abuse.contributions import integrated_gradients
    from airush.abuse.models.seq import INPUT_GROUPS

    model, _, held_out = fitted_seq
    assert (held_out.lengths > model.max_events).any()  # several scoring windows per session
    explanation = integrated_gradients(model, held_out, steps=64)
    contributions = explanation.contributions.to_numpy()
    assert list(explanation.contributions.columns) == list(INPUT_GROUPS)
    assert np.isfinite(contributions).all() and np.isfinite(explanation.base).all()
    np.testing.assert_allclose(explanation.score, model.predict_proba(held_out), rtol=1e-5, atol=1e-7)
    # completeness: the attributions add up to the logit minus the baseline's, up to the Riemann sum's error
    gap = explanation.margin - explanation.base
    error = np.abs(contributions.sum(axis=1) - gap)
    assert (error <= 0.02 * np.abs(gap).max() + 1e-4).all(), (error.max(), np.abs(gap).max())
    assert np.abs(contributions).sum() > 0
    for row in range(len(held_out)):
        assert_ordered_by_size(explanation.top(row, len(INPUT_GROUPS)).to_numpy())


@pytest.mark.slow
def test_seq_top_features_column_names_flagged_sessions_only(fitted_seq):
    """What `predict explain=true` adds, for a model that reads raw events (`SequenceInputs` pipeline)."""
    from airush.abuse.contributions import top_features_column
    from airush.abuse.predict import SequenceInputs, session_order

    model, log, held_out = fitted_seq
    ids = np.asarray(held_out.session_ids)
    events = session_order(log.events[log.events["session_id"].isin(ids)])
    inputs = SequenceInputs().transform(events, ids)
    scored = pd.DataFrame({"session_id": ids, "score": model.predict_proba(held_out)})
    scored["flagged"] = scored["score"] >= np.median(scored["score"])
    column = top_features_column(model, inputs, scored, 4)
    assert (column[~scored["flagged"]] == "").all()
    for text in column[scored["flagged"]]:
        pairs = parse_top(text)
        assert len(pairs) == 4 and all(np.isfinite(v) for _, v in pairs)
        assert_ordered_by_size([v for _, v in pairs])


def test_session_picture_is_a_png(tmp_path):
    """Drawn from generated sessions of each kind: a person, a macro, a teleporting bot, and typing only."""
    from airush.abuse.data.synthetic import SyntheticSessions
    from airush.abuse.explain import session_events
    from airush.abuse.plots import save_session_picture

    log = SyntheticSessions(n_users=40, sessions_per_user=3, bot_share=0.2, mouse_actions=(2, 4)).load(seed=2)
    top = pd.Series({"mouse_turn_p50": 0.8, "key_hold_cv": -0.3, "click_hold_std": 0.05})
    values = pd.Series({"mouse_turn_p50": 0.12, "key_hold_cv": 0.01, "click_hold_std": 0.0})
    for kind in ("human", "macro", "teleport"):
        session_id = log.sessions.loc[log.sessions["kind"] == kind, "session_id"].iloc[0]
        events = session_events(log.events, session_id)
        assert len(events) and (events["session_id"] == session_id).all()
        path = save_session_picture(events, top, f"session {session_id}", tmp_path / f"{kind}.png", values)
        assert_png(path)
    typing_only = events[events["event"].astype(str).str.startswith("key")]
    assert_png(save_session_picture(typing_only, top, "typing only", tmp_path / "keys.png"))


@pytest.fixture(scope="module")
def lgbm_run(tmp_path_factory):
    """(folder, tracking uri, run id, the run's test predictions) of a small LightGBM run."""
    import mlflow

    folder = tmp_path_factory.mktemp("explain")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    result = run_airush(["model.num_boost_round=60", *SMALL["abuse"]], folder, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = last_run_id(uri)
    artifacts = Path(mlflow.MlflowClient(uri).get_run(run_id).info.artifact_uri.removeprefix("file://"))
    predictions = pd.read_parquet(artifacts / "evaluation" / "test_predictions.parquet")
    return folder, uri, run_id, artifacts, predictions


@pytest.mark.slow
def test_run_records_its_top_flagged_test_sessions_explained(lgbm_run):
    _, uri, run_id, artifacts, predictions = lgbm_run
    import mlflow

    threshold = mlflow.MlflowClient(uri).get_run(run_id).data.metrics["threshold"]
    table = pd.read_csv(artifacts / "evaluation" / "explanations" / "top_flagged.csv")
    flagged = predictions[predictions["score"] >= threshold].sort_values("score", ascending=False)
    expected = flagged["session_id"].head(5).tolist()
    assert table["session_id"].unique().tolist() == expected
    assert list(table.columns) == [
        "session_id", "kind", "score", "margin", "base", "rank", "feature", "value", "contribution"
    ]  # fmt: skip
    by_session = flagged.set_index("session_id")
    for session_id, rows in table.groupby("session_id", sort=False):
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
        assert_ordered_by_size(rows["contribution"])
        assert rows["kind"].iloc[0] == by_session.loc[session_id, "kind"]
        np.testing.assert_allclose(rows["score"].iloc[0], by_session.loc[session_id, "score"], rtol=1e-9)
        assert_png(artifacts / "evaluation" / "explanations" / f"session_{session_id}.png")


@pytest.mark.slow
def test_predict_explain_true_names_top_features_of_flagged_sessions(lgbm_run):
    from airush.abuse.contributions import explain
    from airush.abuse.predict import _unwrap
    from airush.inference.trained import trained_model

    folder, uri, run_id, _, _ = lgbm_run
    out = folder / "explained.csv"
    started = time.monotonic()
    result = run_airush(["predict", run_id, *ABUSE_DATA, "explain=true", "--out", str(out)], folder, uri)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    got = pd.read_csv(out, keep_default_na=False)
    assert list(got.columns) == ["session_id", "score", "probability", "flagged", "top_features"]
    flagged = got["flagged"].astype(str) == "True"
    assert flagged.any() and (~flagged).any()
    assert (got.loc[~flagged, "top_features"] == "").all()
    named = got.loc[flagged].set_index("session_id")["top_features"].map(parse_top)
    assert (named.map(len) == 5).all()
    for pairs in named:
        assert_ordered_by_size([v for _, v in pairs])

    # the same numbers as the run's model gives in this process, from the session features
    from hydra.utils import instantiate

    from airush.api import compose

    log = instantiate(compose(["task=abuse", *ABUSE_DATA]).data).load(seed=42)
    with trained_model(uri, run_id) as trained:
        model, pipeline = _unwrap(trained)
        ids = np.sort(named.index.to_numpy())
        every = np.sort(log.sessions["session_id"].to_numpy())  # featurised together, as predict does
        explanation = explain(model, pipeline.transform(log.events, every).loc[ids])
    for row, session_id in enumerate(explanation.session_ids):
        expected = explanation.top(row, 5)
        names, values = zip(*named.loc[session_id], strict=True)
        assert list(names) == expected.index.tolist()
        np.testing.assert_allclose(values, expected.to_numpy(), atol=5e-4)
    print(f"predict explain=true on 300 sessions: {seconds:.1f} s")


@pytest.mark.slow
def test_airush_explain_prints_and_draws_one_session(lgbm_run):
    import mlflow

    folder, uri, run_id, _, predictions = lgbm_run
    top = predictions.sort_values("score").iloc[-1]
    session_id = int(top["session_id"])
    flagged = top["score"] >= mlflow.MlflowClient(uri).get_run(run_id).data.metrics["threshold"]
    started = time.monotonic()
    result = run_airush(["explain", run_id[:8], f"session={session_id}", *ABUSE_DATA], folder, uri)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    verdict = "FLAGGED" if flagged else "not flagged"
    assert lines[0].startswith(f"session {session_id}: score {top['score']:.4f}, {verdict}"), lines[0]
    listed = [line for line in lines if re.match(r"\s*\d+\. ", line)]
    assert len(listed) == 10
    contributions = [float(line.split()[2]) for line in listed]
    assert_ordered_by_size(contributions)
    picture = folder / f"session_{session_id}.png"
    assert lines[-1] == f"picture: {picture.name}"
    assert_png(picture)

    again = run_airush(["explain", run_id, f"session={session_id}", *ABUSE_DATA], folder, uri)
    assert_one_line_refusal(again, "exists", "--overwrite")
    print(f"airush explain one session: {seconds:.1f} s")


@pytest.mark.slow
def test_explain_refusals_are_one_line(lgbm_run):
    folder, uri, run_id, _, _ = lgbm_run
    unknown = run_airush(["explain", run_id, "session=987654", *ABUSE_DATA], folder, uri)
    assert_one_line_refusal(unknown, "session 987654 is not in the data", "300 sessions")
    assert not (folder / "session_987654.png").exists()
    for args, words in (
        ([*ABUSE_DATA], ("name one session",)),
        (["session=abc", *ABUSE_DATA], ("session=abc", "whole number")),
        (["session=1", *ABUSE_DATA, "--out", "x.jpg"], (".png",)),
        (["session=1", "model=seq", *ABUSE_DATA], ("model=seq",)),
    ):
        assert_one_line_refusal(run_airush(["explain", run_id, *args], folder, uri), *words)
    bad = run_airush(["predict", run_id, *ABUSE_DATA, "explain=maybe", "--out", "x.csv"], folder, uri)
    assert_one_line_refusal(bad, "explain=maybe")


@pytest.mark.slow
def test_explain_on_a_music_model_is_refused(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_airush(["task=music", "model=pop", *SMALL["music"]], tmp_path, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = last_run_id(uri)
    music = ["data=synthetic_music", *SMALL["music"]]
    out = tmp_path / "p.csv"
    refused = run_airush(["predict", run_id, *music, "explain=true", "--out", str(out)], tmp_path, uri)
    assert_one_line_refusal(refused, "explain=true", "music")
    assert not out.exists()
    refused = run_airush(["explain", run_id, "session=1", *music], tmp_path, uri)
    assert_one_line_refusal(refused, "abuse", "music")
