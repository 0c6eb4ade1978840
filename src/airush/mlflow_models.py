"""A run's trained model as an MLflow Model, so `mlflow.pyfunc.load_model("runs:/<run id>/model")` serves it
without airush's CLI: abuse models take session features and return P(bot) per row (model=seq takes raw
events and returns `session_id, score` per session), music models take user ids and return each user's top-N
unplayed items.

LightGBM detectors use MLflow's LightGBM flavor (booster text). Every other model is a pyfunc whose loader,
`airush.pyfunc_loader`, calls the model class's own `load(directory)` on its npz/json/text files (torch
models: a state dict loaded with weights_only=True), so no model is ever pickled. The model's own files sit
in `data/<model dir name>/` of the MLflow Model (`data/model/` for a run), where the class's `load` still
reads them directly.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airush.abuse.models.lgbm import LightGBMDetector
from airush.pyfunc_loader import (
    ACCOUNT_COLUMN,
    MODEL_INFO,
    SERVING,
    AbuseScores,
    MusicRecommendations,
    SessionEventScores,
)

EXAMPLE_ROWS = 5  # real rows of the test split (abuse) or user ids (music) kept as the input example
LOADER_MODULE = "airush.pyfunc_loader"
# Warnings MLflow raises while saving that say nothing about our models: integer columns (ids, ranks, counts)
# "cannot hold missing values", and pandas deprecating a comparison inside MLflow's input-example writer.
QUIET = ("Hint: Inferred schema contains integer column", "Operation with range is deprecated")


def save_mlflow_model(cfg, model, splits, model_dir: Path, out_dir: Path) -> Path:
    """Write the MLflow Model of `model` (already saved by its own `save` in `model_dir`) to `out_dir` and
    return `out_dir`, which the run logs as its `model` artifact. Writes airush_model.json (and for music
    serving.npz) into `model_dir` beside the model's files."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        _save(cfg, model, splits, model_dir, out_dir)
    return out_dir


def _save(cfg, model, splits, model_dir: Path, out_dir: Path) -> None:
    if cfg.task.name == "music":
        _save_music(cfg, model, splits, model_dir, out_dir)
    elif getattr(model, "inputs", "features") == "sequences":
        _save_abuse_events(cfg, model, model_dir, out_dir)
    elif isinstance(model, LightGBMDetector):
        _save_lightgbm(model, splits, model_dir, out_dir)
    else:
        _save_abuse_pyfunc(model, splits, model_dir, out_dir)


def _save_lightgbm(model, splits, model_dir: Path, out_dir: Path) -> None:
    """MLflow's LightGBM flavor on the booster text the detector saved (its best iteration only)."""
    import lightgbm as lgb
    import mlflow.lightgbm

    example = splits.X["test"][model.feature_names_].head(EXAMPLE_ROWS)
    booster = lgb.Booster(model_file=str(model_dir / "model.txt"))
    mlflow.lightgbm.save_model(
        booster,
        str(out_dir),
        signature=_signature(example, booster.predict(example)),
        input_example=example,
        pip_requirements=_requirements("lightgbm", "numpy", "pandas"),
        metadata=_metadata("abuse", model),
    )
    shutil.copytree(model_dir, out_dir / "data" / model_dir.name)  # where pyfunc models keep them too


def _save_abuse_pyfunc(model, splits, model_dir: Path, out_dir: Path) -> None:
    """Any other abuse model: features in, P(bot) out; a per-account verifier also takes `account`."""
    X = splits.X["test"]
    if hasattr(model, "models_"):  # AccountVerifier: one model per account, rows routed by claimed account
        inner = next(iter(model.models_.values()))
        example = X[_feature_names(inner, X)].head(EXAMPLE_ROWS).copy()
        example[ACCOUNT_COLUMN] = np.asarray(splits.account["test"][: len(example)], dtype=np.int64)
    else:
        example = X[_feature_names(model, X)].head(EXAMPLE_ROWS)
    _write_info(model_dir, "abuse", model)
    output = AbuseScores(model).predict(example)
    _save_pyfunc(model_dir, out_dir, example, output, None, _metadata("abuse", model))


