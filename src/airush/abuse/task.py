"""Abuse task: events -> features -> split -> classifier -> detection metrics.

task.scope=session (default): one model scores every session (bot or human?), user-disjoint split.
task.scope=account: per-account verification (is this the account's owner?), for data that fixes its own
train/test parts such as Balabit: sessions are cut into mouse actions, one model per account.

What a model reads is its class attribute `inputs`: "features" (default; one row of session statistics per
session, a DataFrame) or "sequences" (`airush.abuse.sequences.SessionSequences`, raw per-event inputs), so
only what the chosen model needs is built. `features=keyboard|mouse` selects the events either one sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypedDict

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from airush.abuse.data import EventLog
from airush.abuse.metrics import (
    best_f1_threshold,
    detection_metrics,
    equal_error_rate,
    has_both_classes,
    ranking_metrics,
    recall_at_fpr,
    recall_by_kind,
)
from airush.abuse.plots import save_evaluation_plots
from airush.abuse.sequences import SessionSequences, session_sequences
from airush.abuse.split import (
    LABEL_NAMES,
    check_split_ratios,
    missing_class,
    plural,
    split_gap,
    user_disjoint_split,
)
from airush.abuse.verification import AccountVerifier, action_table, too_small_accounts
from airush.compute.devices import fit_devices
from airush.console import Stages
from airush.data.fingerprint import frames_fingerprint
from airush.errors import ConfigError, DataError
from airush.model import one_of
from airush.task import Task, training_steps

SCOPES = ("session", "account")
INPUTS = ("features", "sequences")


@dataclass
class PreparedSessions:
    log: EventLog
    # one row per unit: a session (scope=session) or a mouse action (scope=account); or, for models whose
    # inputs are "sequences", one event sequence per session
    features: pd.DataFrame | SessionSequences
    unit_session: np.ndarray  # the session each feature row belongs to
    fingerprint: str
    stats: dict[str, Any]


@dataclass
class SessionSplits:
    X: dict[str, pd.DataFrame | SessionSequences]
    y: dict[str, np.ndarray]
    kind: dict[str, np.ndarray]
    session_id: dict[str, np.ndarray]
    account: dict[str, np.ndarray] | None = None  # scope=account: claimed account of each feature row


def scope(cfg: DictConfig) -> str:
    """The configured scope, session or account (checked before the run: `AbuseTask.ranges`)."""
    return str(cfg.task.get("scope", "session"))


def model_inputs(cfg: DictConfig) -> str:
    """What the configured model reads: its class attribute `inputs` (default "features")."""
    from hydra.utils import get_class

    value = str(getattr(get_class(cfg.model._target_), "inputs", "features"))
    if value not in INPUTS:
        raise ConfigError(f"model {cfg.model._target_} asks for inputs '{value}'; abuse provides {INPUTS}")
    if value == "sequences" and scope(cfg) == "account":
        raise ConfigError(
            "task.scope=account cuts sessions into mouse actions for feature models; use model=lgbm"
        )
    return value


def prepare(cfg: DictConfig, stages: Stages) -> PreparedSessions:
    inputs = model_inputs(cfg)  # refuse a mismatch before loading anything
    log: EventLog = instantiate(cfg.data).load(seed=int(cfg.seed), stages=stages)
    if inputs == "sequences":
        return _prepare_sequences(cfg, log, stages)
    extractor = instantiate(cfg.features, _convert_="all")  # parts of CombinedFeatures stay objects
    if scope(cfg) == "account":
        events, unit_session = action_table(
            log, float(cfg.task.action_pause_ms), int(cfg.task.min_action_events)
        )
        unit_ids = np.arange(len(unit_session), dtype=np.int64)
    else:
        events, unit_ids = log.events, log.sessions["session_id"].to_numpy()
        unit_session = unit_ids
    bar = stages.stage("features", total=extractor.n_chunks(events, unit_ids))
    features = extractor.transform(events, unit_ids, bar=bar)
    stats = log_stats(log) | {"feature_rows": len(features), "features": features.shape[1]}
    return PreparedSessions(log, features, unit_session, frames_fingerprint(log.events, log.sessions), stats)


def log_stats(log: EventLog) -> dict[str, int]:
    """What every abuse run logs about its data, whatever the model's inputs."""
    return {
        "events": log.n_events,
        "sessions": len(log.sessions),
        "users": int(log.sessions["user_id"].nunique()),
        "positives": int(log.sessions["label"].sum()),
    }


