"""Vectorised per-group statistics (airush.compute.grouped) against pandas groupby and plain Python."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from airush.compute.grouped import (
    group_count,
    group_entropy,
    group_extreme,
    group_mean,
    group_mean_std,
    group_mode_share,
    group_quantiles,
    group_sorted,
    group_std,
    group_sum,
    padded_width,
    paired_next,
)

N = 30  # groups 0..29; some never drawn (empty), some with exactly one value
QS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


def random_groups(seed: int, n_values: int = 400, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    many = rng.choice([0, 2, 3, 5, 8, 9, 13, 14, 20, 21, 27], n_values - 4)
    group = np.concatenate([many, [1, 7, 16, 29]])  # four groups of one value
    empty = sorted(set(range(N)) - set(group.tolist()))
    assert empty  # e.g. 4, 6, 10, ...
    perm = rng.permutation(len(group))
    group = group[perm].astype(np.int64)
    values = offset + rng.normal(size=len(group)) * rng.choice([0.001, 1.0, 50.0], len(group))
    values[rng.random(len(group)) < 0.2] = 0.5  # exact ties
    keys = rng.integers(0, 4, len(group)).astype(np.int64)  # small alphabet: tied modes are common
    return values, group, keys, empty


def pandas_reference(values, group, keys):
    frame = pd.DataFrame({"g": group, "v": values, "k": keys})
    by = frame.groupby("g")
    index = pd.RangeIndex(N)
    counts = frame.groupby(["g", "k"]).size()
    share = counts / counts.groupby(level="g").transform("sum")
    return {
        "mean": by["v"].mean().reindex(index).to_numpy(),
        "std": by["v"].std(ddof=1).reindex(index).to_numpy(),
        "quantiles": np.stack(
            [by["v"].quantile(q, interpolation="linear").reindex(index).to_numpy() for q in QS]
        ),
        "mode_share": (counts.groupby(level="g").max() / by.size()).reindex(index).to_numpy(),
        "entropy": (-(share * np.log2(share))).groupby(level="g").sum().reindex(index).to_numpy(),
        "count": by.size().reindex(index, fill_value=0).to_numpy(),
    }


@pytest.fixture(params=[(0, 0.0), (1, 0.0), (2, 1e6)], ids=["seed0", "seed1", "offset1e6"])
def data(request):
    seed, offset = request.param
    values, group, keys, empty = random_groups(seed, offset=offset)
    return values, group, keys, empty, pandas_reference(values, group, keys)


def assert_close(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_group_count(data):
    _, group, _, _, ref = data
    np.testing.assert_array_equal(group_count(group, N), ref["count"])


def test_group_mean(data):
    values, group, _, empty, ref = data
    got = group_mean(values, group, N)
    assert got.shape == (N,)
    assert np.isnan(got[empty]).all()
    assert_close(got, ref["mean"])


def test_group_std(data):
    values, group, _, empty, ref = data
    got = group_std(values, group, N)
    assert np.isnan(got[empty]).all()
    assert np.isnan(got[[1, 7, 16, 29]]).all()  # ddof=1: one value -> NaN
    assert_close(got, ref["std"])
    # and against numpy's two-pass std per group
    for g in range(N):
        member = values[group == g]
        if len(member) > 1:
            assert got[g] == pytest.approx(np.std(member, ddof=1), rel=1e-9, abs=1e-12)


def test_group_std_of_constant_group_is_zero():
    values = np.array([1e9 + 0.1] * 5 + [3.0, 4.0])
    group = np.array([0] * 5 + [1, 1])
    got = group_std(values, group, 3)
    assert got[0] == 0.0
    assert got[1] == pytest.approx(math.sqrt(0.5), abs=1e-12)
    assert np.isnan(got[2])


def test_group_quantiles(data):
    values, group, _, empty, ref = data
    got = group_quantiles(values, group, N, QS)
    assert got.shape == (len(QS), N)
    assert np.isnan(got[:, empty]).all()
    assert_close(got, ref["quantiles"])
    # numpy's linear method agrees too
    for g in range(N):
        member = values[group == g]
        if len(member):
            np.testing.assert_allclose(
                got[:, g], np.quantile(member, QS, method="linear"), rtol=1e-9, atol=1e-9
            )


def test_group_quantiles_by_hand():
    values = np.array([4.0, 1.0, 3.0, 2.0, 10.0, 7.0])
    group = np.array([0, 0, 0, 0, 2, 3])
    got = group_quantiles(values, group, 4, (0.0, 0.25, 0.5, 0.9, 1.0))
    np.testing.assert_allclose(got[:, 0], [1.0, 1.75, 2.5, 3.7, 4.0], rtol=0, atol=1e-12)
    assert np.isnan(got[:, 1]).all()
    np.testing.assert_array_equal(got[:, 2], [10.0] * 5)
    np.testing.assert_array_equal(got[:, 3], [7.0] * 5)


def test_group_mode_share(data):
    _, group, keys, empty, ref = data
    got = group_mode_share(keys, group, N)
    assert np.isnan(got[empty]).all()
    assert (got[[1, 7, 16, 29]] == 1.0).all()
    assert_close(got, ref["mode_share"])


def test_group_mode_share_by_hand():
    keys = np.array([5, 5, 7, 7, 1, 3, 3, 3, 3, 9])
    group = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2])
    got = group_mode_share(keys, group, 4)
    np.testing.assert_allclose(got[:3], [2 / 5, 1.0, 1.0])  # tie between 5 and 7: share still 2/5
    assert np.isnan(got[3])


def test_group_entropy(data):
    _, group, keys, empty, ref = data
    got = group_entropy(keys, group, N)
    assert np.isnan(got[empty]).all()
    assert (got[[1, 7, 16, 29]] == 0.0).all()
    assert_close(got, ref["entropy"])
    for g in range(N):
        member = keys[group == g].tolist()
        if member:
            p = [c / len(member) for c in Counter(member).values()]
            assert got[g] == pytest.approx(-sum(x * math.log2(x) for x in p), abs=1e-12)


def test_group_entropy_by_hand():
    keys = np.array([1, 2, 3, 4, 8, 8, 8, 8, 0, 0, 1, 2])
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(group_entropy(keys, group, 3), [2.0, 0.0, 1.5], atol=1e-12)


@pytest.mark.parametrize("spread", [3, 1000, 10**12], ids=["histogram", "mixed", "sorted"])
def test_mode_share_and_entropy_for_any_integer_keys(spread):
    """Small non-negative keys are counted in a histogram, others (negative, large) by sorting: both agree
    with pandas, also when a group mixes the two."""
    rng = np.random.default_rng(spread % 97)
    group = rng.integers(0, N, 3000)
    keys = rng.integers(-spread, spread, 3000) // max(1, spread // 4)  # ties at every spread
    keys[rng.random(3000) < 0.3] = spread  # a shared large key: the mode may be outside the histogram
    ref = pandas_reference(np.zeros(len(group)), group, keys)
    assert_close(group_mode_share(keys, group, N), ref["mode_share"])
    assert_close(group_entropy(keys, group, N), ref["entropy"])


@pytest.mark.parametrize("shuffled", [False, True])
def test_group_sorted_lays_groups_out_in_order(shuffled):
    rng = np.random.default_rng(5)
    sizes = np.array([0, 1, 2, 3, 255, 256, 257, 700, 5000, 0, 1])  # every padding regime, empty groups
    group = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.normal(size=len(group))
    values[::17] = np.nan  # dropped, like pandas' quantile skips them
    values[::29] = np.inf
    if shuffled:
        perm = rng.permutation(len(group))
        group, values = group[perm], values[perm]
    got, start, count = group_sorted(values, group, len(sizes))
    for g in range(len(sizes)):
        member = np.sort(values[(group == g) & ~np.isnan(values)])
        assert count[g] == len(member)
        np.testing.assert_array_equal(got[start[g] : start[g] + count[g]], member)
    ints, _, _ = group_sorted(rng.integers(-5, 5, len(group)), group, len(sizes))
    assert ints.dtype.kind == "i"


def test_padded_width_bounds_the_padding():
    count = np.arange(0, 100_000)
    width = padded_width(count)
    assert (width >= count).all()
    short = count[:257]
    power_of_two = np.where(short <= 1, short, 2 ** np.ceil(np.log2(np.maximum(short, 1))))
    np.testing.assert_array_equal(width[:257], power_of_two)  # SIMD sorting networks up to 256
    assert (width[257:] <= count[257:] * 1.07).all()
    assert len(np.unique(width)) < 300  # few sort calls


def test_group_extreme_and_mean_std(data):
    values, group, _, _, ref = data
    frame = pd.DataFrame({"g": group, "v": values}).groupby("g")["v"]
    for largest, expected in ((True, frame.max()), (False, frame.min())):
        got = group_extreme(values, group, N, largest)
        assert_close(got, expected.reindex(pd.RangeIndex(N)).to_numpy())
        order = np.argsort(group, kind="stable")  # contiguous groups take the reduceat path
        assert_close(group_extreme(values[order], group[order], N, largest), got)
    order = np.argsort(group, kind="stable")
    for v, g in ((values, group), (values[order], group[order])):  # bincount path, reduceat path
        mean, std = group_mean_std(v, g, N)
        assert_close(mean, ref["mean"])
        assert_close(std, ref["std"])
        assert_close(group_mean(v, g, N), ref["mean"])
        assert_close(group_sum(v, g, N), np.nan_to_num(ref["mean"] * ref["count"]))


def test_empty_input_gives_nan_everywhere():
    values = np.array([], dtype=np.float64)
    group = np.array([], dtype=np.int64)
    for got in (
        group_mean(values, group, 4),
        group_std(values, group, 4),
        group_mode_share(group, group, 4),
        group_entropy(group, group, 4),
        group_extreme(values, group, 4, largest=True),
    ):
        assert got.shape == (4,) and np.isnan(got).all()
    got = group_quantiles(values, group, 4, (0.5, 0.9))
    assert got.shape == (2, 4) and np.isnan(got).all()
    np.testing.assert_array_equal(group_count(group, 4), np.zeros(4))


# ----------------------------------------------------------------------------------------------------------
# paired_next


EVENTS = [
    # (session, key, event, t_ms)            row
    (0, 65, "down", 0.0),  # 0   A pressed ...
    (0, -1, "move", 5.0),  # 1   a mouse event in between: neither first nor second
    (0, 65, "up", 50.0),  # 2   ... and released
    (0, 65, "down", 100.0),  # 3 A pressed a second time
    (0, 66, "down", 120.0),  # 4 B down before A up (rollover)
    (0, 65, "up", 150.0),  # 5
    (0, 66, "up", 170.0),  # 6
    (0, 67, "down", 200.0),  # 7 C down, never released in session 0
    (0, 68, "up", 250.0),  # 8   D up without a down
    (1, 65, "down", 10.0),  # 9  session 1, same key code as session 0
    (1, 65, "up", 10.0),  # 10  at the same instant as its down: still after it
    (0, 69, "down", 300.0),  # 11 E auto-repeat: two downs, one up
    (0, 69, "down", 320.0),  # 12
    (0, 69, "up", 400.0),  # 13
    (1, 67, "up", 20.0),  # 14  C up before C down in session 1: not a pair
    (1, 67, "down", 30.0),  # 15
    (1, 70, "up", 500.0),  # 16 F: up listed before its down, but later in time
    (1, 70, "down", 480.0),  # 17
]
EXPECTED_PAIRS = {(0, 2), (3, 5), (4, 6), (9, 10), (12, 13), (17, 16)}


def run_paired_next(events, order):
    rows = [events[i] for i in order]
    session = np.array([r[0] for r in rows], dtype=np.int64)
    key = np.array([r[1] for r in rows], dtype=np.int64)
    kind = np.array([r[2] for r in rows])
    t = np.array([r[3] for r in rows])
    downs, ups = paired_next(kind == "down", kind == "up", (session, key), t)
    assert len(downs) == len(ups)
    return {(order[d], order[u]) for d, u in zip(downs.tolist(), ups.tolist(), strict=True)}, downs, ups


def test_paired_next_handcrafted():
    pairs, downs, ups = run_paired_next(EVENTS, list(range(len(EVENTS))))
    assert pairs == EXPECTED_PAIRS
    assert downs.dtype.kind == "i" and ups.dtype.kind == "i"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_next_handcrafted_shuffled_rows(seed):
    order = np.random.default_rng(seed).permutation(len(EVENTS)).tolist()
    pairs, _, _ = run_paired_next(EVENTS, order)
    assert pairs == EXPECTED_PAIRS


def test_paired_next_too_few_rows():
    t = np.array([0.0, 1.0])
    empty = paired_next(np.array([False, False]), np.array([False, True]), (np.zeros(2, np.int64),), t)
    assert [len(a) for a in empty] == [0, 0]


def test_paired_next_random_against_python_scan():
    rng = np.random.default_rng(7)
    n = 600
    session = rng.integers(0, 4, n)
    key = rng.integers(0, 5, n)
    kind = rng.choice(["down", "up", "move"], n, p=[0.4, 0.4, 0.2])
    t = rng.integers(0, 40, n).astype(np.float64)  # coarse times: many ties
    first, second = kind == "down", kind == "up"
    downs, ups = paired_next(first, second, (session, key), t)
    got = set(zip(downs.tolist(), ups.tolist(), strict=True))

    expected = set()
    groups: dict[tuple, list[int]] = {}
    for i in range(n):
        if first[i] or second[i]:
            groups.setdefault((session[i], key[i]), []).append(i)
    for rows in groups.values():
        rows.sort(key=lambda i: (t[i], bool(second[i]), i))  # a `second` at the same instant goes after
        for a, b in itertools.pairwise(rows):
            if first[a] and second[b]:
                expected.add((a, b))
    assert got == expected
    assert len(expected) > 50
