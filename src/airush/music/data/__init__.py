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