def _prepare_sequences(cfg: DictConfig, log: EventLog, stages: Stages) -> PreparedSessions:
    session_ids = log.sessions["session_id"].to_numpy()
    bar = stages.stage("sequences", total=1)
    sequences = session_sequences(
        log.events,
        session_ids,
        keyboard=bool(cfg.features.get("keyboard", True)),
        mouse=bool(cfg.features.get("mouse", True)),
    )
    bar.advance()
    stats = log_stats(log) | {
        "sequence_events": len(sequences.values),
        "sequence_channels": len(sequences.channels),
    }
    fingerprint = frames_fingerprint(log.events, log.sessions)
    return PreparedSessions(log, sequences, session_ids, fingerprint, stats)


def model_for(cfg: DictConfig, model):
    """The model `fit` trains: the configured one, or one copy per account for scope=account."""
    if scope(cfg) == "account":
        return AccountVerifier(model, impostor_ratio=float(cfg.task.impostor_ratio), seed=int(cfg.seed))
    return model


def split(prepared: PreparedSessions, cfg: DictConfig) -> SessionSplits:
    """Train/valid/test by account (scope=session) or the data's own parts (scope=account); one line, before
    anything is fitted, when a split lacks what the detector needs."""
    sessions = prepared.log.sessions
    if scope(cfg) == "account":
        return _account_split(prepared, float(cfg.task.impostor_ratio))
    ratios = dict(cfg.task.split.ratios)
    check_split_ratios(ratios)
    parts = user_disjoint_split(sessions, ratios, seed=int(cfg.seed))
    check_session_classes(sessions, parts, cfg)
    return SessionSplits(
        X={k: prepared.features.take(rows) for k, rows in parts.items()},  # DataFrame or SessionSequences
        y={k: sessions["label"].to_numpy()[rows] for k, rows in parts.items()},
        kind={k: sessions["kind"].to_numpy()[rows] for k, rows in parts.items()},
        session_id={k: sessions["session_id"].to_numpy()[rows] for k, rows in parts.items()},
    )


def check_session_classes(sessions: pd.DataFrame, parts: dict[str, np.ndarray], cfg: DictConfig) -> None:
    """Bot and human sessions in the data, and in each of train, valid and test (else ROC-AUC is NaN, or
    LightGBM cannot weigh the classes): a DataError naming the split, the class it lacks and how to get it."""
    labels, users = sessions["label"].to_numpy(), sessions["user_id"].to_numpy()
    absent = missing_class(labels)
    if absent is not None:
        raise DataError(
            f"the data has no {LABEL_NAMES[absent]} session (label {absent}) among its "
            f"{plural(len(labels), 'session')}: a detector needs both classes; {more_accounts(cfg, absent)}"
        )
    gap = split_gap(labels, parts)
    if gap is None:
        return
    name, label = gap
    if label is None:
        raise DataError(
            f"the {name} split has no session: {plural(np.unique(users).size, 'account')} cannot fill train, "
            f"valid and test (each account stays in one split); {more_accounts(cfg, None)}"
        )
    having = np.unique(users[labels == label]).size
    raise DataError(
        f"the {name} split has no {LABEL_NAMES[label]} session (label {label}; 0 of "
        f"{plural(len(parts[name]), 'session')}): {plural(having, 'account')} "
        f"{'has' if having == 1 else 'have'} {LABEL_NAMES[label]} sessions and each account stays in one "
        f"split; {more_accounts(cfg, label)}"
    )


