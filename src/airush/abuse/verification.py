"""Per-account verification, as the Balabit challenge scored it: does this session belong to the account's
owner? One model per account learns the owner's mouse actions against other accounts' actions; a session is
scored by the mean P(not the owner) of its actions (Antal & Egyed-Zsigmond 2019).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, EventLog

LEFT = BUTTONS.index("left")


def mouse_actions(events: pd.DataFrame, pause_ms: float) -> np.ndarray:
    """Action id of each event (events sorted by session, time): an action ends at a left-button release or
    before a pause longer than `pause_ms`; ids increase along the rows, so they group like session ids."""
    session = events["session_id"].to_numpy()
    t = events["t_ms"].to_numpy()
    code = events["event"].cat.codes.to_numpy()
    release = (code == EVENT_KINDS.index("button_up")) & (events["button"].cat.codes.to_numpy() == LEFT)
    new = np.r_[True, (session[1:] != session[:-1]) | release[:-1] | (np.diff(t) > pause_ms)]
    return np.cumsum(new) - 1


def action_table(log: EventLog, pause_ms: float, min_events: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(events regrouped by action: `session_id` holds the action id, each action's session id)."""
    action = mouse_actions(log.events, pause_ms)
    sizes = np.bincount(action)
    keep = sizes[action] >= min_events
    renumbered = np.cumsum(np.r_[True, action[keep][1:] != action[keep][:-1]]) - 1
    events = log.events[keep].assign(session_id=renumbered.astype(np.int64)).reset_index(drop=True)
    first = np.r_[0, np.flatnonzero(np.diff(renumbered)) + 1]
    return events, log.events["session_id"].to_numpy()[keep][first]


class AccountVerifier:
    """One copy of a session classifier per account; `fit` and `score_sessions` route by account."""

    def __init__(self, template, impostor_ratio: float = 1.0, seed: int = 0) -> None:
        self.template = template
        self.impostor_ratio = impostor_ratio
        self.seed = seed

    def fit(self, X: pd.DataFrame, account: np.ndarray, bar=None) -> AccountVerifier:
        """X: actions of owners' own sessions; each account's model sees its owner (0) vs a sample of
        the other accounts' actions (1), `impostor_ratio` times as many; 20% held out for early stopping."""
        rng = np.random.default_rng(self.seed)
        self.models_: dict[int, object] = {}
        self.history_: dict[str, dict[int, float]] = {}
        for user in np.unique(account):
            own = np.flatnonzero(account == user)
            others = np.flatnonzero(account != user)
            others = rng.choice(others, min(len(others), int(self.impostor_ratio * len(own))), replace=False)
            rows = np.r_[own, others]
            y = np.r_[np.zeros(len(own)), np.ones(len(others))].astype(np.int8)
            valid = rng.random(len(rows)) < 0.2
            model = copy.deepcopy(self.template)
            model.fit(X.iloc[rows[~valid]], y[~valid], X.iloc[rows[valid]], y[valid])
            self.models_[int(user)] = model
            for name, curve in getattr(model, "history_", {}).items():
                self.history_[f"user{user}_{name}"] = curve
            if bar is not None:
                bar.advance()
        return self

    def score_sessions(self, X: pd.DataFrame, account: np.ndarray, session: np.ndarray) -> pd.Series:
        """Mean P(not the owner) over each session's actions, scored by the claimed account's model."""
        scores = np.full(len(X), np.nan)
        for user, model in self.models_.items():
            rows = np.flatnonzero(account == user)
            if len(rows):
                scores[rows] = model.predict_proba(X.iloc[rows])
        return pd.Series(scores).groupby(session).mean()

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
