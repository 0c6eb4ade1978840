"""Kakao Arena Melon Playlist Continuation as published: playlists are the users, songs the items.

Files under `root`:
- playlist files (`train.json`; `val.json` / `test.json` have the same schema): a JSON array of
  {"id": int, "songs": [int, ...], "updt_date": "2013-12-19 18:36:19.000", "tags": [...], ...};
- `song_meta.json`: a JSON array of {"id": int, "album_id": int or null, "artist_id_basket": [int],
  "song_gn_gnr_basket": [str], "song_gn_dtl_gnr_basket": [str], "issue_date": "YYYYMMDD", ...}.

interactions: weight 1 per (playlist, song), a song listed twice counts once; timestamp = the playlist's
`updt_date` read as Korea Standard Time (UTC+9, Melon's own clock), in unix seconds. Playlists without songs
(the val/test questions) stay users with no interactions, so they still get recommendations.
items: album = album_id, artist = first of artist_id_basket, genre = first of song_gn_gnr_basket (dense codes
in sorted order, -1 when null or empty), year from issue_date (-1 for "00000000", year 0000 or not 8 digits).
item_tags: items x (genres, then detailed genres, then artist ids) counts; columns sorted within each block.
Not used: playlist tags and titles (the schema has no user features, and folding them into item tags would
leak held-out playlist membership into item features), like_cnt, and `genre_gn_all.json` (names codes only).
By default the catalogue is the songs of the loaded playlists; `all_songs=true` keeps every song of
song_meta (cold-start items nobody played). Records in error messages are counted from 1, in file order.
Files are parsed a batch of records at a time into arrays: memory never holds a whole file as Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from airush.data.inputs import resolve_path
from airush.errors import DataError
from airush.model import check_settings
from airush.music.data import Plays, PlaySource
from airush.music.data.json_records import Batch, json_record_batches

KST_OFFSET_S = 9 * 3600
DATE = r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2}(\.\d{1,9})?)?"  # Melon's updt_date; no UTC offset


@dataclass
class MelonPlaylists(PlaySource):
    inputs: ClassVar[dict[str, str]] = {"root": "folder"}  # paths the CLI checks first (airush.data.inputs)
    ranges: ClassVar[dict[str, str]] = {
        "playlists": "non-empty (name at least one playlist file, e.g. [train.json])"
    }

    root: str
    playlists: list[str] = field(default_factory=lambda: ["train.json"])
    song_meta: str = "song_meta.json"
    all_songs: bool = False

    def load(self, seed: int = 0, stages=None) -> Plays:
        root = resolve_path(self.root)
        if not root.is_dir():
            raise DataError("Melon folder not found (set data.root=... or AIRUSH_DATA_DIR)", path=root)
        check_settings("data", self)
        bar = stages.stage("read Melon", total=len(self.playlists) + 2) if stages else None
        step = bar.advance if bar else lambda: None
        parts = []
        for name in self.playlists:
            parts.append(read_playlists(root / name))
            step()
        playlists = Playlists.concat(parts)
        meta = read_song_meta(root / self.song_meta)
        step()
        plays = build_plays(playlists, meta, self.all_songs)
        step()
        return plays


@dataclass
class Playlists:
    """Playlists of one or more files; songs of all playlists in one flat array, `lengths` apart."""

    ids: np.ndarray  # int64, the file's playlist ids
    lengths: np.ndarray  # int64 songs per playlist
    songs: np.ndarray  # int64 song ids
    timestamp: np.ndarray  # int64 unix seconds
    source: list[tuple[Path, int]]  # (file, number of playlists) in load order, to name records in errors

    @classmethod
    def concat(cls, parts: list[Playlists]) -> Playlists:
        """One table of several files; a playlist id used twice is an error naming both records."""
        fields = [
            np.concatenate([getattr(p, f) for p in parts]) for f in ("ids", "lengths", "songs", "timestamp")
        ]
        playlists = cls(*fields, source=[s for p in parts for s in p.source])
        order = np.argsort(playlists.ids, kind="stable")
        repeated = np.flatnonzero(playlists.ids[order][1:] == playlists.ids[order][:-1])
        if len(repeated):
            (path, record), (first_path, first) = (playlists.locate(order[repeated[0] + k]) for k in (1, 0))
            used = f"record {first}" + ("" if first_path == path else f" of {first_path}")
            duplicate = playlists.ids[order[repeated[0]]]
            raise DataError(
                f"record {record}, key 'id': playlist id {duplicate} already in {used}", path=path
            )
        return playlists

    def locate(self, index: int) -> tuple[Path, int]:
        """(file, record counted from 1) of the index-th playlist."""
        for path, count in self.source:
            if index < count:
                return path, int(index) + 1
            index -= count
        raise IndexError(index)


def read_playlists(path: Path) -> Playlists:
    ids, lengths, songs, timestamp = [], [], [], []
    for first, records in json_record_batches(path):
        batch = Batch(path, first, records)
        batch.ids = batch.column("id", (int,), "an integer playlist id")
        flat, count = batch.ragged("songs", (int,), "song ids (integers)", batch.int64)
        expected = "a date like '2013-12-19 18:36:19.000'"
        dates = pd.Series(batch.column("updt_date", (str,), expected), dtype=object).astype(str)
        parsed = pd.to_datetime(dates.where(dates.str.fullmatch(DATE)), format="ISO8601", errors="coerce")
        if parsed.isna().any():
            i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(
                f"{batch.where(i)}, key 'updt_date': expected {expected}, got {dates[i]!r}", path=path
            )
        ids.append(batch.int64(batch.ids, len(records), "id", batch.ids))
        lengths.append(count)
        songs.append(flat)
        timestamp.append(parsed.to_numpy().astype("datetime64[s]").astype(np.int64) - KST_OFFSET_S)
    n = sum(map(len, ids))
    return Playlists(*map(np.concatenate, (ids, lengths, songs, timestamp)), source=[(path, n)])


@dataclass
class SongMeta:
    path: Path
    ids: np.ndarray  # int64
    album: np.ndarray  # int64, -1 for null
    baskets: dict[str, tuple[np.ndarray, np.ndarray]]  # key -> (flat ids or genre codes, lengths)
    year: np.ndarray  # int64, -1 when unknown


class Vocabulary:
    """Strings -> int codes in order of first sight, batch by batch (genre codes repeat ~1M times)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def encode(self, flat, count: int, key: str, rows: list) -> np.ndarray:
        codes, uniques = pd.factorize(np.fromiter(flat, dtype=object, count=count))
        known = np.array([self.index.setdefault(u, len(self.index)) for u in uniques], dtype=np.int64)
        return known[codes]

    def sorted_codes(self, codes: np.ndarray) -> np.ndarray:
        """Codes renumbered in sorted order of their strings."""
        rank = np.empty(len(self.index), dtype=np.int64)
        rank[np.argsort(np.array(list(self.index), dtype=object), kind="stable")] = np.arange(len(self.index))
        return rank[codes]


