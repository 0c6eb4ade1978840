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
    `fractions` (normalised) but with at least one account per split whenever there are as many accounts
    as splits, so valid and test always hold positives to score; positive accounts are dealt out in order of
    their bot kind, so each kind spreads over the splits.
    """
    names = list(fractions)
    weights = np.array([fractions[k] for k in names], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"task.split.ratios must be >= 0 and not all 0, got {dict(fractions)}")
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


def quotas(n: int, weights: np.ndarray) -> np.ndarray:
    """Items per split: largest-remainder shares of n, at least one per split of positive weight if n allows."""
    exact = weights * n
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    wanted = weights > 0
    if n >= wanted.sum():
        while (short := np.flatnonzero(wanted & (counts == 0))).size:
            counts[np.argmax(counts)] -= 1
            counts[short[0]] += 1
    return counts


def deal(n: int, weights: np.ndarray) -> np.ndarray:
    """Split index for n items in turn: each goes to the split furthest below its quota's share so far.

    The totals are `quotas(n, weights)`; every prefix is split nearly in proportion, so users of one kind,
    dealt consecutively, spread over all splits.
    """
    target = quotas(n, weights)
    share = target / max(n, 1)
    counts = np.zeros(len(weights), dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        deficit = np.where(counts < target, share * (i + 1) - counts, -np.inf)
        out[i] = int(np.argmax(deficit))
        counts[out[i]] += 1
    return out
