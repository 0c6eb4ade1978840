"""Abuse task: events -> features -> split -> classifier -> detection metrics.

task.scope=session (default): one model scores every session (bot or human?), user-disjoint split.
task.scope=account: per-account verification (is this the account's owner?), for data that fixes its own
train/test parts such as Balabit: sessions are cut into mouse actions, one model per account.

The test set is a user-disjoint share of the data (`task.split.ratios`), the sessions the data marks
`part=test`, or every session of a second data set (`task.test_data`, e.g. `+data@task.test_data=balabit`):
train on one data set, test on another. A test set of one class (real humans, no bots) reports the metrics
it defines: false-positive and flag rates, score quantiles (`airush.abuse.metrics.defined_metrics`).

What a model reads is its class attribute `inputs`: "features" (default; one row of session statistics per
session, a DataFrame) or "sequences" (`airush.abuse.sequences.SessionSequences`, raw per-event inputs), so
only what the chosen model needs is built. `features=keyboard|mouse` selects the events either one sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from airush.abuse.calibration import METHODS
from airush.abuse.data import EventLog
from airush.abuse.evaluation import evaluate as evaluate  # the task's `evaluate` step
from airush.abuse.sequences import SessionSequences, session_sequences
from airush.abuse.split import (
    SessionSplits,
    check_session_classes,
    check_split_ratios,
    missing_class,
    part_test_rows,
    plural,
    split_around_test,
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
# task.test_labels: "data" = the test data's own labels; "human" = every test session is a person's (label 0),
# for real logs whose labels mean something else (Balabit's 1 = someone other than the owner, still human)
TEST_LABELS = ("data", "human")


@dataclass
class PreparedSessions:
    log: EventLog
    # one row per unit: a session (scope=session) or a mouse action (scope=account); or, for models whose
    # inputs are "sequences", one event sequence per session
    features: pd.DataFrame | SessionSequences
    unit_session: np.ndarray  # the session each feature row belongs to
    fingerprint: str  # of the data and, with task.test_data, of the test data too
    stats: dict[str, Any]
    test: PreparedSessions | None = None  # task.test_data: its sessions, all of them the test split
    tags: dict[str, str] = field(default_factory=dict)  # run tags, e.g. airush.test_data


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


def test_data(cfg: DictConfig) -> DictConfig | None:
    """The configured second data set to test on (`task.test_data`), or None; refused with scope=account,
    which tests each owner's model on the data's own part=test sessions."""
    value = cfg.task.get("test_data")
    if isinstance(value, str):  # `task.test_data=balabit`: a data option's name, not its config
        raise ConfigError(f"task.test_data={value}: choose a data config as +data@task.test_data={value}")
    if value is not None and "_target_" not in value:
        raise ConfigError(
            "task.test_data names no data class (_target_): choose a data config, e.g. "
            "+data@task.test_data=events task.test_data.events=... task.test_data.sessions=..."
        )
    if value is None and str(cfg.task.get("test_labels", "data")) != "data":
        raise ConfigError(
            f"task.test_labels={cfg.task.test_labels} relabels the test data, and task.test_data is not set: "
            f"set it (e.g. +data@task.test_data=balabit) or drop task.test_labels"
        )
    if value is not None and scope(cfg) == "account":
        raise ConfigError(
            "task.test_data is for task.scope=session; scope=account tests each account's model on the "
            "data's own part=test sessions: unset task.test_data"
        )
    return value


def test_data_name(cfg: DictConfig) -> str:
    """What the run tags as `airush.test_data`: the data option whose class `task.test_data` names (e.g.
    balabit, events), else that class; its settings are logged as `task.test_data.*` params."""
    from airush.config.choices import packaged_choices

    target = str(cfg.task.test_data.get("_target_", ""))
    choices = packaged_choices()
    named = [o for o in choices.options("data") if choices.option_config("data", o).get("_target_") == target]
    return named[0] if len(named) == 1 else target


def prepare(cfg: DictConfig, stages: Stages) -> PreparedSessions:
    inputs = model_inputs(cfg)  # refuse a mismatch before loading anything
    other = test_data(cfg)
    log: EventLog = instantiate(cfg.data).load(seed=int(cfg.seed), stages=stages)
    prepared = _prepare_log(cfg, log, inputs, stages)
    if other is None:
        return prepared
    test_log: EventLog = instantiate(other).load(seed=int(cfg.seed), stages=stages)
    if str(cfg.task.get("test_labels", "data")) == "human":
        test_log = EventLog(test_log.events, test_log.sessions.assign(label=np.int8(0), kind="human"))
    prepared.test = _prepare_log(cfg, test_log, inputs, stages, "test data ")
    prepared.fingerprint = frames_fingerprint(log.events, log.sessions, test_log.events, test_log.sessions)
    prepared.stats |= {f"test_{k}": v for k, v in prepared.test.stats.items()}
    prepared.tags = {"airush.test_data": test_data_name(cfg)}
    return prepared


def _prepare_log(
    cfg: DictConfig, log: EventLog, inputs: str, stages: Stages, what: str = ""
) -> PreparedSessions:
    """One log's model inputs: session features (or per-action ones, scope=account) or event sequences."""
    if inputs == "sequences":
        return _prepare_sequences(cfg, log, stages, what)
    extractor = instantiate(cfg.features, _convert_="all")  # parts of CombinedFeatures stay objects
    if scope(cfg) == "account":
        events, unit_session = action_table(
            log, float(cfg.task.action_pause_ms), int(cfg.task.min_action_events)
        )
        unit_ids = np.arange(len(unit_session), dtype=np.int64)
    else:
        events, unit_ids = log.events, log.sessions["session_id"].to_numpy()
        unit_session = unit_ids
    bar = stages.stage(f"{what}features", total=extractor.n_chunks(events, unit_ids))
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