def more_accounts(cfg: DictConfig, label: int | None) -> str:
    """How to get more accounts (of a class): synthetic data has settings for it, other data needs rows."""
    if "bot_share" in cfg.data and "n_users" in cfg.data:
        return {
            None: "raise data.n_users",
            1: "raise data.bot_share or data.n_users",
            0: "lower data.bot_share or raise data.n_users",
        }[label]
    if label is None:
        return "add accounts to the data"
    return f"add accounts with {LABEL_NAMES[label]} sessions (label {label}) to the data"


def _account_split(prepared: PreparedSessions, impostor_ratio: float) -> SessionSplits:
    """The data's own parts: owners' training sessions to learn from, labelled test sessions to score."""
    sessions = prepared.log.sessions.set_index("session_id")
    if "part" not in sessions:
        raise ConfigError("task.scope=account needs data with its own train/test parts (e.g. data=balabit)")
    part = sessions["part"].reindex(prepared.unit_session).to_numpy()
    account = sessions["user_id"].reindex(prepared.unit_session).to_numpy()
    out = SessionSplits(X={}, y={}, kind={}, session_id={}, account={})
    for name in ("train", "test"):
        rows = np.flatnonzero(part == name)
        out.X[name] = prepared.features.iloc[rows]
        out.account[name] = account[rows]
        out.session_id[name] = prepared.unit_session[rows]
        labelled = sessions.loc[np.unique(out.session_id[name])]
        out.y[name] = labelled["label"].to_numpy()
        out.kind[name] = labelled["kind"].to_numpy()
    check_account_parts(out, impostor_ratio)
    return out


def check_account_parts(splits: SessionSplits, impostor_ratio: float) -> None:
    """Per-account verification can run: every account scored in test has a model learnt from its own train
    actions against other accounts', and test holds owner and intruder sessions; else a DataError."""
    where = "task.scope=account"
    hint = "task.min_action_events and task.action_pause_ms decide which mouse actions count"
    train_accounts = np.unique(splits.account["train"])
    if train_accounts.size < 2:
        raise DataError(
            f"{where}: the train part has mouse actions of {plural(train_accounts.size, 'account')}; each "
            f"account's model learns its owner against other accounts' actions, so it needs 2 or more "
            f"({hint})"
        )
    absent = missing_class(splits.y["test"])
    if absent is not None:
        names = {0: "owner", 1: "intruder"}
        raise DataError(
            f"{where}: the test part has no {names[absent]} session (label {absent}) among its "
            f"{plural(len(splits.y['test']), 'session')} with mouse actions; verification is scored on both: "
            f"mark such sessions part=test"
        )
    untrained = np.setdiff1d(np.unique(splits.account["test"]), train_accounts)
    if untrained.size:
        shown = ", ".join(str(a) for a in untrained[:3]) + (", ..." if untrained.size > 3 else "")
        raise DataError(
            f"{where}: {plural(untrained.size, 'account')} scored in the test part "
            f"{'has' if untrained.size == 1 else 'have'} no mouse actions in the train part ({shown}); each "
            f"account's sessions are scored by a model of its owner: give them part=train sessions ({hint})"
        )
    small = too_small_accounts(splits.account["train"], impostor_ratio)
    if small:
        user, (own, impostors) = next(iter(small.items()))
        raise DataError(
            f"{where}: account {user}'s model would learn from {plural(own, 'owner action')} and "
            f"{plural(impostors, 'impostor action')}; it needs one of each and a third to hold out "
            f"({len(small)} such accounts): raise task.impostor_ratio or give them more part=train sessions "
            f"({hint})"
        )


def fit(model, splits: SessionSplits, cfg: DictConfig, stages: Stages, devices=None) -> None:
    if isinstance(model, AccountVerifier):
        bar = stages.stage("train accounts", total=len(np.unique(splits.account["train"])))
        model.fit(splits.X["train"], splits.account["train"], bar=bar)
        return
    bar = stages.stage("train", total=training_steps(model))
    X, y = splits.X, splits.y
    model.fit(X["train"], y["train"], X["valid"], y["valid"], bar=bar, **fit_devices(devices, model))
    bar.done()


