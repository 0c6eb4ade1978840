"""Per-account verification, as the Balabit challenge scored it: does this session belong to the account's
owner? One model per account learns the owner's mouse actions against other accounts' actions (Antal &
Egyed-Zsigmond 2019); a session is scored by the mean log-odds of P(not the owner) over its actions.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd

from airush.abuse.data import EventLog
from airush.abuse.features import event_codes, session_index
from airush.abuse.mouse_actions import segment_actions


def action_table(log: EventLog, pause_ms: float, min_events: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(the mouse rows of events regrouped by action: `session_id` holds the action id, each action's
    session id). Actions are cut as in mouse_actions.py (MM / PC / DD); shorter than `min_events` rows
    they carry too little to score and are left out."""
    events, session_ids = log.events, np.sort(log.sessions["session_id"].to_numpy())
    group = session_index(events["session_id"].to_numpy(), session_ids)
    actions = segment_actions(
        group,
        event_codes(events["event"]),
        events["button"].cat.codes.to_numpy(),
        events["t_ms"].to_numpy(np.float64),
        pause_ms,
    )
    kept = actions.size >= min_events
    rows = actions.rows[kept[actions.action]]
    renumbered = np.repeat(np.arange(kept.sum(), dtype=np.int64), actions.size[kept])
    table = events.iloc[rows].assign(session_id=renumbered).reset_index(drop=True)
    return table, session_ids[actions.session[kept]]


PROBABILITY_FLOOR = 1e-6  # an action's P is clipped to [floor, 1 - floor]: no single action is certain
VALID_SHARE = 0.2  # of each account's training actions, held out for early stopping


def impostor_counts(own, total: int, impostor_ratio: float) -> np.ndarray:
    """Other accounts' actions each account's model trains against: `impostor_ratio` per owner action, at
    most all the others (`own`: owner actions, per account or of one; `total`: actions of all accounts)."""
    own = np.asarray(own, dtype=np.int64)
    return np.minimum(total - own, (impostor_ratio * own).astype(np.int64))


def too_small_accounts(account: np.ndarray, impostor_ratio: float) -> dict[int, tuple[int, int]]:
    """{account: (owner actions, impostor actions)} for the accounts whose model cannot be fitted: it needs
    an action of each class to train on and a third to hold out (LightGBM refuses one class or no holdout)."""
    users, own = np.unique(account, return_counts=True)
    impostors = impostor_counts(own, len(account), impostor_ratio)
    small = (impostors < 1) | (own + impostors < 3)
    return {
        int(u): (int(o), int(i)) for u, o, i in zip(users[small], own[small], impostors[small], strict=True)
    }


def mended_holdout(valid: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A random holdout mask, mended only where it leaves training without a class (a class held out whole
    gives its first row back) or holds out nothing (the larger class's last row goes), so small accounts
    still fit; with 3 or more rows, both classes present, both hold afterwards."""
    valid = valid.copy()
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        if len(rows) and valid[rows].all():
            valid[rows[0]] = False
    if not valid.any():
        valid[np.flatnonzero(y == np.bincount(y).argmax())[-1]] = True
    return valid


class AccountVerifier:
    """One copy of a session classifier per account; `fit` and `score_sessions` route by account."""

    def __init__(self, template, impostor_ratio: float = 1.0, seed: int = 0) -> None:
        self.template = template
        self.impostor_ratio = impostor_ratio
        self.seed = seed

    def fit(self, X: pd.DataFrame, account: np.ndarray, bar=None) -> AccountVerifier:
        """X: actions of owners' own sessions; each account's model sees its owner (0) vs a sample of
        the other accounts' actions (1), `impostor_ratio` times as many; `VALID_SHARE` of them held out for
        early stopping."""
        rng = np.random.default_rng(self.seed)
        self.models_: dict[int, object] = {}
        self.history_: dict[str, dict[int, float]] = {}
        for user in np.unique(account):
            own = np.flatnonzero(account == user)
            others = np.flatnonzero(account != user)
            n_others = int(impostor_counts(len(own), len(account), self.impostor_ratio))
            others = rng.choice(others, n_others, replace=False)
            rows = np.r_[own, others]
            y = np.r_[np.zeros(len(own)), np.ones(len(others))].astype(np.int8)
            valid = mended_holdout(rng.random(len(rows)) < VALID_SHARE, y)
            model = copy.deepcopy(self.template)
            model.fit(X.iloc[rows[~valid]], y[~valid], X.iloc[rows[valid]], y[valid])
            self.models_[int(user)] = model
            for name, curve in getattr(model, "history_", {}).items():
                self.history_[f"user{user}_{name}"] = curve
            if bar is not None:
                bar.advance()
        return self

    def score_sessions(self, X: pd.DataFrame, account: np.ndarray, session: np.ndarray) -> pd.Series:
        """P(not the owner) of each session: its actions' log-odds, each from the claimed account's model,
        averaged (independent pieces of evidence add up in log-odds; a mean of probabilities lets one
        confident action count no more than a hesitant one) and mapped back through the logistic."""
        log_odds = np.full(len(X), np.nan)
        for user, model in self.models_.items():
            rows = np.flatnonzero(account == user)
            if len(rows):
                p = np.clip(model.predict_proba(X.iloc[rows]), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
                log_odds[rows] = np.log(p) - np.log1p(-p)
        mean = pd.Series(log_odds).groupby(session).mean()
        return 1.0 / (1.0 + np.exp(-mean))

    def save(self, directory: Path) -> None:
        for user, model in self.models_.items():
            model.save(directory / f"user{user}")
        model_cls = type(next(iter(self.models_.values())))
        meta = {"accounts": sorted(self.models_), "model": f"{model_cls.__module__}.{model_cls.__qualname__}"}
        (directory / "accounts.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> AccountVerifier:
        """Each account's model, loaded by the class recorded at save time (text/npz, never a pickle)."""
        import importlib

        meta = json.loads((directory / "accounts.json").read_text())
        module, name = meta["model"].rsplit(".", 1)
        model_cls = getattr(importlib.import_module(module), name)
        verifier = cls(template=None)
        verifier.models_ = {user: model_cls.load(directory / f"user{user}") for user in meta["accounts"]}
        return verifier
