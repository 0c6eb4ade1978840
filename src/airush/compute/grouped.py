"""Per-group statistics over flat arrays (no Python loop per group): the engine behind session features.

`group` holds each value's group index in [0, n); groups with no values get NaN. Quantiles interpolate
linearly like numpy/pandas so a per-group pandas reference agrees to floating-point precision.

Order statistics (quantiles, mode share, entropy) need each group's values sorted. Instead of one global
(group, value) lexsort, `group_sorted` pads every group to the next power of two and sorts the padded rows
of each width as one 2-D array: one vectorised sort per width class, ~7x faster than the lexsort on
session-sized groups, at most twice the memory of the values.
"""

from __future__ import annotations

import numpy as np


def group_count(group: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group, minlength=n).astype(np.float64)


def group_sum(values: np.ndarray, group: np.ndarray, n: int, count: np.ndarray | None = None) -> np.ndarray:
    """Per-group sum (0 for empty groups); `count` (np.bincount of group) if the caller has it.

    Contiguous groups (the usual case: values in session order) sum with one reduceat, ~20x faster than a
    weighted bincount.
    """
    if not _is_nondecreasing(group):
        return np.bincount(group, weights=values, minlength=n)
    if count is None:
        count = np.bincount(group, minlength=n)
    out = np.zeros(n)
    has = count > 0
    if has.any():
        out[has] = np.add.reduceat(values, (np.cumsum(count) - count)[has])
    return out


