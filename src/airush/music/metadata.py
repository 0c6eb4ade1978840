"""Item metadata as one sparse items x tokens matrix: the form metadata-aware music models learn from.

Tokens, one namespace per field so equal ids of different fields never meet:
    artist:<id> · album:<id> · genre:<id>   weight 1 (categorical, from `Plays.items`)
    decade:<1990>                           weight 1 (from `year`)
    tag:<j>                                 weight log(1 + count of tag j on the item) (`Plays.item_tags`)
An unknown value (-1), a missing column or no `item_tags` gives no token, so an item can have none. The
weights are deliberately plain: each model applies its own (IDF, normalisation) on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from airush.errors import DataError
from airush.music.data import Plays

CATEGORICAL_FIELDS = ("artist", "album", "genre")


@dataclass
class ItemMetadata:
    matrix: sp.csr_matrix  # items x tokens, float32, row i = item id i
    tokens: np.ndarray  # token names ("artist:12", "decade:1990", "tag:3"), one per column

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


def item_metadata(plays: Plays) -> ItemMetadata:
    """The items x tokens matrix of a data set (columns grouped by field, values ascending within one)."""
    n_items = plays.n_items
    blocks, names = [], []
    items = plays.items if plays.items is not None else pd.DataFrame()
    rows = _item_rows(items, n_items) if len(items.columns) else np.arange(n_items)
    fields = [(f, items[f].to_numpy(np.int64)) for f in CATEGORICAL_FIELDS if f in items.columns]
    if "year" in items.columns:
        year = items["year"].to_numpy(np.int64)
        fields.append(("decade", np.where(year >= 0, year // 10 * 10, -1)))
    for field, values in fields:
        known = values >= 0
        uniques, column = np.unique(values[known], return_inverse=True)
        blocks.append(
            sp.csr_matrix(
                (np.ones(int(known.sum()), np.float32), (rows[known], column)), shape=(n_items, len(uniques))
            )
        )
        names.extend(f"{field}:{v}" for v in uniques)
    if plays.item_tags is not None:
        tags = sp.csr_matrix(plays.item_tags, dtype=np.float32, copy=True)
        if tags.shape[0] != n_items:
            raise DataError(f"item_tags has {tags.shape[0]} rows for {n_items} items")
        tags.sum_duplicates()
        if (tags.data < 0).any():
            raise DataError("item_tags holds negative tag counts")
        tags.data = np.log1p(tags.data)
        blocks.append(tags)
        names.extend(f"tag:{j}" for j in range(tags.shape[1]))
    matrix = sp.hstack(blocks, format="csr", dtype=np.float32) if blocks else sp.csr_matrix((n_items, 0))
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return ItemMetadata(matrix, np.asarray(names, dtype=object))


def _item_rows(items: pd.DataFrame, n_items: int) -> np.ndarray:
    """Each `items` row's item id, checked to cover the catalogue exactly once."""
    ids = items["item"].to_numpy(np.int64) if "item" in items.columns else np.arange(len(items))
    if len(ids) != n_items or not np.array_equal(np.sort(ids), np.arange(n_items)):
        raise DataError(f"item metadata must have exactly one row per item 0..{n_items - 1}")
    return ids
