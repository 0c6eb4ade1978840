"""Top-K selection paths (grouped, partition, exact) against a full sort of every row.

The reference ranks a row with np.lexsort on (excluded, -score with NaN as -inf, item id): a full sort, no
partition, no groups, no uint64 keys. Each path of `top_k_items` must return exactly its first k items,
including every tie, NaN, ±inf, ±0.0 and exclusion rule.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse as sp

from airush.music import ranking
from airush.music.ranking import top_k_blocks, top_k_items


def reference_top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """First k of each row's full ranking; -1 where fewer than k items are not excluded."""
    n_users, n_items = scores.shape
    values = np.asarray(scores, np.float64)
    values = np.where(np.isnan(values), -np.inf, values)
    excluded = np.zeros(scores.shape, bool)
    if exclude is not None:
        excluded[np.repeat(np.arange(n_users), np.diff(exclude.indptr)), exclude.indices] = True
    ids = np.arange(n_items)
    out = np.full((n_users, min(k, n_items)), -1, np.int64)
    for u in range(n_users):
        order = np.lexsort((ids, -values[u], excluded[u]))
        ranked = order[~excluded[u][order]][:k]
        out[u, : len(ranked)] = ranked
    return out


def random_exclusion(rng, n_users: int, n_items: int, max_per_row: int) -> sp.csr_matrix:
    rows = [rng.choice(n_items, int(rng.integers(0, max_per_row + 1)), replace=False) for _ in range(n_users)]
    data = [(u, j) for u, row in enumerate(rows) for j in row]
    r, c = (np.array(x, dtype=np.int64) for x in zip(*data, strict=True)) if data else ([], [])
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n_items))


def scores_with_ties(rng, n_users: int, n_items: int, kind: str) -> np.ndarray:
    if kind == "continuous":
        return rng.normal(size=(n_users, n_items)).astype(np.float32)
    if kind == "coarse":  # many ties everywhere, including across the K-th place
        return rng.integers(-20, 21, size=(n_users, n_items)).astype(np.float32)
    if kind == "sparse":  # item-kNN-like: mostly exact zeros, a few positive scores
        s = np.zeros((n_users, n_items), np.float32)
        hit = rng.random((n_users, n_items)) < 0.02
        s[hit] = rng.random(int(hit.sum())).astype(np.float32)
        return s
    special = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, 1.0, 2.0, -1.0, 3.4e38, 1e-45], np.float32)
    s = rng.normal(size=(n_users, n_items)).astype(np.float32)
    spots = rng.random((n_users, n_items)) < 0.05
    s[spots] = rng.choice(special, int(spots.sum()))
    return s


@pytest.fixture
def force_group(monkeypatch):
    """Run the grouped path with a chosen group size (0: the whole-row partition path)."""

    def force(group: int) -> None:
        monkeypatch.setattr(ranking, "group_size", lambda n_items, k: group)

    return force


@pytest.mark.parametrize("kind", ["continuous", "coarse", "sparse", "special"])
@pytest.mark.parametrize("group", [0, 2, 3, 7, 16])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_every_path_matches_the_full_sort(force_group, kind, group, k):
    rng = np.random.default_rng(zlib.crc32(f"{kind} {group} {k}".encode()))
    n_users, n_items = 40, 203  # 203 is prime: the last slot of every group size is partial
    scores = scores_with_ties(rng, n_users, n_items, kind)
    exclude = random_exclusion(rng, n_users, n_items, 30)
    force_group(group)
    for ex in (None, exclude):
        np.testing.assert_array_equal(top_k_items(scores, k, ex), reference_top_k(scores, k, ex))


def test_grouped_path_with_excluded_group_maxima(force_group):
    # excluding exactly the best items makes every group maximum an excluded item: the groups must be
    # re-measured without them, else t is too high and fewer than K+1 items reach it
    rng = np.random.default_rng(1)
    n_users, n_items, k = 30, 500, 10
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    best = np.argsort(-scores, axis=1)[:, :60]
    exclude = sp.csr_matrix(
        (np.ones(best.size, np.float32), (np.repeat(np.arange(n_users), 60), best.ravel())),
        shape=(n_users, n_items),
    )
    for group in (5, 20, 40):
        force_group(group)
        np.testing.assert_array_equal(top_k_items(scores, k, exclude), reference_top_k(scores, k, exclude))


def test_grouped_path_when_few_items_remain(force_group):
    # rows with fewer than K+1 candidates (the rest excluded, NaN or -inf) end in -1 or in NaN/-inf items
    n_users, n_items, k = 6, 120, 8
    scores = np.random.default_rng(2).normal(size=(n_users, n_items)).astype(np.float32)
    excluded = [
        set(range(n_items)) - {3, 77},
        set(range(1, n_items)),
        set(),
        set(),
        set(range(0, 120, 2)),
        set(),
    ]
    scores[2] = np.nan
    scores[3, 5:] = -np.inf
    scores[4, 1::2] = np.nan
    scores[5] = np.inf
    scores[5, 100] = 1.0
    rows = [u for u, s in enumerate(excluded) for _ in s]
    cols = [j for s in excluded for j in sorted(s)]
    exclude = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    for group in (4, 10):
        force_group(group)
        got = top_k_items(scores, k, exclude)
        np.testing.assert_array_equal(got, reference_top_k(scores, k, exclude))
    assert set(got[0, :2].tolist()) == {3, 77} and got[0, 2:].tolist() == [-1] * 6
    assert got[1].tolist() == [0] + [-1] * 7
    assert got[2].tolist() == list(range(8))  # all NaN: rank like -inf, ties by id