BASKETS = ("artist_id_basket", "song_gn_gnr_basket", "song_gn_dtl_gnr_basket")


def read_song_meta(path: Path) -> SongMeta:
    genres = {"song_gn_gnr_basket": Vocabulary(), "song_gn_dtl_gnr_basket": Vocabulary()}
    columns: dict[str, list] = {key: [] for key in ("id", "album_id", "year", *BASKETS)}
    for first, records in json_record_batches(path):
        batch = Batch(path, first, records)
        batch.ids = batch.column("id", (int,), "an integer song id")
        columns["id"].append(batch.int64(batch.ids, len(records), "id", batch.ids))
        album = batch.column("album_id", (int, type(None)), "an integer album id or null")
        columns["album_id"].append(
            batch.int64((-1 if a is None else a for a in album), len(album), "album_id", album)
        )
        key = "artist_id_basket"
        columns[key].append(batch.ragged(key, (int,), "artist ids (integers)", batch.int64))
        for key, vocabulary in genres.items():
            columns[key].append(batch.ragged(key, (str,), "genre codes (strings)", vocabulary.encode))
        issue = pd.Series(batch.column("issue_date", (str,), "a string 'YYYYMMDD'"), dtype=object).astype(str)
        year = pd.to_numeric(issue.str[:4].where(issue.str.fullmatch(r"\d{8}")), errors="coerce").fillna(0)
        columns["year"].append(np.where(year > 0, year, -1).astype(np.int64))
    baskets = {key: tuple(map(np.concatenate, zip(*columns[key], strict=True))) for key in BASKETS}
    for key, vocabulary in genres.items():
        baskets[key] = (vocabulary.sorted_codes(baskets[key][0]), baskets[key][1])
    flat = {key: np.concatenate(columns[key]) for key in ("id", "album_id", "year")}
    return SongMeta(path, flat["id"], flat["album_id"], baskets, flat["year"])


