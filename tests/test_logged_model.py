"""What MLflow's UI shows of a run: its model as a logged model linked to the run's metrics and params, its data
as a dataset input whose digest is airush's data fingerprint, one copy of the model, and experiments that
open on the runs view of "Model training"."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from airush.runner import run
from airush.tracking.datasets import DIGEST_CHARS
from airush.tracking.model_integrity import MODEL_ID_TAG, MODEL_SHA256_TAG
from airush.tracking.store import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    RUNS_VIEW_TAG,
    experiment_url,
    ui_command,
)
from test_mlflow_models import latest_run
from test_model_integrity import local_folder

from conftest import SMALL


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def music_run(compose_cfg, tracking_uri):
    cfg = compose_cfg(["task=music", "model=ease", *SMALL["music"]])
    run(cfg)
    client = mlflow.MlflowClient(tracking_uri)
    return cfg, client, latest_run(client, "music")


def test_the_model_is_a_logged_model_with_the_runs_params_and_metrics(music_run, tracking_uri, monkeypatch):
    _, client, found = music_run
    run_id, experiment_id = found.info.run_id, found.info.experiment_id
    (logged,) = [m for m in client.search_logged_models([experiment_id]) if m.source_run_id == run_id]
    assert (logged.name, str(logged.status)) == ("model", "READY")
    assert found.data.tags[MODEL_ID_TAG] == logged.model_id
    assert logged.tags[MODEL_SHA256_TAG] == found.data.tags[MODEL_SHA256_TAG]
    assert [o.model_id for o in found.outputs.model_outputs] == [logged.model_id]
    assert logged.params == found.data.params  # the run's config, as compared in the UI
    linked = {m.key: m.value for m in logged.metrics}
    assert linked["ndcg_at_10"] == found.data.metrics["ndcg_at_10"]
    assert linked["valid_ndcg_at_10"] == found.data.metrics["valid_ndcg_at_10"]
    assert set(linked) <= set(found.data.metrics)
    assert {(m.dataset_name, m.dataset_digest) for m in logged.metrics} == {
        (found.data.tags["airush.data"], found.data.tags["data.fingerprint"][:DIGEST_CHARS])
    }
    # one point per metric in the run's history: linking the model logs no second copy
    assert len(client.get_metric_history(run_id, "ndcg_at_10")) == 1

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    top = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(pd.DataFrame({"user": [0, 1]}))
    assert top.groupby("user").size().tolist() == [10, 10]


def test_the_data_is_a_dataset_input_with_the_fingerprint_as_digest(music_run):
    _, _, found = music_run
    (data,) = found.inputs.dataset_inputs
    fingerprint = found.data.tags["data.fingerprint"]
    assert (
        data.dataset.name == found.data.tags["airush.data"]
    )  # the data option (`synthetic_music` in the CLI)
    assert data.dataset.digest == fingerprint[:DIGEST_CHARS]
    assert {t.key: t.value for t in data.tags} == {"mlflow.data.context": "train/valid/test"}
    columns = {c["name"]: c["type"] for c in json.loads(data.dataset.schema)["mlflow_colspec"]}
    assert columns["interactions.user"] == "long" and columns["interactions.plays"] == "double"
    assert "items.item" in columns and set(columns.values()) <= {
        "long",
        "double",
        "string",
        "boolean",
        "datetime",
    }
    profile = json.loads(data.dataset.profile)
    assert profile["fingerprint"] == fingerprint
    assert profile["interactions_rows"] == profile["interactions"] == profile["num_rows"] > 0
    assert profile["items_rows"] == profile["items"] == 400
    source = json.loads(data.dataset.source)
    assert data.dataset.source_type == "code"
    assert source["tags"]["mlflow.source.name"] == "airush.music.data.synthetic.SyntheticPlays"


def test_one_copy_of_the_model_across_the_run_dir_and_the_store(music_run, tmp_path):
    cfg, client, found = music_run
    logged = client.get_logged_model(found.data.tags[MODEL_ID_TAG])
    stored = local_folder(logged.artifact_location) / "data" / "model"
    weights = {path.name: sha256(path) for path in stored.iterdir() if path.suffix == ".npz"}
    assert weights, f"no model files in {stored}"
    run_dir = Path(cfg.paths.run_dir)
    assert not (run_dir / "model").exists() and not (run_dir / "mlflow_model").exists()
    for name, digest in weights.items():  # the run dir and the sqlite store's artifacts live under tmp_path
        copies = [p for p in tmp_path.rglob(name) if p.is_file() and sha256(p) == digest]
        assert copies == [stored / name], copies


def test_experiments_open_on_the_runs_view_of_model_training(music_run, tracking_uri):
    _, client, found = music_run
    experiment = client.get_experiment(found.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    view = json.loads(experiment.tags[RUNS_VIEW_TAG])
    assert view["selectedColumns"][:4] == [
        "attributes.`Dataset`",
        "attributes.`Models`",
        "metrics.`ndcg_at_10`",
        "metrics.`valid_ndcg_at_10`",
    ]
    assert view["orderByKey"] == "attributes.start_time"  # the order in which MLflow nests sweeps
    url = experiment_url("http://127.0.0.1:5000", experiment.experiment_id)
    assert url.endswith(
        f"/#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=airush&workflowType=machine_learning"
    )
    assert ui_command(tracking_uri, experiment.experiment_id).endswith(f"then open {url}")


def test_an_experiment_made_before_gets_its_kind_and_keeps_one_set_by_hand(tracking_uri):
    from airush.tracking.store import ensure_experiment

    client = mlflow.MlflowClient(tracking_uri)
    older = client.create_experiment("older")
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert ensure_experiment(client, "older", None) == older
    assert ensure_experiment(client, "chosen", None) == chosen
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"
