"""User-disjoint train/valid/test split: no account has sessions on two sides, so a model cannot score a
session by recognising its account. A detector needs both classes in each of its splits: the checks here say
which split lacks which, before anything is fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airush.errors import ConfigError

# What a detector does with each split: it cannot do without one.
SPLIT_USES = {
    "train": "the detector learns from it",
    "valid": "the detector early-stops and picks its threshold on it",
    "test": "the metrics are measured on it",
}
LABEL_NAMES = {1: "bot", 0: "human"}


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


def check_split_ratios(fractions: dict[str, float]) -> None:
    """`task.split.ratios` names train, valid and test, each with a share above 0 (a split of share 0 is
    empty: see `SPLIT_USES` for why none may be)."""
    missing = [name for name in SPLIT_USES if name not in fractions]
    if missing:
        raise ConfigError(
            f"task.split.ratios needs train, valid and test; "
            f"{', '.join(missing)} missing in {dict(fractions)}"
        )
    for name, use in SPLIT_USES.items():
        if not fractions[name] > 0:
            raise ConfigError(
                f"task.split.ratios.{name} is {fractions[name]}, so the {name} split is empty, but {use}: "
                f"give it a share > 0, e.g. task.split.ratios.{name}=0.15"
            )


def missing_class(labels: np.ndarray) -> int | None:
    """The label (1 before 0) that `labels` never holds; None when both occur."""
    return next((label for label in (1, 0) if not (labels == label).any()), None)


def split_gap(labels: np.ndarray, parts: dict[str, np.ndarray]) -> tuple[str, int | None] | None:
    """The first of train, valid, test that is empty (label None) or lacks a class (the label it lacks);
    None when each holds both. `parts` as `user_disjoint_split` returns them, positions into `labels`."""
    for name in SPLIT_USES:
        held = labels[parts[name]]
        if len(held) == 0:
            return name, None
        label = missing_class(held)
        if label is not None:
            return name, label
    return None


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
