"""User-disjoint train/valid/test split: no account has sessions on two sides, so a model cannot score a
session by recognising its account."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airush.errors import ConfigError


def user_disjoint_split(
    sessions: pd.DataFrame, fractions: dict[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Row positions of `sessions` per split name, users assigned whole.

    Accounts with and without positive sessions are allocated separately, each in proportion to
    `fractions` (normalised), and positive accounts are dealt out in order of their bot kind, so every
    split gets its share of positives and of each kind (given enough accounts).
    """
    names = list(fractions)
    weights = np.array([fractions[k] for k in names], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"task.split fractions must be >= 0 and not all 0, got {dict(fractions)}")
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    users = np.unique(sessions["user_id"].to_numpy())
    positive = sessions[sessions["label"].to_numpy() == 1]
    kind = positive["kind"] if "kind" in positive else pd.Series("positive", index=positive.index)
    user_kind = kind.groupby(positive["user_id"]).first().reindex(users)
    side = pd.Series(-1, index=users)
    for is_positive in (False, True):
        members = user_kind.index[user_kind.notna().to_numpy() == is_positive]
        kinds = user_kind[members].fillna("").to_numpy()
        order = np.lexsort((rng.random(len(members)), kinds))
        side[members[order]] = deal(len(members), weights)
    assigned = side.reindex(sessions["user_id"]).to_numpy()
    return {name: np.flatnonzero(assigned == i) for i, name in enumerate(names)}


def deal(n: int, weights: np.ndarray) -> np.ndarray:
    """Split index for n items in turn: each goes to the split furthest below its share so far.

    Any prefix of the sequence is split in proportion to `weights` (within one item per split), so users of
    one kind, dealt consecutively, spread over all splits.
    """
    counts = np.zeros(len(weights))
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        deficit = weights * (i + 1) - counts
        out[i] = int(np.argmax(deficit))
        counts[out[i]] += 1
    return out
