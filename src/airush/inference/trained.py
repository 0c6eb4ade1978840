"""A recorded run's model as `airush predict`/`airush serve` use it: a verified local copy of its MLflow Model
(flavor and sha256 checked, `airush.tracking.model_integrity`), the run's resolved config (checked against the
trusted packages like `airush reproduce` does), its metrics and its task.

MODEL on the command line: a run id, a unique prefix of one, or `models:/NAME/VERSION` (`models:/NAME@ALIAS`),
resolved to the run that logged that registered version.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airush.errors import UserError

REGISTRY_PREFIX = "models:/"
MODEL_DATA = Path("data") / "model"  # the model's own files inside a run's MLflow Model


@dataclass
class TrainedModel:
    run_id: str
    task: str  # "abuse", "music", ...: the run's `task.name`
    config: dict[str, Any]  # the run's resolved config, checked (`check_recorded`)
    metrics: dict[str, float]  # the run's final metrics (abuse: `threshold`, chosen on valid)
    model_dir: Path  # the verified local MLflow Model (MLmodel, data/model/...)
    sha256: str  # its content hash, as the run recorded it

    @property
    def data_dir(self) -> Path:
        """The model class's own files (what its `load(directory)` reads) and `airush_model.json`."""
        return self.model_dir / MODEL_DATA

    def info(self) -> dict[str, Any]:
        """`airush_model.json`: the class, the serving wrapper and its settings (e.g. music `default_k`)."""
        from airush.tracking.mlflow_model import MODEL_INFO

        return json.loads((self.data_dir / MODEL_INFO).read_text())

    @functools.cached_property
    def model(self):
        """The run's MLflow Model as `mlflow.pyfunc` loads it, from the verified copy (our loader checks its
        files and imports only trusted classes); `.get_raw_model()` is the task's serving wrapper (music:
        `MusicRecommendations`, its id maps and model; abuse: scores from raw events)."""
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(self.model_dir))

    def bare_model(self):
        """The trained model alone, loaded by the class its config names (`model._target_`, trusted only);
        nothing of the config is instantiated."""
        from hydra.utils import get_class

        from airush.trust import check_trusted

        target = str((self.config.get("model") or {}).get("_target_", ""))
        if not target:
            raise UserError(f"run {self.run_id}'s recorded config has no model._target_")
        check_trusted(target, f"run {self.run_id}'s recorded config (model._target_)")
        return get_class(target).load(self.data_dir)


def resolve_run_id(client, ref: str) -> str:
    """The run id MODEL names: a run id or unique prefix, or a registered `models:/NAME/VERSION` (or `@ALIAS`)."""
    from mlflow.exceptions import MlflowException

    from airush.records.runs import find_run, is_sweep_parent

    if ref.startswith(REGISTRY_PREFIX):
        rest = ref[len(REGISTRY_PREFIX) :]
        name, slash, version = rest.rpartition("/")
        try:
            if slash and name and version:
                found = client.get_model_version(name, version)
            elif "@" in rest:
                name, _, alias = rest.partition("@")
                found = client.get_model_version_by_alias(name, alias)
            else:
                raise UserError(f"'{ref}': name a version, e.g. models:/{rest}/1 (or models:/{rest}@ALIAS)")
        except MlflowException as err:
            raise UserError(f"no registered model version {ref}: {err.message.splitlines()[0]}") from None
        if not found.run_id:
            raise UserError(f"registered model version {ref} was not logged by a run")
        return found.run_id
    run = find_run(client, ref)
    if run is None:
        raise UserError(f"no run '{ref}' in the MLflow store (a run id, a unique prefix, or models:/NAME/N)")
    if is_sweep_parent(run):
        raise UserError(
            f"run {run.info.run_id} is a sweep's parent; use one of its children (or its best.run_id)"
        )
    return run.info.run_id


@contextmanager
def trained_model(uri: str, ref: str) -> Iterator[TrainedModel]:
    """The run MODEL names, its model downloaded and verified into a temporary folder removed afterwards."""
    from airush.records.reproduce import check_recorded
    from airush.records.runs import open_store
    from airush.tracking.model_integrity import fetch_run_model

    client = open_store(uri)
    run_id = resolve_run_id(client, ref)
    folder = Path(tempfile.mkdtemp(prefix="airush-trained-"))
    try:
        model_dir, sha256 = fetch_run_model(client, run_id, folder)
        config = recorded_config(client, run_id, folder / "config")
        check_recorded(config, [], run_id)  # every _target_ trusted, nothing interpolating
        task = str((config.get("task") or {}).get("name", ""))
        if not task:
            raise UserError(f"run {run_id}'s recorded config has no task.name")
        metrics = dict(client.get_run(run_id).data.metrics)
        yield TrainedModel(run_id, task, config, metrics, model_dir, sha256)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def recorded_config(client, run_id: str, destination: Path) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    from airush.records.reproduce import CONFIG_ARTIFACT

    destination.mkdir(parents=True, exist_ok=True)
    try:
        path = client.download_artifacts(run_id, CONFIG_ARTIFACT, str(destination))
    except (MlflowException, OSError):
        raise UserError(f"run {run_id} has no {CONFIG_ARTIFACT} artifact: not an airush run") from None
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        config = None
    if not isinstance(config, dict):
        raise UserError(f"run {run_id}'s {CONFIG_ARTIFACT} is not a YAML mapping")
    return config
