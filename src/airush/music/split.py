"""Train/valid/test splits of play logs: per-user random holdout, per-user leave-last-out by time, and one
global time cutoff. Each returns {split name: interactions}, covering every row exactly once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airush.errors import ConfigError


def per_user_random_split(
    interactions: pd.DataFrame, fractions: dict[str, float], seed: int, min_interactions: int
) -> dict[str, pd.DataFrame]:
    """Split each user's rows by `fractions` (e.g. train 0.8, valid 0.1, test 0.1).

    A user with n >= `min_interactions` rows (never fewer than one row per split) gives round(n·f) rows to
    every split after the first (at least one each) and the rest to the first; users with fewer rows stay
    entirely in the first split, so they are trained on but not evaluated. Vectorised: one shuffle key per
    row, ranks within users.
    """
    names, f = _normalised(fractions)
    min_interactions = max(int(min_interactions), len(names))
    rng = np.random.default_rng(seed)
    order, rank, n = _ranks_within_user(interactions, rng.random(len(interactions)))
    held = np.stack([np.maximum(1, np.rint(n * share)) for share in f[1:]]) * (n >= min_interactions)
    bounds = n - np.cumsum(held[::-1], axis=0)[::-1]  # where each held-out split starts in the user's ranks
    side = np.zeros(len(order), dtype=np.int64)
    for i in range(len(names) - 1):
        side += rank >= bounds[i]
    return _parts(interactions, names, order, side)


def per_user_leave_last_out(
    interactions: pd.DataFrame, names: list[str], min_interactions: int
) -> dict[str, pd.DataFrame]:
    """Each user's last interaction (by timestamp, then row order) goes to the last split, the one before it
    to the split before, and so on; the rest trains. Users with fewer than `min_interactions` (at least one
    per split) only train."""
    _require_timestamps(interactions, "leave_last_out")
    min_interactions = max(int(min_interactions), len(names))
    order, rank, n = _ranks_within_user(interactions, interactions["timestamp"].to_numpy())
    rank_from_end = n - 1 - rank
    held = len(names) - 1
    side = np.where((n >= min_interactions) & (rank_from_end < held), len(names) - 1 - rank_from_end, 0)
    return _parts(interactions, names, order, side)


def global_temporal_split(interactions: pd.DataFrame, fractions: dict[str, float]) -> dict[str, pd.DataFrame]:
    """One cutoff in time for everyone: the earliest share of interactions trains, later ones validate and
    test, so no split sees the future of an earlier one (ties at a cutoff go to the earlier split)."""
    _require_timestamps(interactions, "temporal")
    names, f = _normalised(fractions)
    t = interactions["timestamp"].to_numpy()
    cutoffs = np.quantile(t, np.cumsum(f)[:-1], method="higher")
    side = np.searchsorted(cutoffs, t, side="left")
    return _parts(interactions, names, np.arange(len(t)), side)


def _normalised(fractions: dict[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(fractions)
    f = np.array([fractions[k] for k in names], dtype=np.float64)
    if len(names) < 2 or (f < 0).any() or f.sum() <= 0:
        raise ConfigError(f"task.split needs >= 2 non-negative fractions, got {dict(fractions)}")
    return names, f / f.sum()


def _ranks_within_user(
    interactions: pd.DataFrame, key: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row order sorted by user then `key` then row, each sorted row's rank within its user, its user's
    number of rows)."""
    user = interactions["user"].to_numpy()
    order = np.lexsort((np.arange(len(user)), key, user))
    sorted_user = user[order]
    counts = np.bincount(sorted_user)
    rank = np.arange(len(order)) - np.r_[0, np.cumsum(counts)[:-1]][sorted_user]
    return order, rank, counts[sorted_user]


def _parts(
    interactions: pd.DataFrame, names: list[str], order: np.ndarray, side: np.ndarray
) -> dict[str, pd.DataFrame]:
    """Rows in `order` went to split `side`; back in file order, one frame per split name."""
    assignment = np.empty(len(order), dtype=np.int64)
    assignment[order] = side
    return {name: interactions[assignment == i].reset_index(drop=True) for i, name in enumerate(names)}


SPLIT_METHODS = ("random", "leave_last_out", "temporal")


def split_interactions(interactions: pd.DataFrame, split_cfg: dict, seed: int) -> dict[str, pd.DataFrame]:
    """Dispatch on `split_cfg["method"]` (random | leave_last_out | temporal) with the task's ratios."""
    method = split_cfg.get("method", "random")
    ratios = dict(split_cfg["ratios"])
    min_interactions = int(split_cfg.get("min_user_interactions", 1))
    if method == "random":
        return per_user_random_split(interactions, ratios, seed, min_interactions)
    if method == "leave_last_out":
        return per_user_leave_last_out(interactions, list(ratios), min_interactions)
    if method == "temporal":
        return global_temporal_split(interactions, ratios)
    raise ConfigError(f"task.split.method '{method}' unknown; choose from: {', '.join(SPLIT_METHODS)}")


def _require_timestamps(interactions: pd.DataFrame, method: str) -> None:
    if (interactions["timestamp"].to_numpy() < 0).any():
        raise ConfigError(
            f"task.split.method={method} needs a timestamp on every interaction; this data has none"
        )