def test_chunks_and_threads_do_not_change_results(monkeypatch):
    rng = np.random.default_rng(3)
    scores = scores_with_ties(rng, 300, 700, "coarse")
    scores[::7] = scores_with_ties(rng, 43, 700, "special")
    exclude = random_exclusion(rng, 300, 700, 50)
    whole = top_k_items(scores, 20, exclude)
    monkeypatch.setattr(ranking, "CHUNK_ELEMENTS", 700 * 9)  # 34 chunks of 9 rows over the thread pool
    np.testing.assert_array_equal(top_k_items(scores, 20, exclude), whole)
    np.testing.assert_array_equal(whole, reference_top_k(scores, 20, exclude))


def test_default_group_sizes_match_the_full_sort_on_a_larger_catalogue():
    rng = np.random.default_rng(4)
    n_users, n_items = 64, 5003
    factors = (
        rng.normal(size=(n_users, 16)).astype(np.float32),
        rng.normal(size=(n_items, 16)).astype(np.float32),
    )
    scores = factors[0] @ factors[1].T
    exclude = random_exclusion(rng, n_users, n_items, 200)
    for k in (10, 50):
        assert ranking.group_size(n_items, k) >= 4  # the grouped path is the one under test
        np.testing.assert_array_equal(top_k_items(scores, k, exclude), reference_top_k(scores, k, exclude))


def test_float64_and_non_contiguous_scores_are_ranked_as_float32():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(20, 2000))
    scores[:, 10] = scores[:, 11] + 1e-12  # distinct in float64, tied in float32: lower id first
    view = np.asfortranarray(scores)[:, ::1]
    expected = reference_top_k(scores.astype(np.float32), 30)
    np.testing.assert_array_equal(top_k_items(scores, 30), expected)
    np.testing.assert_array_equal(top_k_items(view, 30), expected)


def test_top_k_blocks_scores_each_user_once_in_bounded_blocks(monkeypatch):
    rng = np.random.default_rng(6)
    n_users, n_items = 500, 300
    scores = scores_with_ties(rng, n_users, n_items, "coarse")
    exclude = random_exclusion(rng, n_users, n_items, 20)
    monkeypatch.setattr(ranking, "BLOCK_ELEMENTS", 64 * n_items)
    users = rng.permutation(n_users)[:437]
    seen = []

    def score(batch):
        assert len(batch) <= 64
        seen.append(batch.copy())
        return scores[batch]

    blocks = list(top_k_blocks(score, users, n_items, 15, exclude))
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(users))  # any order, each once
    np.testing.assert_array_equal(np.concatenate([b for b, _ in blocks]), users)
    top = np.concatenate([t for _, t in blocks])
    np.testing.assert_array_equal(top, reference_top_k(scores[users], 15, exclude[users]))


def test_grouped_path_ranks_continuous_rows_itself(monkeypatch, force_group):
    # the exact path is the fallback for ties at t and -inf thresholds, not for ordinary rows, even when
    # the excluded items are every group's maximum (the group maxima must be re-measured without them)
    rng = np.random.default_rng(7)
    n_users, n_items, k = 50, 900, 20
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    best = np.argsort(-scores, axis=1)[:, :100]
    exclude = sp.csr_matrix(
        (np.ones(best.size, np.float32), (np.repeat(np.arange(n_users), 100), best.ravel())),
        shape=(n_users, n_items),
    )
    exact_rows = []
    exact = ranking._top_k_exact

    def counting_exact(scores, *args):
        exact_rows.append(len(scores))
        return exact(scores, *args)

    monkeypatch.setattr(ranking, "_top_k_exact", counting_exact)
    for group in (6, 30):
        force_group(group)
        np.testing.assert_array_equal(top_k_items(scores, k, exclude), reference_top_k(scores, k, exclude))
    assert exact_rows == []
    force_group(6)
    n_groups = -(-n_items // 6)
    scores[2, np.arange(n_items) % n_groups < k] = np.nan  # k all-NaN groups: their maximum is -inf
    scores[3, :] = np.round(scores[3], 0)  # ties at t: this row, and only this row, goes exact
    scores[4, :] = -np.inf
    np.testing.assert_array_equal(top_k_items(scores, k, exclude), reference_top_k(scores, k, exclude))
    assert exact_rows == [2]


def test_grouped_path_never_ranks_minus_inf_ties_itself(force_group):
    # t = -inf: NaN items (ranked like -inf, so tied with -inf items by id) are not among the items >= t
    n_items, k = 120, 30
    scores = np.full((2, n_items), -np.inf, np.float32)
    scores[:, [50, 60, 70, 80, 90]] = [1.0, 2.0, 3.0, 4.0, 5.0]
    scores[:, :10] = np.nan
    scores[1, 10:20] = np.nan
    force_group(4)
    got = top_k_items(scores, k)
    np.testing.assert_array_equal(got, reference_top_k(scores, k))
    assert got[0, 5:15].tolist() == list(range(10))
