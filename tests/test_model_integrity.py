"""A recorded model is loaded by airush only as airush wrote it: the run tags a content hash of its MLflow Model,
airush's loading paths (`load_run_model`, `airush register`) refuse a changed file or a flavor airush did not
write (a cloudpickled pyfunc never runs), and the pyfunc loader checks its own folder before importing
anything, so even `mlflow.pyfunc.load_model` refuses an edited airush model."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import mlflow
import pandas as pd
import pytest

from airush.errors import UserError
from airush.tracking.model_integrity import (
    MODEL_ID_TAG,
    MODEL_SHA256_TAG,
    fetch_run_model,
    flavor_problem,
    load_run_model,
    model_sha256,
)
from test_mlflow_models import latest_run

from conftest import SMALL

USERS = pd.DataFrame({"user": [0, 1]})


def trained_run(compose_cfg, tracking_uri: str, overrides: list[str]) -> tuple[object, str, Path]:
    """(client, run id, the folder of the run's logged model in the store) of a run trained on small data."""
    from airush.runner import run

    cfg = compose_cfg(overrides)
    run(cfg)
    client = mlflow.MlflowClient(tracking_uri)
    found = latest_run(client, cfg.task.name)
    logged = client.get_logged_model(found.data.tags[MODEL_ID_TAG])
    return client, found.info.run_id, local_folder(logged.artifact_location)


def local_folder(artifact_uri: str) -> Path:
    parts = urlsplit(artifact_uri)
    return Path(url2pathname(parts.path)) if parts.scheme == "file" else Path(artifact_uri)


@pytest.fixture
def music_run(compose_cfg, tracking_uri):
    return trained_run(compose_cfg, tracking_uri, ["task=music", "model=pop", *SMALL["music"]])


class Payload(mlflow.pyfunc.PythonModel):
    """A cloudpickled pyfunc whose loading leaves a file behind: what a store writer could put in a model."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def load_context(self, context) -> None:
        Path(self.marker).write_text("the payload ran")

    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


def swap_for_payload(model_folder: Path, tmp_path: Path) -> Path:
    """Replace the stored model's files with a cloudpickle pyfunc; the marker file it would write."""
    marker = tmp_path / "PAYLOAD_RAN"
    evil = tmp_path / "evil_model"
    mlflow.pyfunc.save_model(str(evil), python_model=Payload(str(marker)))
    marker.unlink(missing_ok=True)  # MLflow loads the model once while saving it
    shutil.rmtree(model_folder)
    shutil.copytree(evil, model_folder)
    return marker


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, UserError)
    return message


def test_a_run_tags_the_hash_of_its_model_and_an_intact_model_loads(music_run, tracking_uri, tmp_path):
    client, run_id, folder = music_run
    assert client.get_run(run_id).data.tags[MODEL_SHA256_TAG] == model_sha256(folder)
    _, sha = fetch_run_model(client, run_id, tmp_path / "download")
    assert sha == model_sha256(folder)

    for source in (client, tracking_uri):  # a client or the store's URI
        top = load_run_model(source, run_id).predict(USERS, params={"k": 3})
        assert top.groupby("user").size().tolist() == [3, 3]


def test_a_changed_model_file_is_refused_in_one_line(music_run, tracking_uri, monkeypatch):
    client, run_id, folder = music_run
    npz = next((folder / "data" / "model").glob("popularity.npz"))
    npz.write_bytes(npz.read_bytes()[:-1] + bytes([npz.read_bytes()[-1] ^ 1]))

    with pytest.raises(UserError) as err:
        load_run_model(client, run_id)
    assert one_line(err).startswith(f"run {run_id}'s model: its files changed since the run recorded them")

    # MLflow's own loader reaches our pyfunc loader, which refuses before the class loads anything
    from airush.music.models.pop import PopularityRecommender

    def never(*args, **kwargs):
        raise AssertionError("the model class was asked to load a changed folder")

    monkeypatch.setattr(PopularityRecommender, "load", classmethod(never))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    with pytest.raises(UserError) as err:
        mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert one_line(err).endswith("popularity.npz changed since airush saved the model; not loading it")

    from airush.records.registry import register

    with pytest.raises(UserError, match="its files changed since the run recorded them"):
        register(tracking_uri, run_id, "music-pop")


