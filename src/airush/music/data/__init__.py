"""The interactions + item-metadata schema every music data source produces.

interactions (one row per user x item):
    user int64 (0..n_users-1) · item int64 (0..n_items-1) · plays float64 (> 0; play count or weight)
    · timestamp int64 (unix seconds, optional: -1 when unknown)
items (one row per item, index = item id):
    item int64 · artist int64 · album int64 · genre int64 (or -1) · year int64 (or -1)
item_tags (optional): items x tags sparse counts (Last.fm tags, Melon genres), for metadata-aware models.
user_ids / item_ids map the dense ids back to the source's own ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class Plays:
    interactions: pd.DataFrame
    items: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_tags: sp.csr_matrix | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


class PlaySource:
    """What `data=` builds for the music task: `load(seed, stages)` returns `Plays` in the schema above
    (`stages`: `airush.console.Stages` for progress, may be None). A user's own source subclasses this, or
    declares `task = "music"`; settings that are paths to its files may be declared in `inputs`
    (`airush.data.inputs`), so a missing one is refused before anything heavy loads."""

    task = "music"

    def load(self, seed: int = 0, stages=None) -> Plays:
        raise NotImplementedError


def filter_plays(plays: Plays, min_user_items: int = 0, min_item_users: int = 0) -> Plays:
    """Drop users with fewer than `min_user_items` distinct items and items with fewer than `min_item_users`
    distinct users, repeated until both hold (a k-core, like RecBole's user/item_inter_num_interval), then
    renumber the survivors densely. Reduces a catalogue without sampling: the same input gives the same output."""
    if not (min_user_items or min_item_users):
        return plays
    inter = plays.interactions
    keep_users = np.ones(plays.n_users, bool)
    keep_items = np.ones(plays.n_items, bool)
    while True:
        user_counts = np.bincount(inter["user"].to_numpy(), minlength=plays.n_users)
        item_counts = np.bincount(inter["item"].to_numpy(), minlength=plays.n_items)
        keep_users &= user_counts >= min_user_items
        keep_items &= item_counts >= min_item_users
        rows = keep_users[inter["user"].to_numpy()] & keep_items[inter["item"].to_numpy()]
        if rows.all():
            break
        inter = inter[rows]
    users, items = np.flatnonzero(keep_users), np.flatnonzero(keep_items)
    user_index = np.full(plays.n_users, -1, np.int64)
    user_index[users] = np.arange(len(users))
    item_index = np.full(plays.n_items, -1, np.int64)
    item_index[items] = np.arange(len(items))
    inter = inter.assign(user=user_index[inter["user"].to_numpy()], item=item_index[inter["item"].to_numpy()])
    item_rows = plays.items
    if item_rows is not None and len(item_rows.columns):
        if "item" in item_rows.columns:
            kept = item_index[item_rows["item"].to_numpy(np.int64)]
            item_rows = item_rows[kept >= 0].assign(item=kept[kept >= 0])
        else:
            item_rows = item_rows.iloc[items]
        item_rows = item_rows.reset_index(drop=True)
    return Plays(
        interactions=inter.reset_index(drop=True),
        items=item_rows,
        user_ids=plays.user_ids[users],
        item_ids=plays.item_ids[items],
        item_tags=None if plays.item_tags is None else plays.item_tags[items],
    )
