"""Exact top-K over users x items score blocks, by partial selection (never a full sort of the catalogue).

Ties are broken by the lower item id, so rankings are identical across runs and block sizes: each float32
score is mapped to an order-preserving uint32 and packed with its item id into one uint64 key. Excluded
(masked) items get the largest key, so they rank after every candidate, NaN and -inf scores included.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

BLOCK_ELEMENTS = 1 << 24  # users x items per scoring block: 64 MB of scores + 64 MB of their negation


def users_per_block(n_items: int, cap: int) -> int:
    return max(1, min(cap, BLOCK_ELEMENTS // max(n_items, 1)))


EXCLUDED = np.uint64(np.iinfo(np.uint64).max)


def top_k_blocks(
    score,
    users: np.ndarray,
    n_items: int,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_users: int = 2048,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(a block of `users`, their top-k item ids) in turn, scoring at most BLOCK_ELEMENTS scores at a time so
    memory stays bounded however many users there are; `exclude` rows are indexed by user id."""
    block = users_per_block(n_items, batch_users)
    for lo in range(0, len(users), block):
        batch = users[lo : lo + block]
        scores = np.asarray(score(batch), dtype=np.float32)
        yield batch, top_k_items(scores, k, exclude=None if exclude is None else exclude[batch])


def top_k_items(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """(n_users, k) item ids by descending score; NaN ranks like -inf; ties -> lower item id first.

    Items in a row of `exclude` (rows aligned with `scores`) are never returned: where a user has fewer than
    k other items, the row ends in -1. Fast path: one float32 partition per row; rows whose K-th place is
    tied, or reaches an excluded/NaN/-inf item, are redone exactly with `_top_k_exact`.
    """
    n_items = scores.shape[1]
    k = min(k, n_items)
    if k >= n_items - 1:
        return _top_k_exact(scores, k, exclude)
    # a new array of -score (partitioned ascending; NaN sorts last, like -inf); excluded items get +inf
    neg = np.negative(np.asarray(scores), dtype=np.float32)
    if exclude is not None:
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        neg[rows, exclude.indices] = np.inf
    # k+1 smallest of -score: position k then holds exactly the (k+1)-th, so a tie across the K-th place
    # shows as equality between it and the worst of the first k (no extra pass over the row)
    part = _smallest(neg, k + 1)
    next_neg = np.take_along_axis(neg, part[:, k : k + 1], axis=1)[:, 0]
    part = part[:, :k]
    part_neg = np.take_along_axis(neg, part, axis=1)
    kth = part_neg.max(axis=1)  # the K-th best score (negated)
    # exact unless the K-th value ties with the next one, or is -inf/NaN (excluded items live there)
    ambiguous = ~np.isfinite(kth) | (next_neg <= kth)
    order = np.lexsort((part, part_neg), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    if ambiguous.any():
        rows = np.flatnonzero(ambiguous)
        top[rows] = _top_k_exact(scores[rows], k, None if exclude is None else exclude[rows])
    return top


PARTITION_CHUNK = 1 << 21  # elements per argpartition call: keeps its full-size int64 output small


def _smallest(values: np.ndarray, m: int) -> np.ndarray:
    """Column ids of each row's m smallest values (position m-1 holds exactly the m-th), unordered.

    Rows go in chunks over a few threads: argpartition releases the GIL, and small chunks avoid allocating
    an int64 index array the size of the whole block (measured 4x faster than one call on 2 cores).
    """
    from concurrent.futures import ThreadPoolExecutor

    rows_per_chunk = max(1, PARTITION_CHUNK // max(values.shape[1], 1))
    starts = range(0, values.shape[0], rows_per_chunk)

    def part(start: int) -> np.ndarray:
        return np.argpartition(values[start : start + rows_per_chunk], m - 1, axis=1)[:, :m].copy()

    if len(starts) == 1:
        return part(0)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return np.concatenate(list(pool.map(part, starts)))


def _top_k_exact(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None) -> np.ndarray:
    """The reference ordering: one uint64 key per item = (order-preserving score bits, item id)."""
    n_users, n_items = scores.shape
    s = np.asarray(scores, dtype=np.float32) + np.float32(0.0)  # -0.0 -> +0.0 so they tie
    s = np.where(np.isnan(s), np.float32(-np.inf), s)
    bits = s.view(np.uint32)
    ascending = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000))
    key = ((~ascending).astype(np.uint64) << np.uint64(32)) | np.arange(n_items, dtype=np.uint64)
    if exclude is not None:
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        key[rows, exclude.indices] = EXCLUDED
    if k < n_items:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n_items), (n_users, 1))
    top_keys = np.take_along_axis(key, part, axis=1)
    order = np.argsort(top_keys, axis=1)
    top = np.take_along_axis(part, order, axis=1)
    if exclude is not None:
        top[np.take_along_axis(top_keys, order, axis=1) == EXCLUDED] = -1
    return top


def membership(top: np.ndarray, truth_rows: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users, k): is top[u, j] among row u's true items? (-1 padding never is.)"""
    n_items = truth_rows.shape[1]
    truth_rows = truth_rows.tocsr()
    if not truth_rows.has_sorted_indices:
        truth_rows = truth_rows.sorted_indices()  # a sorted copy: the caller's matrix stays as it was
    row_of = np.repeat(np.arange(truth_rows.shape[0], dtype=np.int64), np.diff(truth_rows.indptr))
    truth_keys = row_of * n_items + truth_rows.indices  # sorted: rows ascending, indices sorted per row
    cand = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    pos = np.searchsorted(truth_keys, cand)
    pos = np.minimum(pos, len(truth_keys) - 1) if len(truth_keys) else pos
    return ((truth_keys[pos] == cand) & (top >= 0)) if len(truth_keys) else np.zeros(top.shape, bool)
