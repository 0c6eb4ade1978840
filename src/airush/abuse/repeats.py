"""Retraced paths: the share of a session's pointer moves that repeat, position for position, a stretch of
the same session seen earlier.

A hand never passes through the same few positions in the same order twice, but a macro recorder looping
its recording does, and so does an auto-clicker moving between its fixed points. Each run of REPEAT_MOVES
consecutive move positions (on a 1/POSITION_GRID px grid: PointerEvent coordinates are fractional) is an
n-gram; the feature is the share of a session's n-grams that occurred earlier in it (NaN with fewer moves
than that). Vectorised: each n-gram is hashed to 64 bits, and one sort of (session, hash) counts the
repeats; two different n-grams of a session sharing the 40 hash bits kept is a 2^-40 event per pair.
"""

from __future__ import annotations

import numpy as np

REPEAT_MOVES = 4  # positions per n-gram: three steps in the same directions and lengths, at the same place
POSITION_GRID = 8  # positions compared after rounding to 1/8 px
SESSION_BITS = 24  # sessions per call below 2^24 (a chunk of CHUNK_EVENTS events holds far fewer)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multipliers (golden ratio, splitmix64)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)


def path_repeat_share(group: np.ndarray, n: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per session (`group`: 0..n-1 of each move, moves in time order within each session, positions `x`, `y`),
    the share of its REPEAT_MOVES-grams of positions seen earlier in the session. Moves without a finite
    position are left out of the sequence."""
    finite = np.isfinite(x) & np.isfinite(y)
    group, x, y = group[finite], x[finite], y[finite]
    m = len(group) - REPEAT_MOVES + 1
    if m <= 0:
        return np.full(n, np.nan)
    key = ngram_keys(np.rint(x * POSITION_GRID), np.rint(y * POSITION_GRID), REPEAT_MOVES)
    if n >= 1 << SESSION_BITS:
        raise ValueError(f"path_repeat_share takes fewer than 2^{SESSION_BITS} sessions per call, got {n}")
    whole = group[:m] == group[REPEAT_MOVES - 1 :]  # all its moves in one session
    g, key = group[:m][whole], key[whole]
    # a session's share is (its n-grams - its distinct n-grams) / its n-grams, whichever copy came first:
    # one plain sort of (session, hash) packed into 64 bits (chunks hold < 2^SESSION_BITS sessions; the
    # hash keeps its top 64 - SESSION_BITS bits) counts them without an argsort
    packed = np.sort((g.astype(np.uint64) << np.uint64(64 - SESSION_BITS)) | (key >> np.uint64(SESSION_BITS)))
    again = packed[1:] == packed[:-1]
    repeats = np.bincount((packed[1:][again] >> np.uint64(64 - SESSION_BITS)).astype(np.int64), minlength=n)
    total = np.bincount(g, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, repeats / total, np.nan)


def ngram_keys(cx: np.ndarray, cy: np.ndarray, size: int) -> np.ndarray:
    """A 64-bit hash of each run of `size` consecutive grid cells (`cx`, `cy`: integer-valued arrays), one per
    start position 0 .. len - size (callers drop runs that cross a session's end)."""
    m = len(cx) - size + 1
    px = np.asarray(cx).astype(np.int64).view(np.uint64)
    py = np.asarray(cy).astype(np.int64).view(np.uint64)
    key = np.zeros(max(m, 0), np.uint64)
    with np.errstate(over="ignore"):
        point = px * _MIX ^ py * _MIX2
        for k in range(size):
            key = (key ^ point[k : k + m]) * _MIX + np.uint64(k + 1)
    return key
