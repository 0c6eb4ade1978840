"""Per-group statistics over flat arrays (no Python loop per group): the engine behind session features.

`group` holds each value's group index in [0, n); groups with no values get NaN. Quantiles interpolate
linearly like numpy/pandas so a per-group pandas reference agrees to floating-point precision.
"""

from __future__ import annotations

import numpy as np


def group_count(group: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group, minlength=n).astype(np.float64)


def group_mean(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    count = group_count(group, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(group, weights=values, minlength=n) / np.where(count > 0, count, np.nan)


def group_std(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Sample standard deviation (ddof=1, like pandas); NaN for groups of fewer than 2 values."""
    count = group_count(group, n)
    mean = group_mean(values, group, n)
    centred = values - mean[group]  # two-pass: exact where sum-of-squares would cancel
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.bincount(group, weights=centred * centred, minlength=n) / np.where(
            count > 1, count - 1, np.nan
        )
    return np.sqrt(var)


def group_quantiles(values: np.ndarray, group: np.ndarray, n: int, qs: tuple[float, ...]) -> np.ndarray:
    """(len(qs), n) array of linear-interpolated quantiles per group."""
    out = np.full((len(qs), n), np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, group))
    sorted_values = values[order]
    count = np.bincount(group, minlength=n)
    start = np.r_[0, np.cumsum(count)[:-1]]
    has = count > 0
    for i, q in enumerate(qs):
        pos = (count[has] - 1) * q
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, count[has] - 1)
        frac = pos - lo
        a, b = sorted_values[start[has] + lo], sorted_values[start[has] + hi]
        out[i, has] = a + (b - a) * frac
    return out


def group_mode_share(keys: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Share of a group's values equal to its most common value (1.0 = perfectly regular)."""
    out = np.full(n, np.nan)
    if len(keys) == 0:
        return out
    order = np.lexsort((keys, group))
    g, k = group[order], keys[order]
    new_run = np.r_[True, (g[1:] != g[:-1]) | (k[1:] != k[:-1])]
    run_id = np.cumsum(new_run) - 1
    run_len = np.bincount(run_id)
    run_group = g[new_run]
    longest = np.zeros(n)
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
    order = np.lexsort((keys, group))
    g, k = group[order], keys[order]
    new_run = np.r_[True, (g[1:] != g[:-1]) | (k[1:] != k[:-1])]
    run_len = np.bincount(np.cumsum(new_run) - 1).astype(np.float64)
    run_group = g[new_run]
    count = np.bincount(group, minlength=n).astype(np.float64)
    p = run_len / count[run_group]
    entropy = np.bincount(run_group, weights=-p * np.log2(p), minlength=n)
    out[count > 0] = entropy[count > 0]
    return out


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
