"""Content hashes of data, so a run records exactly which data it saw."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def frames_fingerprint(*frames: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and row hashes of each frame (index ignored), in order."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest.update(np.ascontiguousarray(rows).tobytes())
    return digest.hexdigest()