def _save_abuse_events(cfg, model, model_dir: Path, out_dir: Path) -> None:
    """A model that reads raw events (model=seq): events in, `session_id, score` per session out. What the run
    keeps holds no raw events, so the input example is `example_events()`, two short sessions in the schema."""
    devices = {name: bool(cfg.features.get(name, True)) for name in ("keyboard", "mouse")}
    _write_info(model_dir, "abuse", model, events=devices)
    example = example_events()
    output = SessionEventScores(model, **devices).predict(example)
    metadata = _metadata("abuse", model)
    _save_pyfunc(model_dir, out_dir, example, output, None, metadata, extra_requirements=("torch",))


def example_events() -> pd.DataFrame:
    """The input example of models that read raw events: a mouse session (moves, a left click) and a typing
    one, in the abuse events schema with event and button as text (as a CSV read with pandas gives them)."""
    nan = np.nan
    return pd.DataFrame(
        {
            "session_id": [1, 1, 1, 1, 1, 2, 2, 2, 2],
            "t_ms": [0.0, 16.0, 33.0, 120.0, 205.0, 0.0, 95.0, 140.0, 230.0],
            "event": ["move"] * 3 + ["button_down", "button_up"] + ["key_down", "key_up"] * 2,
            "key": [-1, -1, -1, -1, -1, 72, 72, 73, 73],
            "x": [400.0, 412.0, 431.0, 431.0, 431.0, nan, nan, nan, nan],
            "y": [300.0, 305.0, 311.0, 311.0, 311.0, nan, nan, nan, nan],
            "button": ["none"] * 3 + ["left", "left"] + ["none"] * 4,
        }
    )


def _save_music(cfg, model, splits, model_dir: Path, out_dir: Path) -> None:
    """User ids in, top-k unplayed items out; stores the id maps and every user's played items (train, valid
    and test: what a user would be served excludes all of them, as in the exported recommendations)."""
    recommend = cfg.task.get("recommend") or {}
    default_k = int(recommend.get("top_n") or cfg.task.ks[0])
    seen = (splits.seen_train + splits.valid + splits.test).tocsr()
    seen.sort_indices()
    np.savez(
        model_dir / SERVING,
        user_ids=_plain_ids(splits.user_ids),
        item_ids=_plain_ids(splits.item_ids),
        seen_indices=seen.indices,
        seen_indptr=seen.indptr,
        seen_shape=np.asarray(seen.shape, dtype=np.int64),
    )
    _write_info(model_dir, "music", model, default_k=default_k)
    serving = MusicRecommendations(model, model_dir / SERVING, default_k)
    example = pd.DataFrame({"user": serving.user_ids[:EXAMPLE_ROWS]})
    output = serving.predict(example)
    _save_pyfunc(model_dir, out_dir, example, output, {"k": default_k}, _metadata("music", model))


def _save_pyfunc(model_dir, out_dir, example, output, params, metadata, extra_requirements=()) -> None:
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(
        str(out_dir),
        loader_module=LOADER_MODULE,
        data_path=str(model_dir),
        signature=_signature(example, output, params),
        input_example=example,
        pip_requirements=_requirements("airush", "numpy", "pandas", "scipy", *extra_requirements),
        metadata=metadata,
    )


def _signature(example: pd.DataFrame, output: Any, params: dict[str, Any] | None = None):
    """Input/output schema from the example and what the model returned for it."""
    from mlflow.models import infer_signature

    return infer_signature(example, output, params=params)


def _feature_names(model, X: pd.DataFrame) -> list[str]:
    return list(getattr(model, "feature_names_", X.columns))


def _write_info(model_dir: Path, task: str, model, **extra: Any) -> None:
    info = {"task": task, "class": _class_path(model), **extra}
    (model_dir / MODEL_INFO).write_text(json.dumps(info, indent=1))


def _class_path(model) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _metadata(task: str, model) -> dict[str, str]:
    import airush

    return {
        "airush.task": task,
        "airush.model_class": _class_path(model),
        "airush.version": airush.__version__,
    }


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as a numpy dtype npz stores without pickle: text ids become fixed-width unicode."""
    ids = np.asarray(ids)
    return ids.astype(str) if ids.dtype == object else ids


def _requirements(*packages: str) -> list[str]:
    """Pinned to this environment; passed explicitly so MLflow does not spend seconds inferring them."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", *packages)]