@pytest.mark.slow
def test_a_file_added_to_the_model_is_refused(music_run, tracking_uri, monkeypatch):
    client, run_id, folder = music_run
    (folder / "data" / "model" / "extra.py").write_text("print('hello')\n")
    with pytest.raises(UserError, match=f"run {run_id}'s model: its files changed"):
        load_run_model(client, run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    with pytest.raises(UserError, match=r"extra\.py changed since airush saved the model"):
        mlflow.pyfunc.load_model(f"runs:/{run_id}/model")


@pytest.mark.parametrize(
    "retag", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["same-tag", "tag-rewritten-too"]
)
def test_a_cloudpickle_model_swapped_in_never_runs(music_run, tracking_uri, tmp_path, retag):
    client, run_id, folder = music_run
    marker = swap_for_payload(folder, tmp_path)
    if retag:  # a writer who can also set tags: the flavor is what refuses it
        client.set_tag(run_id, MODEL_SHA256_TAG, model_sha256(folder))

    with pytest.raises(UserError) as err:
        load_run_model(tracking_uri, run_id)
    assert one_line(err) == (
        f"run {run_id}'s model declares a python_function flavor loaded by mlflow.pyfunc.model, "
        "not a flavor airush wrote: airush will not load it"
    )
    from airush.records.registry import register

    with pytest.raises(UserError, match="not a flavor airush wrote"):
        register(tracking_uri, run_id, "music-pop")
    assert not marker.exists()

    # what the README warns about: MLflow's own loader runs whatever a store holds
    mlflow.pyfunc.load_model(str(folder))
    assert marker.read_text() == "the payload ran"


@pytest.mark.slow
def test_a_run_recorded_without_a_hash_is_refused_with_how_to_record_it_again(music_run, tracking_uri):
    client, run_id, _ = music_run
    client.delete_tag(run_id, MODEL_SHA256_TAG)
    with pytest.raises(UserError) as err:
        load_run_model(client, run_id)
    assert one_line(err) == (
        f"run {run_id} recorded its model without a content hash (tag {MODEL_SHA256_TAG}; an older airush): "
        f"record it again with `airush reproduce {run_id}` and use the new run"
    )


@pytest.mark.slow
def test_register_tags_the_version_with_the_models_hash(music_run, tracking_uri):
    from airush.records.registry import register

    _, run_id, folder = music_run
    version = register(tracking_uri, run_id, "music-pop")
    assert version.tags[MODEL_SHA256_TAG] == model_sha256(folder)


@pytest.mark.slow
def test_a_lightgbm_detector_loads_through_our_pyfunc_with_mlflows_lightgbm_flavor_beside(
    compose_cfg, tracking_uri, tmp_path
):
    client, run_id, _ = trained_run(compose_cfg, tracking_uri, SMALL["abuse"])
    model = load_run_model(client, run_id)  # raw events in, one score per session out
    scored = model.predict(model.input_example)
    assert scored["session_id"].tolist() == [1, 2] and scored["score"].between(0, 1).all()
    local, _ = fetch_run_model(client, run_id, tmp_path / "download")
    booster = mlflow.lightgbm.load_model(str(local))  # the booster text, over session features
    assert type(booster).__name__ == "Booster" and booster.num_feature() > 0


PYFUNC = {"loader_module": "airush.tracking.pyfunc_loader", "data": "data/model", "python_version": "3.11"}
BOOSTER = {"data": "model.lgb", "model_class": "lightgbm.basic.Booster", "code": None}


@pytest.mark.parametrize(
    ("flavors", "problem"),
    [
        ({"python_function": PYFUNC}, None),
        ({"python_function": {**PYFUNC, "code": None, "streamable": False}}, None),
        ({"python_function": PYFUNC, "lightgbm": BOOSTER}, None),  # a detector since abuse models take events
        ({"python_function": {**PYFUNC, "loader_module": "mlflow.lightgbm"}, "lightgbm": BOOSTER}, None),
        (
            {"python_function": PYFUNC, "lightgbm": BOOSTER | {"code": "code"}},
            "declares a lightgbm flavor with code",
        ),
        ({"python_function": {**PYFUNC, "loader_module": "mlflow.lightgbm"}}, "loaded by mlflow.lightgbm"),
        (
            {
                "python_function": {**PYFUNC, "loader_module": "mlflow.lightgbm"},
                "lightgbm": BOOSTER
                | {"model_class": "lightgbm.sklearn.LGBMClassifier", "serialization_format": "cloudpickle"},
            },
            "declares a lightgbm flavor of 'lightgbm.sklearn.LGBMClassifier' (not booster text)",
        ),
        ({"python_function": {**PYFUNC, "code": "code"}}, "declares a python_function flavor with code"),
        (
            {"python_function": {**PYFUNC, "model_code_path": "m.py"}},
            "declares a python_function flavor with model_code_path",
        ),
        ({"python_function": {**PYFUNC, "loader_module": "evil"}}, "loaded by evil"),
        ({"python_function": PYFUNC, "sklearn": {}}, "declares the flavors python_function, sklearn"),
        ({"lightgbm": BOOSTER}, "declares the flavors lightgbm"),
        ({"python_function": "x"}, "has no readable flavors"),
        (None, "has no readable flavors"),
    ],
)
def test_only_the_flavors_airush_writes_are_accepted(flavors, problem):
    found = flavor_problem(flavors)
    assert found is None if problem is None else problem in str(found)