def _prepare_sequences(cfg: DictConfig, log: EventLog, stages: Stages, what: str = "") -> PreparedSessions:
    session_ids = log.sessions["session_id"].to_numpy()
    bar = stages.stage(f"{what}sequences", total=1)
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
    anything is fitted, when a split lacks what the detector needs.

    scope=session: a test set the data fixes is taken as it is: every session of `task.test_data`, or the
    sessions marked `part=test`; train and valid are then split by account from the others (the data's
    train and valid shares of `task.split.ratios`). Without either, all three by account."""
    sessions = prepared.log.sessions
    if scope(cfg) == "account":
        return _account_split(prepared, float(cfg.task.impostor_ratio))
    ratios, seed = dict(cfg.task.split.ratios), int(cfg.seed)
    fixed = part_test_rows(sessions)
    if prepared.test is not None:
        if fixed is not None:
            raise DataError(
                f"task.test_data is set and the data marks {plural(len(fixed), 'session')} part=test: "
                f"test on one of them (unset task.test_data, or drop the data's part=test sessions)"
            )
        check_split_ratios(ratios, ("train", "valid"))
        parts = user_disjoint_split(sessions, {k: ratios[k] for k in ("train", "valid")}, seed=seed)
        check_session_classes(sessions, parts, cfg)
        return _with_test(_session_splits(prepared, parts), prepared.test)
    if fixed is not None:
        check_split_ratios(ratios, ("train", "valid"))
        parts = split_around_test(sessions, fixed, ratios, seed)
        rest = {k: v for k, v in parts.items() if k != "test"}
        outside = np.setdiff1d(np.arange(len(sessions)), fixed)
        check_session_classes(sessions, rest, cfg, outside, "the data's sessions outside part=test")
        return _session_splits(prepared, parts)
    check_split_ratios(ratios)
    parts = user_disjoint_split(sessions, ratios, seed=seed)
    check_session_classes(sessions, parts, cfg)
    return _session_splits(prepared, parts)


def _session_splits(prepared: PreparedSessions, parts: dict[str, np.ndarray]) -> SessionSplits:
    sessions = prepared.log.sessions
    return SessionSplits(
        X={k: prepared.features.take(rows) for k, rows in parts.items()},  # DataFrame or SessionSequences
        y={k: sessions["label"].to_numpy()[rows] for k, rows in parts.items()},
        kind={k: sessions["kind"].to_numpy()[rows] for k, rows in parts.items()},
        session_id={k: sessions["session_id"].to_numpy()[rows] for k, rows in parts.items()},
        test_events=prepared.log.events,
    )


def _with_test(splits: SessionSplits, test: PreparedSessions) -> SessionSplits:
    """`splits` with every session of the test data as its test split."""
    sessions = test.log.sessions
    if len(sessions) == 0:
        raise DataError("task.test_data has no session to test on")
    splits.X["test"] = test.features
    splits.y["test"] = sessions["label"].to_numpy()
    splits.kind["test"] = sessions["kind"].to_numpy()
    splits.session_id["test"] = sessions["session_id"].to_numpy()
    splits.test_events = test.log.events
    return splits


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
        "test_labels": one_of(TEST_LABELS),
        "calibration": one_of(METHODS),
        "target_fpr": "(0, 1)",
        "copy_share": "(0, 1] (null: off)",
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
        test_data: Any = None,
        test_labels: str = "data",
        calibration: str = "platt",
        target_fpr: float = 0.01,
        copy_share: float | None = 0.1,
    ) -> None:
        super().__init__(name, primary_metric)
        self.scope = scope
        self.action_pause_ms = action_pause_ms
        self.min_action_events = min_action_events
        self.impostor_ratio = impostor_ratio
        self.split_settings = split
        # a data config (`+data@task.test_data=balabit`); built by instantiate, loaded by `prepare`
        self.test_data = test_data
        self.test_labels = test_labels
        self.calibration = calibration  # score -> P(bot) map fitted on valid (`airush.abuse.calibration`)
        self.target_fpr = target_fpr  # the `strict_*` operating point: this share of valid's humans flagged
        self.copy_share = (
            copy_share  # sessions copying this share of an earlier one's clicks score it at least
        )

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
            "fpr",
            "flag_rate",
            "strict_fpr",
            "strict_flag_rate",
            "brier",
            "ece",
        ]
