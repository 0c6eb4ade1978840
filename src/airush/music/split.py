"""Per-user random holdout: each user's interactions are shuffled and cut train/valid/test."""

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
    entirely in the first split, so they are trained on but not evaluated. Vectorised: one shuffle key per row, ranks within users.
    """
    names = list(fractions)
    f = np.array([fractions[k] for k in names], dtype=np.float64)
    if len(names) < 2 or (f < 0).any() or f.sum() <= 0:
        raise ConfigError(f"task.split needs >= 2 non-negative fractions, got {dict(fractions)}")
    f = f / f.sum()
    min_interactions = max(int(min_interactions), len(names))
    rng = np.random.default_rng(seed)
    user = interactions["user"].to_numpy()
    order = np.lexsort((rng.random(len(user)), user))
    sorted_user = user[order]
    counts = np.bincount(sorted_user)
    first_row = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(len(order)) - first_row[sorted_user]
    n = counts[sorted_user]
    held = np.stack([np.maximum(1, np.rint(n * share)) for share in f[1:]]) * (n >= min_interactions)
    bounds = n - np.cumsum(held[::-1], axis=0)[::-1]  # where each held-out split starts in the user's ranks
    side = np.zeros(len(order), dtype=np.int64)
    for i in range(len(names) - 1):
        side += rank >= bounds[i]
    assignment = np.empty(len(order), dtype=np.int64)
    assignment[order] = side
    return {name: interactions[assignment == i].reset_index(drop=True) for i, name in enumerate(names)}