def group_mean(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    count = np.bincount(group, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return group_sum(values, group, n, count) / np.where(count > 0, count, np.nan)


def group_std(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Sample standard deviation (ddof=1, like pandas); NaN for groups of fewer than 2 values."""
    return group_mean_std(values, group, n)[1]


def group_mean_std(values: np.ndarray, group: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation (ddof=1) from one count."""
    count = np.bincount(group, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = group_sum(values, group, n, count) / np.where(count > 0, count, np.nan)
        centred = values - mean[group]  # two-pass: exact where sum-of-squares would cancel
        var = group_sum(centred * centred, group, n, count) / np.where(count > 1, count - 1, np.nan)
    return mean, np.sqrt(var)


def group_extreme(values: np.ndarray, group: np.ndarray, n: int, largest: bool) -> np.ndarray:
    """Per-group maximum (or minimum); NaN for empty groups. One pass when groups are contiguous."""
    out = np.full(n, np.nan)
    if len(values) == 0:
        return out
    reduce = np.maximum if largest else np.minimum
    if _is_nondecreasing(group):
        count = np.bincount(group, minlength=n)
        has = count > 0
        out[has] = reduce.reduceat(values, (np.cumsum(count) - count)[has])
    else:
        acc = np.full(n, -np.inf if largest else np.inf)
        reduce.at(acc, group, values)
        has = np.bincount(group, minlength=n) > 0
        out[has] = acc[has]
    return out


def group_sorted(values: np.ndarray, group: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values sorted within each group with groups laid out in order 0..n-1, each group's start, count).

    Works for float and integer values; NaN values are dropped (pandas skips them in quantiles).
    """
    values = np.asarray(values)
    group = np.asarray(group)
    if values.dtype.kind == "f":
        real = ~np.isnan(values)
        if not real.all():
            values, group = values[real], group[real]
    if not _is_nondecreasing(group):
        order = np.argsort(group, kind="stable")
        values, group = values[order], group[order]
    count = np.bincount(group, minlength=n)
    start = np.cumsum(count) - count
    if len(values) == 0:
        return values.copy(), start, count
    width = padded_width(count)
    by_width = np.argsort(width, kind="stable")
    widths, first = np.unique(width[by_width], return_index=True)
    row_start = np.empty(n, np.int64)  # each group's row in the padded buffer, rows grouped by width
    row_start[by_width] = np.cumsum(width[by_width]) - width[by_width]
    dest = np.arange(len(values)) + (row_start - start)[group]
    fill = np.inf if values.dtype.kind == "f" else np.iinfo(values.dtype).max
    padded = np.full(int(row_start[by_width[-1]] + width[by_width[-1]]), fill, dtype=values.dtype)
    padded[dest] = values
    bounds = np.r_[first, n]
    for w, lo, hi in zip(widths, bounds[:-1], bounds[1:], strict=True):
        if w > 1:
            offset = row_start[by_width[lo]]
            padded[offset : offset + (hi - lo) * w].reshape(hi - lo, w).sort(axis=1)
    return padded[dest], start, count


def group_quantiles(values: np.ndarray, group: np.ndarray, n: int, qs: tuple[float, ...]) -> np.ndarray:
    """(len(qs), n) array of linear-interpolated quantiles per group (NaN values skipped)."""
    return sorted_quantiles(*group_sorted(values, group, n), qs)


def sorted_quantiles(
    sorted_values: np.ndarray, start: np.ndarray, count: np.ndarray, qs: tuple[float, ...]
) -> np.ndarray:
    """Quantiles from `group_sorted` output, so several statistics share one sort."""
    out = np.full((len(qs), len(count)), np.nan)
    has = count > 0
    c, s = count[has], start[has]
    for i, q in enumerate(qs):
        pos = (c - 1) * q
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, c - 1)
        frac = pos - lo
        a, b = sorted_values[s + lo], sorted_values[s + hi]
        out[i, has] = a + (b - a) * frac
    return out


def group_key_counts(keys: np.ndarray, group: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """How often each distinct key occurs in each group: (count, its group) per (group, key) pair.

    Small non-negative keys (the common case: ms gaps, px steps) are counted in one (group, key) histogram;
    the rest are sorted within their groups and counted as runs of equal keys.
    """
    keys = np.asarray(keys, dtype=np.int64)
    group = np.asarray(group, dtype=np.int64)
    bins_per_group = 1 << int(np.log2(max(4 * len(keys) // max(n, 1), 16)))  # histogram <= ~4x the keys
    small = (keys >= 0) & (keys < bins_per_group)
    hist = np.bincount(group[small] * bins_per_group + keys[small], minlength=n * bins_per_group)
    cell = np.flatnonzero(hist)
    counts, groups = [hist[cell]], [cell // bins_per_group]
    if not small.all():
        k, start, count = group_sorted(keys[~small], group[~small], n)
        new_run = np.zeros(len(k), bool)
        new_run[start[count > 0]] = True
        new_run[1:] |= k[1:] != k[:-1]
        run_starts = np.flatnonzero(new_run)
        counts.append(np.diff(np.r_[run_starts, len(k)]))
        groups.append(np.repeat(np.arange(n), count)[run_starts])
    return np.concatenate(counts), np.concatenate(groups)


def group_mode_share(keys: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Share of a group's values equal to its most common value (1.0 = perfectly regular)."""
    out = np.full(n, np.nan)
    if len(keys) == 0:
        return out
    run_len, run_group = group_key_counts(keys, group, n)
    longest = np.zeros(n, np.int64)
    np.maximum.at(longest, run_group, run_len)
    count = np.bincount(group, minlength=n)
    has = count > 0
    out[has] = longest[has] / count[has]
    return out


def group_entropy(keys: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Shannon entropy (bits) of each group's histogram of integer keys."""
    out = np.full(n, np.nan)
    if len(keys) == 0:
        return out
    run_len, run_group = group_key_counts(keys, group, n)
    count = np.bincount(group, minlength=n)
    p = run_len / count[run_group]
    entropy = np.bincount(run_group, weights=-p * np.log2(p), minlength=n)
    out[count > 0] = entropy[count > 0]
    return out


def padded_width(count: np.ndarray) -> np.ndarray:
    """Row length a group of `count` values is padded to: the next power of two up to 256 (rows that short
    sort in SIMD sorting networks), beyond that the next multiple of 1/16 of the count's power of two, so
    padding stays under ~6% while the number of distinct widths (one sort call each) stays small."""
    count = np.asarray(count, dtype=np.int64)
    octave = np.floor(np.log2(np.maximum(count, 1))).astype(np.int64)
    short = np.ceil(np.log2(np.maximum(count, 1))).astype(np.int64)
    step = np.where(count <= 256, 1 << short, 1 << np.maximum(octave - 4, 0))
    return -(-count // step) * step  # 0 stays 0, 1 stays 1


def _is_nondecreasing(group: np.ndarray) -> bool:
    return len(group) < 2 or bool((group[1:] >= group[:-1]).all())


def paired_next(
    first: np.ndarray, second: np.ndarray, group_keys: tuple[np.ndarray, ...], time: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows where a `first` event is directly followed, within its group, by a `second` event.

    Groups are rows equal on every array of `group_keys` (e.g. session and key code), ordered by `time`
    (a `second` at the same instant sorts after the `first`); e.g. each key_down -> its key_up.
    Returns the two row-index arrays.
    """
    rows = np.flatnonzero(first | second)
    if len(rows) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort((second[rows], time[rows], *(k[rows] for k in reversed(group_keys))))
    s = rows[order]
    same = np.ones(len(s) - 1, dtype=bool)
    for key in group_keys:
        same &= key[s[1:]] == key[s[:-1]]
    pair = first[s[:-1]] & second[s[1:]] & same
    return s[:-1][pair], s[1:][pair]
