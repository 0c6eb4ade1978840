"""A run's trained model as an MLflow Model, so `mlflow.pyfunc.load_model("runs:/<run id>/model")` serves it
without airush's CLI. What goes in and out is the task's business (`airush.<task>.serving`); this module holds
what every task's MLflow Model shares.

Every model is a pyfunc whose loader, `airush.tracking.pyfunc_loader`, calls the model class's own
`load(directory)` on its npz/json/text files (torch models: a state dict loaded
with weights_only=True), so no model is ever pickled. The model's own files sit in `data/<model dir name>/`
of the MLflow Model (`data/model/` for a run), where the class's `load` still reads them directly;
`airush_model.json` beside them names the class and its serving wrapper, which the loader imports only from
the trusted packages (`airush.trust`), and the sha256 of every other file there (`files`), which the loader
checks before it imports or reads anything. A LightGBM detector's MLmodel also lists MLflow's `lightgbm`
flavor on its booster text (`data/model/model.txt`). A run tags the hash of the whole MLflow Model
(`airush.tracking.model_integrity`).

The run logs it as MLflow 3 logs models (`log_logged_model`): a LoggedModel named `model`, listed under the
experiment's Models, carrying the run's params and linked to its metrics and dataset; `runs:/<run id>/model`
resolves to it. Its files live only in the logged model's artifact location: the run dir keeps no copy.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from airush.tracking.model_integrity import OUR_PYFUNC_LOADER, file_digests

EXAMPLE_ROWS = 5  # real rows of the test split (abuse) or user ids (music) kept as the input example
LOADER_MODULE = OUR_PYFUNC_LOADER
MODEL_INFO = "airush_model.json"  # {"task", "class", "serving", "files", ...}: what the loader builds
# Warnings MLflow raises while saving that say nothing about our models: integer columns (ids, ranks, counts)
# "cannot hold missing values", and pandas deprecating a comparison inside MLflow's input-example writer.
QUIET = ("Hint: Inferred schema contains integer column", "Operation with range is deprecated")


def save_mlflow_model(task, cfg, model, splits, model_dir: Path, out_dir: Path) -> Path:
    """Write the MLflow Model of `model` (already saved by its own `save` in `model_dir`) to `out_dir`, the
    task deciding what it takes and returns, and return `out_dir`, which the run logs as its `model`.

    `model_dir` is moved, not copied: the MLflow Model holds the model's files (`data/<model dir name>/`), and
    once logged (`log_logged_model`) the store's copy is the only one."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        task.save_mlflow_model(cfg, model, splits, model_dir, out_dir)
    if (out_dir / "data" / model_dir.name).is_dir():
        shutil.rmtree(model_dir)
    return out_dir


def log_logged_model(
    client, run_id: str, experiment_id: str, folder: Path, params: dict[str, str], tags: dict[str, str]
) -> tuple[Any, str]:
    """Log the MLflow Model in `folder` the way MLflow's own `log_model` does: a LoggedModel named `model`
    whose source is the run (what `runs:/<run id>/model` resolves to, listed under the experiment's Logged
    models), with the run's params, its files in the model's own artifact location, the run's outputs
    naming it. Its MLmodel records the run and model ids, as `log_model` writes them. Returns the
    LoggedModel (READY once its files are stored, FAILED if storing them failed) and the content hash of
    its files, also tagged on it (`airush.model_sha256`)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from airush.tracking.model_integrity import MLMODEL, MODEL_ARTIFACT, MODEL_SHA256_TAG, model_sha256

    logged = client.create_logged_model(
        experiment_id, name=MODEL_ARTIFACT, source_run_id=run_id, tags=tags, params=params
    )
    try:
        mlmodel = Model.load(str(folder / MLMODEL))
        mlmodel.run_id, mlmodel.model_id = run_id, logged.model_id
        mlmodel.artifact_path, mlmodel.model_uuid = logged.artifact_location, logged.model_id
        mlmodel.save(str(folder / MLMODEL))
        sha = model_sha256(folder)
        client.set_logged_model_tags(logged.model_id, {MODEL_SHA256_TAG: sha})
        client.log_model_artifacts(logged.model_id, str(folder))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    return client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY), sha


def save_pyfunc(model_dir, out_dir, example, output, params, metadata, extra_requirements=()) -> None:
    import mlflow.pyfunc

    seal_info(Path(model_dir))
    mlflow.pyfunc.save_model(
        str(out_dir),
        loader_module=LOADER_MODULE,
        data_path=str(model_dir),
        signature=signature(example, output, params),
        input_example=example,
        pip_requirements=requirements("airush", "numpy", "pandas", "scipy", *extra_requirements),
        metadata=metadata,
    )


def signature(example: pd.DataFrame, output: Any, params: dict[str, Any] | None = None):
    """Input/output schema from the example and what the model returned for it."""
    from mlflow.models import infer_signature

    return infer_signature(example, output, params=params)


def write_info(model_dir: Path, task: str, model, serving: str, **extra: Any) -> None:
    info = {"task": task, "class": class_path(model), "serving": serving, **extra}
    (model_dir / MODEL_INFO).write_text(json.dumps(info, indent=1))


def seal_info(model_dir: Path) -> None:
    """Add to `airush_model.json` the sha256 of every other file of the model's folder, as it is now: what the
    pyfunc loader checks the folder against before loading it."""
    path = model_dir / MODEL_INFO
    info = json.loads(path.read_text())
    info["files"] = file_digests(model_dir, exclude=(MODEL_INFO,))
    path.write_text(json.dumps(info, indent=1))


def class_path(model) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def metadata(task: str, model) -> dict[str, str]:
    import airush

    return {
        "airush.task": task,
        "airush.model_class": class_path(model),
        "airush.version": airush.__version__,
    }


def requirements(*packages: str) -> list[str]:
    """Pinned to this environment; passed explicitly so MLflow does not spend seconds inferring them."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", *packages)]
