"""The load side of airush's MLflow pyfunc models: `mlflow.pyfunc.load_model` imports this module and calls
`_load_pyfunc(data_path)` on the model's `data/` folder.

Everything read here is our own plain files (npz, json, LightGBM text, torch weights): the model class named in
`airush_model.json` loads its own folder with its `load(directory)`, so nothing is unpickled.

Abuse models answer with P(bot): feature models one score per input row (as MLflow's LightGBM flavor does);
models that read raw events (model=seq) one row `session_id, score` per session, since their rows are events.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airush.errors import UserError

MODEL_INFO = "airush_model.json"  # {"task", "class", "default_k"?, "events"?}: what `_load_pyfunc` builds
SERVING = "serving.npz"  # music: user/item ids of the data set and each user's played items (CSR)
ACCOUNT_COLUMN = "account"  # abuse, per-account verification: the account a row claims to be


def _load_pyfunc(data_path: str):
    directory = Path(data_path)
    info = json.loads((directory / MODEL_INFO).read_text())
    module, name = info["class"].rsplit(".", 1)
    model = getattr(importlib.import_module(module), name).load(directory)
    if info["task"] == "music":
        return MusicRecommendations(model, directory / SERVING, int(info["default_k"]))
    if "events" in info:
        return SessionEventScores(model, **info["events"])
    return AbuseScores(model)


class AbuseScores:
    """Session (or action) features in, P(bot) per row out; per-account verifiers also need `account`."""

    def __init__(self, model) -> None:
        self.model = model

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


class MusicRecommendations:
    """Users (the data set's own ids) in, their top-k unplayed items out as rows `user, rank, item`.

    An id the model never saw is refused rather than served popular items: a silent fallback would hide a
    mismatch between the caller's ids and the data the model was trained on.
    """

    def __init__(self, model, serving_path: Path, default_k: int) -> None:
        import scipy.sparse as sp

        self.model = model
        self.default_k = default_k
        with np.load(serving_path, allow_pickle=False) as data:
            self.user_ids, self.item_ids = data["user_ids"], data["item_ids"]
            shape = tuple(int(n) for n in data["seen_shape"])
            indices, indptr = data["seen_indices"], data["seen_indptr"]
            self.seen = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
        self.user_index = pd.Index(self.user_ids)

    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if "user" not in data:
            raise UserError("music recommendations need a 'user' column (the data set's own user ids)")
        k = (params or {}).get("k")
        k = self.default_k if k is None else int(k)
        if k < 1:
            raise UserError(f"k={k}: ask for at least one recommendation per user")
        users = data["user"].to_numpy()
        dense = self.user_index.get_indexer(users)
        if (dense < 0).any():
            missing = users[dense < 0]
            first = missing[0].item() if isinstance(missing[0], np.generic) else missing[0]
            raise UserError(
                f"{len(np.unique(missing))} unknown user id(s), e.g. {first!r}; "
                f"the model knows the {len(self.user_ids)} users of its training data"
            )
        top = self.model.recommend(dense, k, exclude=self.seen)
        keep = top >= 0  # a user with fewer than k unplayed items gets fewer rows
        return pd.DataFrame(
            {
                "user": np.repeat(users, keep.sum(axis=1)),
                "rank": np.nonzero(keep)[1].astype(np.int64) + 1,
                "item": self.item_ids[top[keep]],
            }
        )
