"""Played-back sessions: how much of a session's clicking and pointing an earlier session already did, to
the pixel.

Replay tools and macro recorders play a person's recorded session back (see abuse/data/playback.py): per
session, the statistics are that person's, but every click lands where the recording's did and the pointer
passes the same pixels in the same order. People do not: on Balabit (881 hour-long sessions of 10 people,
remote desktop) no session shares more than 4.3% of its click triples or 1.4% of its pointer runs with any
earlier session, its owner's own included; a replay shares most of them with its source.

- click triples: three consecutive clicks (`button_down`) of a session, each more than MIN_CLICK_STEP_PX
  from the one before (clicking one button again and again is common and says nothing), positions on a
  CELL_PX grid (a copy may be logged on another pixel grid, 1 px or 1/dpr px, so exact positions can
  differ by under a pixel);
- pointer runs: MOVE_GRAM consecutive moves, each to another whole pixel (a copy logged at another event
  rate keeps only some of the positions, so runs survive only in part: the share stays lower than clicks').

Earlier = smaller session id: the schema's ids are in the order sessions began. Only the sessions passed
together are compared: score past sessions with the new ones to catch replays of them.
"""

from __future__ import annotations

import numpy as np

from airush.abuse.repeats import ngram_keys
from airush.compute.grouped import group_mean

CLICK_GRAM = 3  # clicks per sequence
CELL_PX = 4.0  # grid cell (px) click positions are compared on
MIN_CLICK_STEP_PX = 16.0  # each click this far from the one before
MOVE_GRAM = 4  # moves per pointer run, compared on whole pixels
# shares below this are what people's sessions reach by chance (Balabit: at most 0.043 of click triples,
# 0.014 of pointer runs; generated people: 0.033 of pointer runs) and are reported as 0, so a model cannot
# learn "any share above 0 is a bot" from generated people, whose shares are 0, and flag real ones
CHANCE_SHARE = 0.05
COPIED_COLUMNS = ("click_copied_share", "mouse_copied_share")


def copied_share(sessions: np.ndarray, cx: np.ndarray, cy: np.ndarray, apart: np.ndarray, size: int, ids):
    """Per id of `ids` (sorted, unique), the share of its runs of `size` consecutive points that an earlier
    session (smaller id) among `sessions` also has (0 below CHANCE_SHARE); NaN without any run. One row per point, sorted by
    session then time: grid cells `cx`, `cy` (integer-valued), and `apart` (len - 1: whether each point
    differs enough from the one before for a run to use it)."""
    n = len(ids)
    m = len(sessions) - size + 1
    if m <= 0:
        return np.full(n, np.nan)
    ok = sessions[:m] == sessions[size - 1 :]
    for k in range(size - 1):
        ok &= apart[k : k + m]
    key = ngram_keys(cx, cy, size)[ok]
    owner = sessions[:m][ok]
    unique, inverse = np.unique(key, return_inverse=True)
    first = np.full(len(unique), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, owner)
    copied = (first[inverse] < owner).astype(np.float64)
    group = np.searchsorted(ids, owner)
    known = (group < n) & (ids[np.minimum(group, n - 1)] == owner)
    share = group_mean(copied[known], group[known], n)
    return np.where(share < CHANCE_SHARE, 0.0, share)  # NaN (no run) stays NaN


def copied_features(sessions, event, x, y, ids, click: int, moves: tuple[int, ...]) -> dict[str, np.ndarray]:
    """COPIED_COLUMNS per id of `ids` from events (`sessions`, `event` codes, `x`, `y`; sorted by session then
    time): `click` is the code of button_down, `moves` those of pointer moves."""
    out = {}
    for name, rows, cell, size in (
        ("click_copied_share", event == click, CELL_PX, CLICK_GRAM),
        ("mouse_copied_share", np.isin(event, moves), 1.0, MOVE_GRAM),
    ):
        rows &= np.isfinite(x) & np.isfinite(y)
        s, px, py = sessions[rows], x[rows], y[rows]
        cx, cy = np.floor(px / cell), np.floor(py / cell)
        if name == "click_copied_share":
            apart = np.hypot(np.diff(px), np.diff(py)) > MIN_CLICK_STEP_PX
        else:
            apart = (np.diff(cx) != 0) | (np.diff(cy) != 0)
        out[name] = copied_share(s, cx, cy, apart, size, ids)
    return out


def with_copy_rule(scores: np.ndarray, X, copy_share: float | None) -> np.ndarray:
    """The detector's `scores` with sessions that copy an earlier one (at least `copy_share` of their click
    triples or pointer runs, `task.copy_share`) raised to that share when it is higher: a replay is found by
    matching, not by its statistics, which are a person's (so a model trained without replays scores them
    as people). Unchanged when the rule is off (None) or `X` has no such columns (model=seq, features
    without copies)."""
    scores = np.asarray(scores, dtype=np.float64)
    if copy_share is None or not hasattr(X, "columns") or not set(COPIED_COLUMNS) <= set(X.columns):
        return scores
    copied = np.nan_to_num(X[list(COPIED_COLUMNS)].to_numpy(np.float64), nan=0.0).max(axis=1)
    return np.where(copied >= copy_share, np.maximum(scores, copied), scores)