def build_plays(playlists: Playlists, meta: SongMeta, all_songs: bool) -> Plays:
    order = np.argsort(meta.ids, kind="stable")
    sorted_ids = meta.ids[order]
    repeated = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if len(repeated):
        i, j = (int(order[repeated[0] + k]) for k in (1, 0))
        raise DataError(
            f"record {i + 1}, key 'id': song id {meta.ids[i]} listed twice (first at record {j + 1})",
            path=meta.path,
        )
    row = pd.Index(sorted_ids).get_indexer(playlists.songs)  # position in sorted_ids, -1 when unknown
    if (row < 0).any():
        entry = int(np.flatnonzero(row < 0)[0])
        owner = int(np.searchsorted(np.cumsum(playlists.lengths), entry, side="right"))
        path, record = playlists.locate(owner)
        raise DataError(
            f"record {record} (id {playlists.ids[owner]}), key 'songs': song id {playlists.songs[entry]} is not "
            f"in {meta.path.name} ({int((row < 0).sum())} unknown song entries in all)",
            path=path,
        )
    played = np.bincount(row, minlength=len(sorted_ids)) > 0
    kept = np.ones(len(sorted_ids), bool) if all_songs else played
    if not kept.any():
        files = ", ".join(str(path) for path, _ in playlists.source)
        raise DataError(f"no playlist has any songs (files: {files})", path=playlists.source[0][0])
    item_of_row = np.cumsum(kept) - 1  # sorted_ids row -> item id (valid where kept)
    n_items = int(kept.sum())

    user_of_playlist, user_ids = pd.factorize(playlists.ids, sort=True)
    pair = np.repeat(user_of_playlist.astype(np.int64), playlists.lengths) * n_items + item_of_row[row]
    del row
    pair.sort()
    pair = pair[np.concatenate([[True], pair[1:] != pair[:-1]])]  # a song listed twice counts once
    user, item = np.divmod(pair, n_items)
    del pair
    user_timestamp = np.empty(len(user_ids), dtype=np.int64)
    user_timestamp[user_of_playlist] = playlists.timestamp
    interactions = pd.DataFrame(
        {"user": user, "item": item, "plays": np.ones(len(user)), "timestamp": user_timestamp[user]}
    )
    items, item_tags = song_metadata(meta, order[kept])
    return Plays(interactions, items, user_ids, sorted_ids[kept], item_tags)


def song_metadata(meta: SongMeta, rows: np.ndarray) -> tuple[pd.DataFrame, sp.csr_matrix]:
    """Items frame and item_tags for the given song_meta rows, in item order."""
    columns = {"item": np.arange(len(rows)), "album": dense_codes(meta.album[rows], missing=-1)}
    blocks = []
    for key, name in zip(BASKETS, ("artist", "genre", None), strict=True):
        flat, lengths = take_rows(*meta.baskets[key], rows)
        codes, names = pd.factorize(flat, sort=True)
        rows_of = np.repeat(np.arange(len(rows)), lengths)
        blocks.append(
            sp.csr_matrix((np.ones(len(flat), np.float32), (rows_of, codes)), shape=(len(rows), len(names)))
        )
        if name:
            first = np.full(len(rows), -1, dtype=np.int64)
            has = lengths > 0
            first[has] = codes[(np.cumsum(lengths) - lengths)[has]]
            columns[name] = dense_codes(first, missing=-1)
    artists, genres, detailed = blocks
    item_tags = sp.hstack([genres, detailed, artists], format="csr")
    item_tags.sum_duplicates()
    columns["year"] = meta.year[rows]
    items = pd.DataFrame(columns)[["item", "artist", "album", "genre", "year"]].astype(np.int64)
    return items, item_tags


def dense_codes(values: np.ndarray, missing: int) -> np.ndarray:
    """0..k-1 in sorted order of the values, -1 where the value is `missing`."""
    codes = np.full(len(values), -1, dtype=np.int64)
    known = values != missing
    codes[known] = pd.factorize(values[known], sort=True)[0]
    return codes


def take_rows(flat: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ragged rows `rows` of (flat, lengths), without a Python loop."""
    starts = np.cumsum(lengths) - lengths
    picked = lengths[rows]
    first_out = np.cumsum(picked) - picked
    index = np.repeat(starts[rows] - first_out, picked) + np.arange(int(picked.sum()))
    return flat[index], picked
