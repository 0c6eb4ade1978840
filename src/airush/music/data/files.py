"""User-written play logs in the documented schema, CSV or Parquet, with optional item metadata.

interactions: user, item (any ids: strings or numbers), [plays] (> 0, default 1), [timestamp] (integer unix
seconds, default -1). items: item, [artist], [album], [genre], [year], [tags] ("|"-separated). Every item in
the interactions must appear in the items file (when one is given); items nobody played join the catalogue
as cold-start items. Repeated (user, item) rows add up their plays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from airush.data.inputs import resolve_path
from airush.data.tables import blank_cells, integer_column, number_column, read_table
from airush.errors import DataError
from airush.music.data import Plays, PlaySource

CATEGORIES = ("artist", "album", "genre")


@dataclass
class InteractionFiles(PlaySource):
    # paths the CLI checks first (airush.data.inputs)
    inputs: ClassVar[dict[str, str]] = {"interactions": "file", "items": "file"}

    interactions: str
    items: str | None = None

    def load(self, seed: int = 0, stages=None) -> Plays:
        path = resolve_path(self.interactions)
        frame = read_table(path, ["user", "item"], ["plays", "timestamp"])
        for column in ("user", "item"):
            _no_blanks(frame, column, path)
        plays = (
            number_column(frame, "plays", path, positive=True) if "plays" in frame else np.ones(len(frame))
        )
        timestamp = (
            integer_column(frame, "timestamp", path, missing=-1)
            if "timestamp" in frame
            else np.full(len(frame), -1)
        )
        user_ids, user = np.unique(frame["user"].astype(str).to_numpy(), return_inverse=True)
        raw_items = frame["item"].astype(str).to_numpy()
        items, item_ids, item_tags = (
            self._metadata(raw_items) if self.items else (None, np.unique(raw_items), None)
        )
        item = np.searchsorted(item_ids, raw_items)
        if items is None:
            items = pd.DataFrame({"item": np.arange(len(item_ids))}).assign(
                artist=-1, album=-1, genre=-1, year=-1
            )
        interactions = pd.DataFrame(
            {"user": user, "item": item, "plays": plays, "timestamp": timestamp}
        ).astype({"user": np.int64, "item": np.int64, "plays": np.float64, "timestamp": np.int64})
        return Plays(interactions, items.astype(np.int64), user_ids, item_ids, item_tags)

    def _metadata(self, raw_items: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, sp.csr_matrix | None]:
        path = resolve_path(self.items)
        meta = read_table(path, ["item"], [*CATEGORIES, "year", "tags"])
        _no_blanks(meta, "item", path)
        ids = meta["item"].astype(str).to_numpy()
        duplicated = pd.Series(ids).duplicated().to_numpy()
        if duplicated.any():
            i = int(np.flatnonzero(duplicated)[0])
            raise DataError(
                f"item {ids[i]!r} listed twice", path=path, row=i + meta.attrs["first_row"], column="item"
            )
        unknown = ~np.isin(raw_items, ids)
        if unknown.any():
            raise DataError(
                f"{int(unknown.sum())} played item(s) missing from the items file {path.name}, "
                f"e.g. {raw_items[unknown][0]!r}",
                path=resolve_path(self.interactions),
                row=int(np.flatnonzero(unknown)[0]) + 2,
                column="item",
            )
        order = np.argsort(ids, kind="stable")
        meta, ids = meta.iloc[order].reset_index(drop=True), ids[order]
        columns = {"item": np.arange(len(ids))}
        for name in CATEGORIES:
            values = meta[name].astype(str).str.strip() if name in meta else pd.Series([""] * len(ids))
            codes, _ = pd.factorize(values.replace("", np.nan), sort=True)
            columns[name] = codes  # -1 where blank
        columns["year"] = (
            integer_column(meta, "year", path, missing=-1) if "year" in meta else np.full(len(ids), -1)
        )
        item_tags = _tag_matrix(meta["tags"]) if "tags" in meta else None
        return pd.DataFrame(columns), ids, item_tags


def _no_blanks(frame: pd.DataFrame, column: str, path) -> None:
    blank = blank_cells(frame[column])
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise DataError(
            "expected an id, got a blank cell", path=path, row=i + frame.attrs["first_row"], column=column
        )


def _tag_matrix(tags: pd.Series) -> sp.csr_matrix:
    """items x tags counts from "rock|indie|..." cells."""
    text = tags.astype(object).where(tags.notna(), "").astype(str)  # Parquet nulls: no tags
    exploded = text.str.split("|").explode().str.strip()
    exploded = exploded[exploded != ""]
    codes, names = pd.factorize(exploded, sort=True)
    rows = exploded.index.to_numpy()
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, codes)), shape=(len(tags), len(names)))
    matrix.sum_duplicates()
    return matrix
