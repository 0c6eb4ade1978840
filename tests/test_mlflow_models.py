"""Each run's model as an MLflow Model: loaded by `runs:/<id>/model` in a fresh process it scores abuse sessions
exactly as the run did and serves music users the run's own top-N; nothing in it is a pickle; a sweep's best
child goes into the Model Registry with its metric."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from airush.errors import UserError

from conftest import SHARED_DATA, SMALL, run_airush

BALABIT = SHARED_DATA / "balabit"

# A fresh interpreter loads the model the way a user would and answers each request (input parquet, params)
# with a parquet of its output, or the error's one line.
FRESH_LOAD = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
for job in json.loads(sys.argv[2]):
    try:
        out = model.predict(pd.read_parquet(job["input"]), params=job.get("params"))
    except Exception as err:
        print(json.dumps({"error": str(err)}), file=open(job["output"] + ".error", "w"))
        continue
    frame = out if isinstance(out, pd.DataFrame) else pd.DataFrame({"score": out})
    frame.to_parquet(job["output"])
"""


def interleave_sessions(events: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows of different sessions interleaved at random, each session's rows in their own order: events that
    share a timestamp have no other order, so shuffling them too would ask a different question."""
    session = events["session_id"].to_numpy()
    slots = np.random.default_rng(seed).permutation(session)  # which session each output row belongs to
    index = np.empty(len(events), dtype=np.int64)
    index[np.argsort(slots, kind="stable")] = np.argsort(session, kind="stable")
    return events.iloc[index]


def fresh_predict(uri: str, model_uri: str, jobs: list[dict], tmp_path: Path) -> list:
    """Each job's output frame (or error message) from a new Python process; its stderr must hold no warning."""
    for n, job in enumerate(jobs):
        job["output"] = str(tmp_path / f"out{n}.parquet")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": uri}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, model_uri, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warn" not in result.stderr.lower(), result.stderr[-3000:]
    outputs = []
    for job in jobs:
        error = Path(job["output"] + ".error")
        outputs.append(
            json.loads(error.read_text())["error"] if error.exists() else pd.read_parquet(job["output"])
        )
    return outputs


def write_input(frame: pd.DataFrame, path: Path) -> str:
    frame.to_parquet(path)
    return str(path)


def latest_run(client, experiment: str):
    (found,) = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found


def model_files(client, run_id: str, path: str = "model") -> set[str]:
    """The paths under `path` (`model`, `model/data/model`) of the run's logged model `model`, as
    `runs:/<run id>/model` resolves it: the model MLflow lists for the run (by name and source run), its
    files in the model's own artifact location, which `client.list_artifacts(run_id)` does not look into."""
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = [
        m for m in client.search_logged_models([experiment_id], "name = 'model'") if m.source_run_id == run_id
    ]
    assert len(logged) == 1, f"run {run_id} has {len(logged)} logged models named 'model'"
    inner = path.partition("/")[2] or None
    return {f"model/{f.path}" for f in client.list_logged_model_artifacts(logged[0].model_id, inner)}


def assert_logged_mlflow_model(client, run_id: str) -> None:
    """The run itself logged its MLflow Model (run.py calls `save_mlflow_model` after training), as the
    logged model `model` that `runs:/<run id>/model` resolves to."""
    assert "model/MLmodel" in model_files(client, run_id), run_id


def rebuild(cfg, client, run_id: str, tmp_path: Path) -> tuple:
    """(model, splits, prepared): the run's model as it logged it, and its data prepared and split again (same
    seed, same data), to compare the served model against."""
    from airush.abuse.verification import AccountVerifier
    from airush.console import Stages
    from airush.runner import build

    assert_logged_mlflow_model(client, run_id)
    model_dir = Path(client.download_artifacts(run_id, "model/data/model", str(tmp_path)))
    built = build(cfg)
    cfg, task = built.cfg, built.task
    with Stages() as stages:
        prepared = task.prepare(cfg, stages)
    account_scope = cfg.task.get("scope") == "account"
    model_cls = AccountVerifier if account_scope else built.model_cls
    return model_cls.load(model_dir), task.split(prepared, cfg), prepared


def assert_no_pickle(client, run_id: str, tmp_path: Path) -> Path:
    local = Path(client.download_artifacts(run_id, "model", str(tmp_path / "check")))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert (local / "MLmodel").exists() and (local / "input_example.json").exists()
    for path in files:
        assert path.suffix not in (".pkl", ".pickle"), path
        assert path.read_bytes()[:1] != b"\x80", f"{path} is a pickle"  # pickle protocol >= 2
    return local


@dataclass
class TrainedRun:
    """A run of `cfg` as the tests look at it: its id, its MLflow Model (downloaded, pickle-free) and its
    model and data rebuilt to compare the served model against."""

    client: Any
    run_id: str
    local: Path
    model: Any
    splits: Any
    prepared: Any

    @property
    def mlmodel(self):
        return mlflow.models.Model.load(str(self.local / "MLmodel"))


def train_and_fetch(cfg, tracking_uri: str, tmp_path: Path) -> TrainedRun:
    from airush.runner import run

    run(cfg)
    client = mlflow.MlflowClient(tracking_uri)
    run_id = latest_run(client, cfg.task.name).info.run_id
    model, splits, prepared = rebuild(cfg, client, run_id, tmp_path)
    return TrainedRun(client, run_id, assert_no_pickle(client, run_id, tmp_path), model, splits, prepared)


@pytest.mark.slow
def test_abuse_lightgbm_model_scores_sessions_from_raw_events_like_the_run(
    compose_cfg, tracking_uri, tmp_path
):
    from airush.abuse.copies import with_copy_rule
    from airush.abuse.data.events import EVENT_COLUMNS
    from airush.abuse.models.lgbm import LightGBMDetector

    cfg = compose_cfg(SMALL["abuse"])
    trained = train_and_fetch(cfg, tracking_uri, tmp_path)
    splits, prepared, local, mlmodel = trained.splits, trained.prepared, trained.local, trained.mlmodel
    # our pyfunc over raw events, and MLflow's LightGBM flavor on the same booster text beside it
    assert mlmodel.flavors["python_function"]["loader_module"] == "airush.tracking.pyfunc_loader"
    assert mlmodel.signature.inputs.input_names() == list(EVENT_COLUMNS)
    assert mlmodel.signature.outputs.input_names() == ["session_id", "score", "probability"]
    info = json.loads((local / "data" / "model" / "airush_model.json").read_text())
    assert info["features"] == {
        "_target_": "airush.abuse.features.SessionFeatures",
        "keyboard": True,
        "mouse": True,
        "resample_ms": None,
        "counts": False,
        "copies": True,
    }
    assert info["copy_share"] == cfg.task.copy_share

    expected = pd.read_parquet(Path(cfg.paths.run_dir) / "evaluation" / "test_predictions.parquet")
    assert expected["session_id"].tolist() == splits.session_id["test"].tolist()
    booster = mlflow.lightgbm.load_model(str(local))
    detector = LightGBMDetector.load(local / "data" / "model")
    X = splits.X["test"][detector.feature_names_]
    # the run's scores: the booster's, through the copy rule (sessions repeating an earlier one's clicks)
    ruled = with_copy_rule(booster.predict(X), splits.X["test"], cfg.task.copy_share)
    np.testing.assert_array_equal(ruled, expected["score"].to_numpy())

    # every session's raw events (a played-back session is found beside the earlier one it copies, which
    # may be outside test), sessions interleaved row by row, event and button as text
    events = interleave_sessions(prepared.log.events.astype({"event": str, "button": str}), seed=0)
    (scored,) = fresh_predict(
        tracking_uri,
        f"runs:/{trained.run_id}/model",
        [{"input": write_input(events, tmp_path / "events.parquet")}],
        tmp_path,
    )
    assert scored["session_id"].tolist() == events["session_id"].unique().tolist()  # in the order asked
    served = scored.set_index("session_id")["score"].loc[expected["session_id"]]
    np.testing.assert_allclose(served.to_numpy(), expected["score"].to_numpy(), rtol=1e-9)


@pytest.mark.slow
def test_abuse_sequence_model_scores_sessions_from_raw_events_like_the_run(
    compose_cfg, tracking_uri, tmp_path
):
    import torch

    from airush.abuse.data.events import EVENT_COLUMNS

    cfg = compose_cfg(["model=seq", "model.max_epochs=2", *SMALL["abuse"]])
    trained = train_and_fetch(cfg, tracking_uri, tmp_path)
    model, splits, prepared = trained.model, trained.splits, trained.prepared
    local, mlmodel = trained.local, trained.mlmodel
    assert "python_function" in mlmodel.flavors
    assert mlmodel.signature.inputs.input_names() == list(EVENT_COLUMNS)
    assert mlmodel.signature.outputs.input_names() == ["session_id", "score", "probability"]
    assert torch.load(local / "data" / "model" / "model.pt", weights_only=True)  # a plain state dict

    # the run's own scores: its test predictions, which are the model's in this process too
    expected = pd.read_parquet(Path(cfg.paths.run_dir) / "evaluation" / "test_predictions.parquet")
    assert expected["session_id"].tolist() == splits.session_id["test"].tolist()
    np.testing.assert_array_equal(model.predict_proba(splits.X["test"]), expected["score"])

    # the test sessions' raw events, sessions interleaved row by row, event and button as text
    events = prepared.log.events
    events = events[events["session_id"].isin(expected["session_id"])]
    events = interleave_sessions(events.astype({"event": str, "button": str}), seed=0)
    example = mlmodel.load_input_example(str(local))
    scored, answered, unknown = fresh_predict(
        tracking_uri,
        f"runs:/{trained.run_id}/model",
        [
            {"input": write_input(events, tmp_path / "events.parquet")},
            {"input": write_input(example, tmp_path / "example.parquet")},
            {"input": write_input(events.head(3).assign(event="click"), tmp_path / "unknown.parquet")},
        ],
        tmp_path,
    )
    assert scored["session_id"].tolist() == events["session_id"].unique().tolist()  # in the order asked
    served = scored.set_index("session_id")["score"].loc[expected["session_id"]]
    np.testing.assert_allclose(served.to_numpy(), expected["score"].to_numpy(), rtol=1e-5, atol=1e-7)
    assert answered["session_id"].tolist() == [1, 2] and answered["score"].between(0, 1).all()
    assert "unknown event 'click'; expected one of key_down" in unknown


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["als", "pop"])
def test_music_model_serves_the_runs_top_n(compose_cfg, tracking_uri, tmp_path, model_name):
    cfg = compose_cfg(["task=music", f"model={model_name}", "task.recommend.top_n=10", *SMALL["music"]])
    trained = train_and_fetch(cfg, tracking_uri, tmp_path)
    model, splits = trained.model, trained.splits
    assert trained.mlmodel.signature.params.to_dict()[0]["default"] == 10

    users = pd.DataFrame({"user": splits.user_ids})
    top, top3, unknown, none, negative = fresh_predict(
        tracking_uri,
        f"runs:/{trained.run_id}/model",
        [
            {"input": write_input(users, tmp_path / "users.parquet")},  # default k = task.recommend.top_n
            {"input": write_input(users.iloc[::-1], tmp_path / "reversed.parquet"), "params": {"k": 3}},
            {"input": write_input(pd.DataFrame({"user": [10**9]}), tmp_path / "unknown.parquet")},
            {"input": str(tmp_path / "users.parquet"), "params": {"k": 0}},  # refused, not the default
            {"input": str(tmp_path / "users.parquet"), "params": {"k": -1}},
        ],
        tmp_path,
    )
    # exactly the recommendations the run exported, the data set's own ids, in rank order
    exported = pd.read_csv(Path(cfg.paths.run_dir) / "evaluation" / "recommendations.csv")
    pd.testing.assert_frame_equal(top, exported, check_dtype=False)
    # and what the model recommends, never an item the user played
    seen = (splits.seen_train + splits.valid + splits.test).tocsr()
    dense = np.arange(len(splits.user_ids))
    expected = splits.item_ids[model.recommend(dense, 10, exclude=seen)]
    assert (top["item"].to_numpy().reshape(-1, 10) == expected).all()
    item_index = pd.Index(splits.item_ids).get_indexer(top["item"])
    assert seen[np.repeat(dense, 10), item_index].sum() == 0
    # k per request; users answered in the order asked
    assert top3["user"].tolist() == np.repeat(splits.user_ids[::-1], 3).tolist()
    assert (top3["item"].to_numpy().reshape(-1, 3) == expected[::-1, :3]).all()
    assert "1 unknown user id(s), e.g. 1000000000" in unknown
    assert "k=0: ask for at least one recommendation per user" in none
    assert "k=-1: ask for at least one recommendation per user" in negative


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["model=bpr"],
        ["model=content"],
        ["model=ease"],
        ["model=itemknn"],
        ["model=twotower", "model.max_epochs=1"],
    ],
    ids=lambda overrides: overrides[0],
)
def test_every_other_music_model_is_logged_as_an_mlflow_model(
    compose_cfg, tracking_uri, tmp_path, monkeypatch, overrides
):
    from airush.runner import run

    cfg = compose_cfg(["task=music", *overrides, *SMALL["music"]])
    run(cfg)
    client = mlflow.MlflowClient(tracking_uri)
    found = latest_run(client, "music")
    assert_logged_mlflow_model(client, found.info.run_id)
    assert_no_pickle(client, found.info.run_id, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    served = mlflow.pyfunc.load_model(f"runs:/{found.info.run_id}/model")
    top = served.predict(pd.DataFrame({"user": [0, 1]}), params={"k": 4})
    assert [(u, r) for u, r in zip(top["user"], top["rank"], strict=True)] == [
        (u, k) for u in (0, 1) for k in range(1, 5)
    ]


@pytest.mark.slow
@pytest.mark.skipif(not BALABIT.is_dir(), reason=f"Balabit data not found at {BALABIT}")
def test_account_verifier_model_scores_actions_of_claimed_accounts(compose_cfg, tracking_uri, tmp_path):
    overrides = ["data=balabit", f"data.root={BALABIT}", "data.users=[7,9]", "data.max_test_sessions=4"]
    cfg = compose_cfg([*overrides, "features=mouse", "task.scope=account", "model.num_boost_round=30"])
    trained = train_and_fetch(cfg, tracking_uri, tmp_path)
    splits = trained.splits
    assert "account" in trained.mlmodel.signature.inputs.input_names()

    actions = splits.X["test"].assign(account=splits.account["test"])
    scores, unknown = fresh_predict(
        tracking_uri,
        f"runs:/{trained.run_id}/model",
        [
            {"input": write_input(actions, tmp_path / "actions.parquet")},
            {"input": write_input(actions.head(2).assign(account=12), tmp_path / "unknown.parquet")},
        ],
        tmp_path,
    )
    # a session's score is the logistic of its actions' mean log-odds, as the run scored it
    from scipy.special import expit, logit

    from airush.abuse.verification import PROBABILITY_FLOOR

    action_p = scores["score"].clip(PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    by_session = expit(logit(action_p).groupby(splits.session_id["test"]).mean())
    expected = pd.read_parquet(Path(cfg.paths.run_dir) / "evaluation" / "test_predictions.parquet")
    np.testing.assert_allclose(
        by_session.loc[expected["session_id"]].to_numpy(), expected["score"], rtol=1e-12
    )
    assert "1 account(s) without a model, e.g. 12" in unknown


@pytest.mark.slow
def test_register_a_sweeps_best_child(tracking_uri, tmp_path, monkeypatch):
    from airush.records.registry import main as registry_main
    from airush.records.registry import register

    args = ["-m", "task=music", "model=pop,als", *SMALL["music"]]
    result = run_airush(args, cwd=tmp_path, tracking_uri=tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name("music").experiment_id
    (parent,) = client.search_runs([experiment_id], "tags.`airush.sweep` = 'parent'")
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    for child in children:
        assert_logged_mlflow_model(client, child.info.run_id)

    result = run_airush(["register", parent.info.run_id, "--name", "music-best"], tmp_path, tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "registered 'music-best' version 1" in result.stdout
    best = client.get_run(parent.data.tags["best.run_id"])
    version = client.get_model_version("music-best", "1")
    assert version.run_id == best.info.run_id
    assert version.tags == {
        "metric": "ndcg_at_10",
        "value": str(best.data.metrics["ndcg_at_10"]),
        "valid_value": str(best.data.metrics["valid_ndcg_at_10"]),
        "run_id": best.info.run_id,
        "git.commit": best.data.tags["git.commit"],
        "git.dirty": best.data.tags["git.dirty"],
        "airush.task": "music",
        "airush.model": best.data.tags["airush.model"],
        "airush.model_sha256": best.data.tags["airush.model_sha256"],  # checked against a download first
        "sweep_run_id": parent.info.run_id,
    }
    # chosen on valid, never on test
    assert best.data.metrics["valid_ndcg_at_10"] == max(c.data.metrics["valid_ndcg_at_10"] for c in children)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    served = mlflow.pyfunc.load_model("models:/music-best/1").predict(pd.DataFrame({"user": [0, 1]}))
    assert served.groupby("user").size().tolist() == [10, 10]

    # a run of its own becomes the next version
    other = next(c for c in children if c.info.run_id != best.info.run_id)
    assert str(register(tracking_uri, other.info.run_id, "music-best").version) == "2"

    # one line for what cannot be registered
    with pytest.raises(UserError, match="no run 'nope' in sqlite"):
        register(tracking_uri, "nope", "music-best")
    failed = client.create_run(experiment_id)
    client.set_terminated(failed.info.run_id, "FAILED")
    with pytest.raises(UserError, match=f"run {failed.info.run_id} is FAILED; only FINISHED runs"):
        register(tracking_uri, failed.info.run_id, "music-best")
    bare = client.create_run(experiment_id)
    client.set_terminated(bare.info.run_id, "FINISHED")
    with pytest.raises(UserError, match=f"run {bare.info.run_id} has no MLflow Model"):
        register(tracking_uri, bare.info.run_id, "music-best")
    with pytest.raises(UserError, match="the following arguments are required: --name"):
        registry_main([parent.info.run_id])
    with pytest.raises(UserError, match="no MLflow store at"):
        register(f"sqlite:///{tmp_path / 'missing.db'}", parent.info.run_id, "music-best")
    result = run_airush(["register", "nope", "--name", "x"], tmp_path, tracking_uri)
    assert (
        result.returncode == 2 and result.stderr.strip() == f"airush: error: no run 'nope' in {tracking_uri}"
    )


def test_best_child_without_the_sweeps_tag_is_chosen_on_valid_and_tagged_with_both(tracking_uri, tmp_path):
    """A sweep that never closed (no `best.run_id`): the best FINISHED child by valid, never by test; test only
    for a child with no valid score. The version carries both values."""
    from airush.records.registry import best_child, register
    from airush.tracking.model_integrity import MODEL_SHA256_TAG, model_sha256

    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("abuse", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment_id, tags={"airush.sweep": "parent"})
    model = tmp_path / "model"  # an MLmodel of our flavor is all registering reads
    model.mkdir()
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: airush.tracking.pyfunc_loader\n"
    )

    def child(status: str, **metrics: float) -> str:
        tags = {
            "mlflow.parentRunId": parent.info.run_id,
            "airush.primary_metric": "roc_auc",
            MODEL_SHA256_TAG: model_sha256(model),
        }
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        client.log_artifacts(run_id, str(model), "model")
        client.set_terminated(run_id, status)
        return run_id

    child("FINISHED", roc_auc=0.99, valid_roc_auc=0.70)  # best on test: choosing it would leak test
    chosen = child("FINISHED", roc_auc=0.80, valid_roc_auc=0.90)
    child("FINISHED", roc_auc=0.85)  # no valid score: ranked by test, below 0.90
    child("FAILED", roc_auc=0.95, valid_roc_auc=0.95)
    assert best_child(client, client.get_run(parent.info.run_id), tracking_uri).info.run_id == chosen

    version = register(tracking_uri, parent.info.run_id, "abuse-best")
    assert version.run_id == chosen
    assert {k: version.tags[k] for k in ("metric", "value", "valid_value", "sweep_run_id")} == {
        "metric": "roc_auc",
        "value": "0.8",
        "valid_value": "0.9",
        "sweep_run_id": parent.info.run_id,
    }
    assert version.description.endswith("roc_auc=0.8 on test, 0.9 on valid")
