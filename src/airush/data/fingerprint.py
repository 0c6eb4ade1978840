"""Content hashes of data, so a run records exactly which data it saw."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TableShape:
    """What a fingerprinted frame looked like: its columns (name, dtype) and row count; `frame_id` is the
    frame's `id()`, so a run can name the table by the attribute that holds it (`events`, `interactions`)."""

    columns: tuple[tuple[str, str], ...]
    rows: int
    frame_id: int


class DataFingerprint(str):
    """The hex sha256 of some frames (a plain `str` to everything that compares, tags or prints it), with the
    shape of each frame hashed (`tables`), which MLflow's dataset page shows as schema and row counts."""

    tables: tuple[TableShape, ...] = ()

    def __new__(cls, digest: str, tables: tuple[TableShape, ...] = ()) -> DataFingerprint:
        fingerprint = super().__new__(cls, digest)
        fingerprint.tables = tables
        return fingerprint


def frames_fingerprint(*frames: pd.DataFrame) -> DataFingerprint:
    """sha256 over column names, dtypes and row hashes of each frame (index ignored), in order."""
    digest = hashlib.sha256()
    tables = []
    for frame in frames:
        columns = [(str(c), str(t)) for c, t in frame.dtypes.items()]
        digest.update(repr(columns).encode())
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest.update(np.ascontiguousarray(rows).tobytes())
        tables.append(TableShape(tuple(columns), len(frame), id(frame)))
    return DataFingerprint(digest.hexdigest(), tuple(tables))