def evaluate(
    model, splits: SessionSplits, cfg: DictConfig, stages: Stages, out_dir: Path
) -> dict[str, float]:
    """Test ROC-AUC, PR-AUC, EER, recall at 1% FPR, F1 (threshold chosen on valid, or 0.5 per account),
    recall per positive kind, and valid ROC-AUC / PR-AUC for model selection (what tuning optimises, so it
    never sees test); test predictions as Parquet."""
    if isinstance(model, AccountVerifier):
        by_session = model.score_sessions(splits.X["test"], splits.account["test"], splits.session_id["test"])
        scores, threshold = by_session.to_numpy(), 0.5
        session_ids = by_session.index.to_numpy()
        valid_metrics = {}
    else:
        valid_scores = model.predict_proba(splits.X["valid"])
        threshold = best_f1_threshold(splits.y["valid"], valid_scores)
        # valid ROC-AUC / PR-AUC, for model selection; NaN when valid holds a single class (nothing to rank:
        # such a run is not comparable, and choosing it by its test score would leak test)
        ranked = ranking_metrics(splits.y["valid"], valid_scores)
        valid_metrics = {f"valid_{k}": v for k, v in ranked.items()}
        scores = model.predict_proba(splits.X["test"])
        session_ids = splits.session_id["test"]
    y, kind = splits.y["test"], splits.kind["test"]
    metrics = detection_metrics(y, scores, threshold) | valid_metrics
    if has_both_classes(y):
        metrics |= {"eer": equal_error_rate(y, scores), "recall_at_1pct_fpr": recall_at_fpr(y, scores, 0.01)}
    metrics |= recall_by_kind(kind, y, (scores >= threshold).astype(int))
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"session_id": session_ids, "label": y, "kind": kind, "score": scores}).to_parquet(
        out_dir / "test_predictions.parquet", index=False
    )
    importance = model.feature_importance() if callable(getattr(model, "feature_importance", None)) else None
    if importance is not None:
        importance.to_frame().to_csv(out_dir / "feature_importance.csv")
    save_evaluation_plots(y, scores, threshold, importance, out_dir)
    return metrics


class SplitSettings(TypedDict, total=False):
    ratios: dict[str, float]  # split name -> share (normalised), e.g. {train: 0.7, valid: 0.15, test: 0.15}


class AbuseTask(Task):
    """Sessions of keyboard and mouse events -> P(bot or intruder) per session (or per account's owner)."""

    serving_module = "airush.abuse.serving"
    model_interface = "airush.abuse.models.Detector"
    ranges: ClassVar[dict[str, str]] = {
        "scope": one_of(SCOPES),
        "action_pause_ms": "> 0",
        "min_action_events": ">= 1",
        "impostor_ratio": "> 0",
        "split": "non-empty",
        "split.ratios": ">= 0",
    }

    def __init__(
        self,
        name: str = "abuse",
        primary_metric: str = "roc_auc",
        scope: str = "session",
        action_pause_ms: float = 10000,
        min_action_events: int = 5,
        impostor_ratio: float = 1.0,
        split: SplitSettings | None = None,
    ) -> None:
        super().__init__(name, primary_metric)
        self.scope = scope
        self.action_pause_ms = action_pause_ms
        self.min_action_events = min_action_events
        self.impostor_ratio = impostor_ratio
        self.split_settings = split

    def reported_metrics(self) -> list[str]:
        """What `evaluate` reports (per bot kind too); `threshold` is a setting it chose, not a score."""
        return [
            "roc_auc",
            "pr_auc",
            "f1",
            "precision",
            "recall",
            "eer",
            "recall_at_1pct_fpr",
            "recall_<kind>",
        ]
