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

    Users are stratified by whether any of their sessions is positive, so each split gets its share of the
    accounts bots use. Fractions are normalised; each split gets at least one user of each stratum present.
    """
    names = list(fractions)
    weights = np.array([fractions[k] for k in names], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"task.split fractions must be >= 0 and not all 0, got {dict(fractions)}")
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    positive_users = sessions.groupby("user_id")["label"].max()
    side = pd.Series(-1, index=positive_users.index)
    for flag in (0, 1):
        users = positive_users.index[positive_users.to_numpy() == flag].to_numpy()
        users = users[rng.permutation(len(users))]
        cuts = np.floor(np.cumsum(weights)[:-1] * len(users) + 0.5).astype(int)
        for i, part in enumerate(np.split(users, cuts)):
            side[part] = i
    assigned = side.reindex(sessions["user_id"]).to_numpy()
    return {name: np.flatnonzero(assigned == i) for i, name in enumerate(names)}
