"""Exact top-K over users x items score blocks, by partial selection (never a full sort of the catalogue).

Ties are broken by the lower item id, so rankings are identical across runs, block sizes and threads.
NaN ranks like -inf; excluded (masked) items rank after every candidate, NaN and -inf scores included.

Every ordering compares one uint64 key per item, (order-preserving score bits, item id) (`_ranking_keys`).
Blocks of users are scored and ranked on a few threads (`top_k_blocks`); a block is ranked in chunks of
CHUNK_ELEMENTS scores, small enough to stay in cache across the passes over them. Per chunk:

- grouped selection (large catalogues): item j goes to group j mod G (groups of ~sqrt(1.5 n_items / K)
  items). One vectorised pass takes every group's maximum (excluded items left out), and t is the K-th
  largest maximum over ~4K unions of groups: K unions reach t, so at least K items do. Every item scoring
  >= t sits in a group whose maximum is >= t, so ranking the keys of those few groups' items that reach t
  gives exactly the top K, ties included, without sorting or partitioning the row (3-13x less CPU than
  argpartition of each row: scripts/bench_eval.py --selection). Rows where t is -inf (NaN, -inf tie)
  or too many items tie at t go to the exact path;
- argpartition of the whole row (small catalogues, where groups would not pay); a row whose K-th place
  ties with the (K+1)-th, or is not finite (NaN, ±inf, excluded), goes to the exact path;
- the exact path (`_top_k_exact`): every item's key, partitioned.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

BLOCK_ELEMENTS = 1 << 22  # users x items per scoring block: 16 MB of float32 scores, one block per thread
CHUNK_ELEMENTS = 1 << 20  # scores per selection task (4 MB): its temporaries stay a few MB per thread
MAX_THREADS = 4  # ranking threads (blocks or chunks) at most, however many cores
UNIONS_PER_K = 4  # coarse threshold: k-th largest of the maxima over this x k unions of groups
CANDIDATE_CAP = 4  # grouped rows with more than this x K items at or above t (ties) go to the exact path
EXCLUDED = np.uint64(np.iinfo(np.uint64).max)


def users_per_block(n_items: int, cap: int) -> int:
    return max(1, min(cap, BLOCK_ELEMENTS // max(n_items, 1)))


def top_k_blocks(
    score,
    users: np.ndarray,
    n_items: int,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_users: int = 2048,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(a block of `users`, their top-k item ids) in turn, scoring at most BLOCK_ELEMENTS scores at a time per
    thread so memory stays bounded however many users there are; `exclude` rows are indexed by user id.

    With several blocks, each block is scored and ranked whole on one of a few worker threads, BLAS held to
    one thread meanwhile: blocks never wait on each other's BLAS threads (on a busy machine a descheduled
    BLAS thread stalls the whole gemm), and single-threaded scorers (scipy sparse products) run in parallel
    too. So `score` is called from several threads at once and must be thread-safe (a fitted model's numpy
    or scipy scoring is). Blocks are yielded in order, and at most one more is ranked ahead of the reader.
    """
    block = users_per_block(n_items, batch_users)
    starts = range(0, len(users), block)

    def ranked(lo: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        batch = users[lo : lo + block]
        scores = np.asarray(score(batch), dtype=np.float32)
        return batch, _top_k_rows(scores, k, None if exclude is None else exclude[batch], threads)

    workers = min(len(starts), _threads())
    if workers <= 1:
        for lo in starts:
            yield ranked(lo, _threads())
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        for lo in starts:
            pending.append(pool.submit(ranked, lo, 1))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def top_k_items(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """(n_users, k) item ids by descending score; NaN ranks like -inf; ties -> lower item id first.

    Items in a row of `exclude` (rows aligned with `scores`) are never returned: where a user has fewer than
    k other items, the row ends in -1. `scores` is only read.
    """
    return _top_k_rows(scores, k, exclude, _threads())


def _top_k_rows(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None, threads: int) -> np.ndarray:
    """`top_k_items`, its chunks of rows ranked on up to `threads` threads."""
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n_users, n_items = scores.shape
    k = min(k, n_items)
    rows_per_chunk = max(1, CHUNK_ELEMENTS // max(n_items, 1))
    starts = range(0, n_users, rows_per_chunk)

    def chunk(lo: int) -> np.ndarray:
        hi = min(lo + rows_per_chunk, n_users)
        return _top_k_chunk(scores[lo:hi], k, *_excluded_pairs(exclude, lo, hi))

    if len(starts) <= 1:
        return chunk(0)
    if threads <= 1:
        return np.concatenate([chunk(lo) for lo in starts])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(starts), threads)) as pool:
        return np.concatenate(list(pool.map(chunk, starts)))


def _threads() -> int:
    """Threads to rank on: the cores this process may use, at most MAX_THREADS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def _excluded_pairs(exclude: sp.csr_matrix | None, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(row within rows lo..hi, item id) of every excluded entry of those rows."""
    if exclude is None:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    indptr = exclude.indptr
    rows = np.repeat(np.arange(hi - lo), np.diff(indptr[lo : hi + 1]))
    return rows, exclude.indices[indptr[lo] : indptr[hi]].astype(np.int64)


def _top_k_chunk(scores: np.ndarray, k: int, ex_rows: np.ndarray, ex_cols: np.ndarray) -> np.ndarray:
    """Exact top-k of a few rows: a fast path, then `_top_k_exact` for the rows it could not rank."""
    n_items = scores.shape[1]
    if k >= n_items - 1 or len(scores) == 0:
        return _top_k_exact(scores, k, ex_rows, ex_cols)
    group = group_size(n_items, k)
    if group:
        top, redo = _grouped(scores, k, ex_rows, ex_cols, group)
    else:
        neg = np.negative(scores)  # argpartition ascending; NaN sorts last, like -inf
        neg[ex_rows, ex_cols] = np.inf
        top, redo = _partitioned(neg, k)
    if redo.any():
        rows = np.flatnonzero(redo)
        renumber = np.full(len(scores), -1)
        renumber[rows] = np.arange(len(rows))
        keep = renumber[ex_rows] >= 0
        top[rows] = _top_k_exact(scores[rows], k, renumber[ex_rows[keep]], ex_cols[keep])
    return top


def group_size(n_items: int, k: int) -> int:
    """Items per group for the grouped selection, 0 where it would not pay.

    Cost per row ~ a · n_items / g (work on the n_items / g group maxima) + b · (k+1) · g (gathering the
    chosen groups' scores); the minimum is at g = sqrt(a/b · n_items / (k+1)), a/b ~ 1.5 measured on 2 cores
    with 4k-20k items (the optimum is flat: half or twice that g costs < 15% more).
    """
    group = int(np.sqrt(1.5 * n_items / (k + 1)))
    return group if group >= 4 else 0


def _grouped(
    scores: np.ndarray, k: int, ex_rows: np.ndarray, ex_cols: np.ndarray, group: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids, and the rows this path cannot rank (-> exact path), from the groups reaching t.

    Groups are addressed by key = row * n_groups + group; `scores` must be C-contiguous."""
    n_rows, n_items = scores.shape
    n_groups = -(-n_items // group)  # item j: group j % n_groups, slot j // n_groups
    group = -(-n_items // n_groups)
    head = (group - 1) * n_groups  # items in full slots; groups below n_items - head have a last slot
    flat = scores.reshape(-1)
    group_max = np.fmax.reduce(scores[:, :head].reshape(n_rows, group - 1, n_groups), axis=1)
    np.fmax(group_max[:, : n_items - head], scores[:, head:], out=group_max[:, : n_items - head])
    ex_keys, ex_slots = ex_rows * n_groups + ex_cols % n_groups, ex_cols // n_groups
    if len(ex_cols):
        # an excluded item may be its group's maximum: recompute those groups without excluded items
        maybe_max = ~(flat[ex_rows * n_items + ex_cols] < group_max.reshape(-1)[ex_keys])
        dirty = np.unique(ex_keys[maybe_max])
        values = _group_scores(scores, dirty, n_groups, group, ex_keys, ex_slots)
        group_max.reshape(-1)[dirty] = np.fmax.reduce(values, axis=1)
    group_max[np.isnan(group_max)] = -np.inf  # an all-NaN group
    threshold = _kth_largest_union_max(group_max, k)
    chosen = group_max >= threshold[:, None]  # at least k groups per row, more on ties
    hopeless = (threshold == -np.inf) | (np.count_nonzero(chosen, axis=1) > CANDIDATE_CAP * k)
    chosen[hopeless] = False
    keys = np.flatnonzero(chosen)
    values = _group_scores(scores, keys, n_groups, group, ex_keys, ex_slots)
    # candidates: every item scoring >= t (NaN never does), packed left into (rows, width) keys
    pair, slot = np.nonzero(values >= threshold[keys // n_groups][:, None])
    rows = keys[pair] // n_groups
    count = np.bincount(rows, minlength=n_rows)
    hopeless |= count > CANDIDATE_CAP * k  # (at least k: each chosen group's maximum is a candidate)
    keep = ~hopeless[rows]
    pair, slot, rows = pair[keep], slot[keep], rows[keep]
    count[hopeless] = 0
    rank = np.arange(len(rows)) - (np.cumsum(count) - count)[rows]
    packed = np.full((n_rows, max(int(count.max()), k)), EXCLUDED)
    packed[rows, rank] = _ranking_keys(values[pair, slot], keys[pair] % n_groups + n_groups * slot)
    packed.sort(axis=1)
    return (packed[:, :k] & np.uint64(0xFFFFFFFF)).astype(np.int64), hopeless


def _kth_largest_union_max(group_max: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k-th largest maximum over unions of groups (group c in union c mod n_unions, ~UNIONS_PER_K
    x k unions): k unions reach it, so at least k items score >= it, and it costs a partition of a few k
    maxima instead of all n_groups."""
    n_rows, n_groups = group_max.shape
    n_unions = max(k, UNIONS_PER_K * k)
    if n_groups >= 2 * n_unions:
        span = n_groups // n_unions
        head = span * n_unions
        union_max = np.fmax.reduce(group_max[:, :head].reshape(n_rows, span, n_unions), axis=1)
        np.fmax(union_max[:, : n_groups - head], group_max[:, head:], out=union_max[:, : n_groups - head])
        group_max = union_max
    return np.partition(group_max, group_max.shape[1] - k, axis=1)[:, group_max.shape[1] - k]


def _group_scores(
    scores: np.ndarray,
    keys: np.ndarray,
    n_groups: int,
    group: int,
    ex_keys: np.ndarray,
    ex_slots: np.ndarray,
) -> np.ndarray:
    """(len(keys), group) scores of the groups `keys` (sorted), -inf where a slot is missing or excluded."""
    n_rows, n_items = scores.shape
    rows, groups = np.divmod(keys, n_groups)
    head = (group - 1) * n_groups
    values = np.empty((len(keys), group), np.float32)
    values[:, :-1] = scores[:, :head].reshape(n_rows, group - 1, n_groups)[rows, :, groups]
    values[:, -1] = scores[rows, head + np.minimum(groups, n_items - head - 1)]
    values[groups >= n_items - head, -1] = -np.inf
    if len(keys) and len(ex_keys):
        at = np.minimum(np.searchsorted(keys, ex_keys), len(keys) - 1)
        inside = keys[at] == ex_keys
        values[at[inside], ex_slots[inside]] = -np.inf
    return values


def _partitioned(neg: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item ids by ascending `neg` (negated scores, excluded items +inf) in ranking order, and the rows
    where that ranking is ambiguous: the K-th value ties with the (K+1)-th (both sit in the first k+1 after
    the partition) or is not finite."""
    part = np.argpartition(neg, k, axis=1)[:, : k + 1]
    part_neg = np.take_along_axis(neg, part, axis=1)
    kth = part_neg[:, :k].max(axis=1)
    ambiguous = ~np.isfinite(kth) | (part_neg[:, k] <= kth)
    order = np.lexsort((part[:, :k], part_neg[:, :k]), axis=1)
    return np.take_along_axis(part[:, :k], order, axis=1), ambiguous


def _ranking_keys(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """uint64 keys that sort ascending in ranking order: descending score (NaN as -inf, -0.0 = +0.0), then
    ascending item id (< 2^32), i.e. (order-preserving score bits, item id)."""
    s = np.asarray(scores, dtype=np.float32) + np.float32(0.0)  # -0.0 -> +0.0 so they tie
    s = np.where(np.isnan(s), np.float32(-np.inf), s)
    bits = s.view(np.uint32)
    ascending = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000))
    return ((~ascending).astype(np.uint64) << np.uint64(32)) | ids.astype(np.uint64)


def _top_k_exact(scores: np.ndarray, k: int, ex_rows: np.ndarray, ex_cols: np.ndarray) -> np.ndarray:
    """The reference ordering: one uint64 key per item = (order-preserving score bits, item id)."""
    n_users, n_items = scores.shape
    key = _ranking_keys(scores, np.arange(n_items))
    key[ex_rows, ex_cols] = EXCLUDED
    if k < n_items:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n_items), (n_users, 1))
    top_keys = np.take_along_axis(key, part, axis=1)
    order = np.argsort(top_keys, axis=1)
    top = np.take_along_axis(part, order, axis=1)
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
