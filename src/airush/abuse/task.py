"""Abuse task: events -> session features -> user-disjoint split -> classifier -> detection metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from airush.abuse.data import EventLog
from airush.abuse.metrics import best_f1_threshold, detection_metrics, recall_by_kind
from airush.abuse.split import user_disjoint_split
from airush.console import Stages
from airush.fingerprint import frames_fingerprint


@dataclass
class PreparedSessions:
    log: EventLog
    features: pd.DataFrame  # one row per session, aligned with log.sessions
    fingerprint: str
    stats: dict[str, Any]


@dataclass
class SessionSplits:
    X: dict[str, pd.DataFrame]
    y: dict[str, np.ndarray]
    kind: dict[str, np.ndarray]
    session_id: dict[str, np.ndarray]


def prepare(cfg: DictConfig, stages: Stages) -> PreparedSessions:
    source = instantiate(cfg.data)
    log: EventLog = source.load(seed=int(cfg.seed), stages=stages)
    extractor = instantiate(cfg.features)
    session_ids = log.sessions["session_id"].to_numpy()
    bar = stages.stage("features", total=extractor.n_chunks(log.events, session_ids))
    features = extractor.transform(log.events, session_ids, bar=bar)
    stats = {
        "events": log.n_events,
        "sessions": len(log.sessions),
        "users": int(log.sessions["user_id"].nunique()),
        "positives": int(log.sessions["label"].sum()),
        "features": features.shape[1],
    }
    return PreparedSessions(log, features, frames_fingerprint(log.events, log.sessions), stats)


def split(prepared: PreparedSessions, cfg: DictConfig) -> SessionSplits:
    sessions = prepared.log.sessions
    parts = user_disjoint_split(sessions, dict(cfg.task.split), seed=int(cfg.seed))
    return SessionSplits(
        X={k: prepared.features.iloc[rows] for k, rows in parts.items()},
        y={k: sessions["label"].to_numpy()[rows] for k, rows in parts.items()},
        kind={k: sessions["kind"].to_numpy()[rows] for k, rows in parts.items()},
        session_id={k: sessions["session_id"].to_numpy()[rows] for k, rows in parts.items()},
    )


def fit(model, splits: SessionSplits, cfg: DictConfig, stages: Stages) -> None:
    bar = stages.stage("train", total=int(getattr(model, "num_boost_round", 1)))
    model.fit(splits.X["train"], splits.y["train"], splits.X["valid"], splits.y["valid"], bar=bar)
    bar.done()


def evaluate(
    model, splits: SessionSplits, cfg: DictConfig, stages: Stages, out_dir: Path
) -> dict[str, float]:
    """Test metrics at the F1-best threshold on valid, recall per bot kind, test predictions as Parquet."""
    threshold = best_f1_threshold(splits.y["valid"], model.predict_proba(splits.X["valid"]))
    scores = model.predict_proba(splits.X["test"])
    metrics = detection_metrics(splits.y["test"], scores, threshold)
    metrics |= recall_by_kind(splits.kind["test"], splits.y["test"], (scores >= threshold).astype(int))
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "session_id": splits.session_id["test"],
            "label": splits.y["test"],
            "kind": splits.kind["test"],
            "score": scores,
        }
    ).to_parquet(out_dir / "test_predictions.parquet", index=False)
    if hasattr(model, "feature_importance"):
        model.feature_importance().to_frame().to_csv(out_dir / "feature_importance.csv")
    return metrics
