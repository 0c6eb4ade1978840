"""The abuse task's MLflow Models: what `mlflow.pyfunc.load_model("runs:/<id>/model")` serves.

Feature models take session features and return P(bot) per row (LightGBM detectors through MLflow's own
LightGBM flavor, booster text); models that read raw events (model=seq) take the events schema and return
`session_id, score` per session; per-account verifiers also take the claimed `account` of each row.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airush.errors import UserError
from airush.tracking.mlflow_model import (
    EXAMPLE_ROWS,
    metadata,
    requirements,
    save_pyfunc,
    signature,
    write_info,
)

ACCOUNT_COLUMN = "account"  # per-account verification: the account a row claims to be


def save_mlflow_model(cfg, model, splits, model_dir: Path, out_dir: Path) -> None:
    from airush.abuse.models.lgbm import LightGBMDetector

    if getattr(model, "inputs", "features") == "sequences":
        _save_events_model(cfg, model, model_dir, out_dir)
    elif isinstance(model, LightGBMDetector):
        _save_lightgbm(model, splits, model_dir, out_dir)
    else:
        _save_features_model(model, splits, model_dir, out_dir)


def _save_lightgbm(model, splits, model_dir: Path, out_dir: Path) -> None:
    """MLflow's LightGBM flavor on the booster text the detector saved (its best iteration only)."""
    import lightgbm as lgb
    import mlflow.lightgbm

    example = splits.X["test"][model.feature_names_].head(EXAMPLE_ROWS)
    booster = lgb.Booster(model_file=str(model_dir / "model.txt"))
    mlflow.lightgbm.save_model(
        booster,
        str(out_dir),
        signature=signature(example, booster.predict(example)),
        input_example=example,
        pip_requirements=requirements("lightgbm", "numpy", "pandas"),
        metadata=metadata("abuse", model),
    )
    shutil.copytree(model_dir, out_dir / "data" / model_dir.name)  # where pyfunc models keep them too


def _save_features_model(model, splits, model_dir: Path, out_dir: Path) -> None:
    """Any other abuse model: features in, P(bot) out; a per-account verifier also takes `account`."""
    X = splits.X["test"]
    if hasattr(model, "models_"):  # AccountVerifier: one model per account, rows routed by claimed account
        inner = next(iter(model.models_.values()))
        example = X[_feature_names(inner, X)].head(EXAMPLE_ROWS).copy()
        example[ACCOUNT_COLUMN] = np.asarray(splits.account["test"][: len(example)], dtype=np.int64)
    else:
        example = X[_feature_names(model, X)].head(EXAMPLE_ROWS)
    write_info(model_dir, "abuse", model, serving=f"{__name__}.AbuseScores")
    output = AbuseScores(model).predict(example)
    save_pyfunc(model_dir, out_dir, example, output, None, metadata("abuse", model))


def _save_events_model(cfg, model, model_dir: Path, out_dir: Path) -> None:
    """A model that reads raw events (model=seq): events in, `session_id, score` per session out. What the run
    keeps holds no raw events, so the input example is `example_events()`, two short sessions in the schema."""
    devices = {name: bool(cfg.features.get(name, True)) for name in ("keyboard", "mouse")}
    write_info(model_dir, "abuse", model, serving=f"{__name__}.SessionEventScores", events=devices)
    example = example_events()
    output = SessionEventScores(model, **devices).predict(example)
    save_pyfunc(
        model_dir, out_dir, example, output, None, metadata("abuse", model), extra_requirements=("torch",)
    )


def _feature_names(model, X: pd.DataFrame) -> list[str]:
    return list(getattr(model, "feature_names_", X.columns))


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


class AbuseScores:
    """Session (or action) features in, P(bot) per row out; per-account verifiers also need `account`."""

    def __init__(self, model) -> None:
        self.model = model

    @classmethod
    def from_info(cls, model, directory: Path, info: dict[str, Any]) -> AbuseScores:
        return cls(model)

    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        if not hasattr(self.model, "models_"):
            return np.asarray(self.model.predict_proba(data), dtype=np.float64)
        return verifier_scores(self.model.models_, data)


def verifier_scores(models: dict[int, Any], data: pd.DataFrame) -> np.ndarray:
    """P(not the owner) per row, by the model of the account the row claims; an unknown account is refused."""
    if ACCOUNT_COLUMN not in data:
        raise UserError(f"per-account verification needs an '{ACCOUNT_COLUMN}' column (the claimed account)")
    account = data[ACCOUNT_COLUMN].to_numpy()
    unknown = np.setdiff1d(np.unique(account), np.fromiter(models, dtype=np.int64, count=len(models)))
    if len(unknown):
        raise UserError(
            f"{len(unknown)} account(s) without a model, e.g. {unknown[0]}; "
            f"this verifier knows {len(models)} accounts"
        )
    features = data.drop(columns=ACCOUNT_COLUMN)
    scores = np.empty(len(data), dtype=np.float64)
    for user, model in models.items():
        rows = np.flatnonzero(account == user)
        if len(rows):
            scores[rows] = model.predict_proba(features.iloc[rows])
    return scores


class SessionEventScores:
    """Raw events in, P(bot) per session out as rows `session_id, score`, sessions in the order they first
    appear. Columns as in the abuse events schema (`airush.abuse.data`): session_id, t_ms (ms), event, key
    (virtual key code, -1 on mouse events), x, y (screen px, NaN on key events), button; event and button as
    text. A session's rows are put in time order (ties keep theirs), as the run's data loader has them.
    `keyboard`/`mouse`: which device's events the model was trained on (`features=keyboard|mouse`)."""

    def __init__(self, model, keyboard: bool = True, mouse: bool = True) -> None:
        self.model = model
        self.keyboard, self.mouse = keyboard, mouse

    @classmethod
    def from_info(cls, model, directory: Path, info: dict[str, Any]) -> SessionEventScores:
        return cls(model, **info.get("events", {}))

    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from airush.abuse.data import BUTTONS, EVENT_KINDS
        from airush.abuse.data.events import EVENT_COLUMNS
        from airush.abuse.sequences import session_sequences

        missing = [c for c in EVENT_COLUMNS if c not in data]
        if missing:
            raise UserError(
                f"events need the columns {', '.join(EVENT_COLUMNS)}; missing {', '.join(missing)}"
            )
        for column, names in (("event", EVENT_KINDS), ("button", BUTTONS)):
            unknown = sorted(set(data[column].astype(str).unique()) - set(names))
            if unknown:
                raise UserError(f"unknown {column} {unknown[0]!r}; expected one of {', '.join(names)}")
        session = data["session_id"].to_numpy(np.int64)
        events = data.iloc[np.lexsort((data["t_ms"].to_numpy(np.float64), session))]
        asked = pd.unique(session)
        ids = np.sort(asked)
        scores = self.model.predict_proba(session_sequences(events, ids, self.keyboard, self.mouse))
        return pd.DataFrame({"session_id": asked, "score": scores[np.searchsorted(ids, asked)]})
