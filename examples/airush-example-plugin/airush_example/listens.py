"""ListenBrainz listen exports as airush's music data (`data=listenbrainz`): one JSON object per line.

Each line is one listen, as ListenBrainz exports and its API returns them:
`{"user_name": "...", "listened_at": <unix s>, "track_metadata": {"artist_name": "...", "track_name": "...",
"release_name": "..."}}`. A track is its (artist, title) pair; a user's repeated listens add up to their play
count, the last one's time is kept; artists and releases become the items' metadata ids. A line that is not
such an object is refused with the file, line and key, which airush prints as one line (exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.data.inputs import resolve_path
from airush.errors import DataError
from airush.music.data import Plays, PlaySource


@dataclass
class ListenBrainzListens(PlaySource):
    path: str  # a .jsonl export; relative paths are resolved against where airush was started
    min_listens: int = 1  # a (user, track) pair listened to fewer times is left out

    # checked with the config, before anything heavy is imported or any run recorded
    ranges: ClassVar[dict[str, str]] = {"min_listens": ">= 1"}
    inputs: ClassVar[dict[str, str]] = {"path": "file"}

    def load(self, seed: int = 0, stages=None) -> Plays:
        listens = read_listens(str(resolve_path(self.path)))
        pairs = (
            listens.groupby(["user", "artist", "track", "release"], sort=True)
            .agg(plays=("listened_at", "size"), timestamp=("listened_at", "max"))
            .reset_index()
        )
        pairs = pairs[pairs["plays"] >= self.min_listens]
        if pairs.empty:
            raise DataError(f"no (user, track) pair has {self.min_listens} listens", path=self.path)
        track_keys = pairs["artist"] + "\x1f" + pairs["track"]
        item_ids, item = np.unique(track_keys.to_numpy(), return_inverse=True)
        user_ids, user = np.unique(pairs["user"].to_numpy(), return_inverse=True)
        first = pd.DataFrame({"item": item, "artist": pairs["artist"], "release": pairs["release"]})
        first = first.drop_duplicates("item").sort_values("item")
        items = pd.DataFrame(
            {
                "item": np.arange(len(item_ids)),
                "artist": np.unique(first["artist"], return_inverse=True)[1],
                "album": np.unique(first["release"], return_inverse=True)[1],
                "genre": -1,
                "year": -1,
            }
        )
        interactions = pd.DataFrame(
            {"user": user, "item": item, "plays": pairs["plays"], "timestamp": pairs["timestamp"]}
        )
        return Plays(
            interactions.astype(np.int64).astype({"plays": np.float64}),
            items.astype(np.int64),
            user_ids,
            np.char.replace(item_ids.astype(str), "\x1f", " - "),
        )


def read_listens(path: str) -> pd.DataFrame:
    """user, artist, track, release, listened_at: one row per listen, every value checked."""
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                rows.append(parse_listen(line, path, number))
    if not rows:
        raise DataError("no listens (expected one JSON object per line)", path=path)
    return pd.DataFrame(rows, columns=["user", "artist", "track", "release", "listened_at"])


def parse_listen(line: str, path: str, number: int) -> tuple[str, str, str, str, int]:
    try:
        listen = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"not JSON ({err.msg})", path=path, row=number) from None
    meta = listen.get("track_metadata") if isinstance(listen, dict) else None
    if not isinstance(meta, dict):
        raise DataError("expected an object with track_metadata", path=path, row=number)
    values = {
        "user_name": listen.get("user_name"),
        "artist_name": meta.get("artist_name"),
        "track_name": meta.get("track_name"),
    }
    for key, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise DataError("expected a non-empty string", path=path, row=number, column=key)
    when = listen.get("listened_at")
    if isinstance(when, bool) or not isinstance(when, int) or when < 0:
        raise DataError(
            "expected unix seconds (an integer >= 0)", path=path, row=number, column="listened_at"
        )
    release = meta.get("release_name")
    return (
        values["user_name"],
        values["artist_name"],
        values["track_name"],
        release if isinstance(release, str) else "",
        when,
    )
