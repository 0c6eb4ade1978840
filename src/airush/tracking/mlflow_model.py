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
    task deciding what it takes and returns, and return `out_dir`, which the run logs as its `model`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        task.save_mlflow_model(cfg, model, splits, model_dir, out_dir)
    return out_dir


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
