"""HetRec 2011 Last.fm 2K as published: `user_artists.dat` plays (items are artists), tags as metadata.

Quirks handled: CRLF line endings, UTF-8, non-contiguous user and artist ids (mapped to dense ids, the
originals kept in `user_ids` / `item_ids`), tag assignments for artists nobody played (dropped: the
catalogue is the played artists, as in RecBole's Last.fm files). There are no play timestamps (-1).
Metadata: each item is its own artist; genre = the artist's most used tag; `item_tags` = tag counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from airush.data.inputs import resolve_path
from airush.data.tables import integer_column, read_table
from airush.errors import DataError
from airush.music.data import Plays, PlaySource


@dataclass
class LastFMHetRec(PlaySource):
    inputs: ClassVar[dict[str, str]] = {"root": "folder"}  # paths the CLI checks first (airush.data.inputs)

    root: str

    def load(self, seed: int = 0, stages=None) -> Plays:
        root = resolve_path(self.root)
        if not root.is_dir():
            raise DataError(
                "Last.fm HetRec folder not found (set data.root=... or AIRUSH_DATA_DIR)", path=root
            )
        plays_path = root / "user_artists.dat"
        plays = read_table(plays_path, ["userID", "artistID", "weight"])
        user = integer_column(plays, "userID", plays_path)
        artist = integer_column(plays, "artistID", plays_path)
        weight = integer_column(plays, "weight", plays_path, min_value=1)
        user_ids, user_code = np.unique(user, return_inverse=True)
        item_ids, item_code = np.unique(artist, return_inverse=True)
        interactions = pd.DataFrame(
            {"user": user_code, "item": item_code, "plays": weight.astype(np.float64), "timestamp": -1}
        ).astype({"user": np.int64, "item": np.int64, "timestamp": np.int64})

        tags_path = root / "user_taggedartists.dat"
        tagged = read_table(tags_path, ["userID", "artistID", "tagID", "day", "month", "year"])
        tag_artist = integer_column(tagged, "artistID", tags_path)
        tag_id = integer_column(tagged, "tagID", tags_path)
        known = np.isin(tag_artist, item_ids)
        tag_ids, tag_code = np.unique(tag_id[known], return_inverse=True)
        item_tags = sp.csr_matrix(
            (np.ones(int(known.sum()), np.float32), (np.searchsorted(item_ids, tag_artist[known]), tag_code)),
            shape=(len(item_ids), len(tag_ids)),
        )
        item_tags.sum_duplicates()
        has_tags = np.diff(item_tags.indptr) > 0
        top_tag = np.full(len(item_ids), -1, dtype=np.int64)
        if has_tags.any():  # argmax of an empty selection fails
            top_tag[has_tags] = np.asarray(item_tags[has_tags].argmax(axis=1)).ravel()
        items = pd.DataFrame(
            {"item": np.arange(len(item_ids)), "artist": np.arange(len(item_ids)), "album": -1, "genre": top_tag,
             "year": -1}
        ).astype(np.int64)  # fmt: skip
        return Plays(interactions, items, user_ids, item_ids, item_tags)
