"""Exact top-K over users x items score blocks, by partial selection (never a full sort of the catalogue).

Ties are broken by the lower item id, so rankings are identical across runs and block sizes: each float32
score is mapped to an order-preserving uint32 and packed with its item id into one uint64 key.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

BLOCK_ELEMENTS = 1 << 24  # users x items per scoring block: 64 MB of float32 + 128 MB of uint64 keys


def users_per_block(n_items: int, cap: int) -> int:
    return max(1, min(cap, BLOCK_ELEMENTS // max(n_items, 1)))


def top_k_items(scores: np.ndarray, k: int) -> np.ndarray:
    """(n_users, k) item ids by descending score; NaN ranks like -inf; ties -> lower item id first."""
    n_users, n_items = scores.shape
    k = min(k, n_items)
    s = np.asarray(scores, dtype=np.float32) + np.float32(0.0)  # -0.0 -> +0.0 so they tie
    s = np.where(np.isnan(s), np.float32(-np.inf), s)
    bits = s.view(np.uint32)
    ascending = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000))
    key = ((~ascending).astype(np.uint64) << np.uint64(32)) | np.arange(n_items, dtype=np.uint64)
    part = (
        np.argpartition(key, k - 1, axis=1)[:, :k]
        if k < n_items
        else np.tile(np.arange(n_items), (n_users, 1))
    )
    order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def mask_seen(scores: np.ndarray, seen_rows: sp.csr_matrix) -> np.ndarray:
    """Set scores of items in each row's `seen` set to -inf, in place (rows aligned with `scores`)."""
    rows = np.repeat(np.arange(seen_rows.shape[0]), np.diff(seen_rows.indptr))
    scores[rows, seen_rows.indices] = -np.inf
    return scores


def membership(top: np.ndarray, truth_rows: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users, k): is top[u, j] among row u's true items?"""
    n_items = truth_rows.shape[1]
    truth_rows = truth_rows.tocsr()
    truth_rows.sort_indices()
    row_of = np.repeat(np.arange(truth_rows.shape[0], dtype=np.int64), np.diff(truth_rows.indptr))
    truth_keys = row_of * n_items + truth_rows.indices  # sorted: rows ascending, indices sorted per row
    cand = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    pos = np.searchsorted(truth_keys, cand)
    pos = np.minimum(pos, len(truth_keys) - 1) if len(truth_keys) else pos
    return (truth_keys[pos] == cand) if len(truth_keys) else np.zeros(top.shape, bool)
