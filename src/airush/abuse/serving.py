"""The abuse task's MLflow Models: what `mlflow.pyfunc.load_model("runs:/<id>/model")` serves.

Every session detector (LightGBM, model=seq, a user's own) takes raw events in the abuse events schema
(`session_id, t_ms, event, key, x, y, button`; event and button as text) and returns `session_id, score`
(P(bot)) per session: the MLflow Model carries the run's feature pipeline, its `features` config saved as
plain JSON params in `airush_model.json` and rebuilt at load from trusted targets only
(`airush.abuse.predict.build_pipeline`), so features are computed by the same code as in training. A
LightGBM detector's MLmodel also lists MLflow's `lightgbm` flavor on its booster text, so
`mlflow.lightgbm.load_model` still returns the booster (which takes session features). Per-account
verifiers (task.scope=account) take one row of action features per mouse action plus the claimed `account`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airush.errors import UserError
from airush.tracking.mlflow_model import (
    EXAMPLE_ROWS,
    metadata,
    save_pyfunc,
    write_info,
)

ACCOUNT_COLUMN = "account"  # per-account verification: the account a row claims to be


def save_mlflow_model(cfg, model, splits, model_dir: Path, out_dir: Path) -> None:
    if hasattr(model, "models_"):  # AccountVerifier
        _save_verifier(model, splits, model_dir, out_dir)
    else:
        _save_events_model(cfg, model, model_dir, out_dir, splits.calibration)


def _save_verifier(model, splits, model_dir: Path, out_dir: Path) -> None:
    """A per-account verifier: action features plus the claimed `account` in, P(not the owner) per row out."""
    X = splits.X["test"]
    inner = next(iter(model.models_.values()))
    example = X[_feature_names(inner, X)].head(EXAMPLE_ROWS).copy()
    example[ACCOUNT_COLUMN] = np.asarray(splits.account["test"][: len(example)], dtype=np.int64)
    write_info(model_dir, "abuse", model, serving=f"{__name__}.AbuseScores")
    output = AbuseScores(model).predict(example)
    save_pyfunc(model_dir, out_dir, example, output, None, metadata("abuse", model))


def _save_events_model(cfg, model, model_dir: Path, out_dir: Path, calibration=None) -> None:
    """A session detector: raw events in, `session_id, score` (and `probability`, with the run's calibration)
    per session out, through the run's feature pipeline. What the run keeps holds no raw events, so the
    input example is `example_events()`."""
    from airush.abuse.models.lgbm import LightGBMDetector
    from airush.abuse.predict import build_pipeline, pipeline_params

    params = pipeline_params(cfg, model)
    extra = {} if calibration is None else {"calibration": calibration.to_json()}
    copy_share = cfg.task.get("copy_share")
    if copy_share is not None:
        extra["copy_share"] = float(copy_share)
    write_info(model_dir, "abuse", model, serving=f"{__name__}.SessionEventScores", features=params, **extra)
    example = example_events()
    # the run's own features, which the user chose to run: built unchecked here; loading checks them
    pipeline = build_pipeline(params, check_trust=False)
    output = SessionEventScores(model, pipeline, calibration, copy_share).predict(example)
    lightgbm = isinstance(model, LightGBMDetector)
    extra = ("lightgbm",) if lightgbm else ("torch",) if model.inputs == "sequences" else ()
    save_pyfunc(model_dir, out_dir, example, output, None, metadata("abuse", model), extra_requirements=extra)
    if lightgbm:
        add_lightgbm_flavor(out_dir, f"data/{model_dir.name}/model.txt")


def add_lightgbm_flavor(out_dir: Path, booster_path: str) -> None:
    """List MLflow's `lightgbm` flavor on the booster text beside our pyfunc, so `mlflow.lightgbm.load_model`
    returns the booster (over session features); the pyfunc flavor stays ours (raw events)."""
    import lightgbm as lgb
    from mlflow.models import Model

    path = Path(out_dir) / "MLmodel"
    mlmodel = Model.load(str(path))
    mlmodel.add_flavor(
        "lightgbm",
        lgb_version=lgb.__version__,
        data=booster_path,
        model_class="lightgbm.basic.Booster",
        code=None,
    )
    mlmodel.save(str(path))


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
    """Session (or action) features in, P(bot) per row out; per-account verifiers also need `account`.
    Serves per-account verifiers, and feature models recorded before models took raw events."""

    features = None  # no feature pipeline: it takes features, not raw events

    def __init__(self, model) -> None:
        self.model = model

    @classmethod
    def from_info(cls, model, directory: Path, info: dict[str, Any]) -> AbuseScores:
        return cls(model)

    def get_raw_model(self) -> AbuseScores:
        return self

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
    """Raw events in, the detector's score per session out as rows `session_id, score`, plus `probability`
    (calibrated P(bot), `airush.abuse.calibration`) when the run fitted a calibration; sessions in the order
    they first appear (`airush.abuse.predict.score_sessions`). Columns as in the abuse events schema
    (`airush.abuse.data`): session_id, t_ms (ms, any origin), event, key (virtual key code, -1 on mouse
    events), x, y (screen px, NaN on key events), button; event and button as text. `features`: the run's
    feature pipeline (session features, or `SequenceInputs` for model=seq)."""

    def __init__(self, model, features, calibration=None, copy_share: float | None = None) -> None:
        self.model = model
        self.features = features
        self.calibration = calibration
        self.copy_share = copy_share  # the run's `task.copy_share` (`airush.abuse.copies.with_copy_rule`)

    @classmethod
    def from_info(cls, model, directory: Path, info: dict[str, Any]) -> SessionEventScores:
        from airush.abuse.calibration import Calibration
        from airush.abuse.predict import SequenceInputs, build_pipeline

        calibration = None
        if info.get("calibration") is not None:
            try:
                calibration = Calibration.from_json(info["calibration"])
            except (KeyError, TypeError, ValueError) as err:
                raise UserError(f"the model's calibration in airush_model.json is not valid: {err}") from None
        copy_share = info.get("copy_share")
        if copy_share is not None and not (
            isinstance(copy_share, int | float) and not isinstance(copy_share, bool) and 0 < copy_share <= 1
        ):
            raise UserError(f"the model's copy_share in airush_model.json is not in (0, 1]: {copy_share!r}")
        if "features" in info:
            return cls(model, build_pipeline(info["features"]), calibration, copy_share)
        return cls(model, SequenceInputs(**info.get("events", {})))  # model=seq saved before `features`

    def get_raw_model(self) -> SessionEventScores:
        """What `PyFuncModel.get_raw_model()` returns: this wrapper (the detector and its feature pipeline)."""
        return self

    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from airush.abuse.predict import score_sessions

        return score_sessions(self.model, self.features, data, self.calibration, self.copy_share)
