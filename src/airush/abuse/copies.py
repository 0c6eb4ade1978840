"""Played-back sessions: how much of a session's clicking and pointing an earlier session already did, to
the pixel.

Replay tools and macro recorders play a person's recorded session back (see abuse/data/playback.py): per
session, the statistics are that person's, but every click lands where the recording's did and the pointer
passes the same pixels in the same order. People do not: on Balabit (881 hour-long sessions of 10 people,
remote desktop) no session shares more than 4.3% of its click triples or 1.6% of its (sampled) pointer
runs with any earlier session, its owner's own included; a replay shares most of them with its source.

- click triples: three consecutive clicks (`button_down`) of a session, each more than MIN_CLICK_STEP_PX
  from the one before (clicking one button again and again is common and says nothing), positions on a
  CELL_PX grid (a copy may be logged on another pixel grid, 1 px or 1/dpr px, so exact positions can
  differ by under a pixel);
- pointer runs: MOVE_GRAM consecutive moves, each to another whole pixel (a copy logged at another event
  rate keeps only some of the positions, so runs survive only in part: the share stays lower than clicks'),
  one run in about MOVE_SAMPLE kept, chosen by where it starts, so that memory stays small.

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
MOVE_SAMPLE = 8  # pointer runs kept: those starting on one diagonal of pixels in this many (CopiedRuns)
# shares below this are what people's sessions reach by chance (Balabit: at most 0.043 of click triples,
# 0.016 of pointer runs; generated people: 0.043 of pointer runs) and are reported as 0, so a model cannot
# learn "any share above 0 is a bot" from generated people, whose shares are mostly 0, and flag real ones
CHANCE_SHARE = 0.05
COPIED_COLUMNS = ("click_copied_share", "mouse_copied_share")


class CopiedRuns:
    """The click triples and pointer runs of sessions, collected chunk by chunk (`add`), then each session's
    shares (`shares`). Memory: 16 bytes per click triple and per sampled pointer run; pointer runs are
    sampled by position (MOVE_SAMPLE: a run is kept when its first cell lies on every MOVE_SAMPLE-th
    diagonal), so a run and its copy are kept or dropped together and 100 M events need ~150 MB here."""

    def __init__(self, click: int, moves: tuple[int, ...]) -> None:
        self.click, self.moves = click, moves
        self.keys = {name: [] for name in COPIED_COLUMNS}
        self.owners = {name: [] for name in COPIED_COLUMNS}

    def add(self, sessions: np.ndarray, event: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Events of whole sessions (a run never spans two), sorted by session then time: session ids,
        event codes, positions."""
        for name, rows, cell, size in (
            ("click_copied_share", event == self.click, CELL_PX, CLICK_GRAM),
            ("mouse_copied_share", np.isin(event, self.moves), 1.0, MOVE_GRAM),
        ):
            rows &= np.isfinite(x) & np.isfinite(y)
            s, px, py = sessions[rows], x[rows], y[rows]
            cx, cy = np.floor(px / cell), np.floor(py / cell)
            m = len(s) - size + 1
            if m <= 0:
                continue
            if name == "click_copied_share":
                apart = np.hypot(np.diff(px), np.diff(py)) > MIN_CLICK_STEP_PX
                ok = np.ones(m, bool)
            else:
                apart = (np.diff(cx) != 0) | (np.diff(cy) != 0)
                ok = (cx[:m] + cy[:m]) % MOVE_SAMPLE == 0
            ok &= s[:m] == s[size - 1 :]
            for k in range(size - 1):
                ok &= apart[k : k + m]
            self.keys[name].append(ngram_keys(cx, cy, size)[ok])
            self.owners[name].append(s[:m][ok])

    def shares(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Per id of `ids` (sorted, unique), the share of its runs that an earlier session (smaller id) also
        has (0 below CHANCE_SHARE), for each of COPIED_COLUMNS; NaN without any run."""
        return {
            name: _copied_share(self.keys[name], self.owners[name], np.asarray(ids))
            for name in COPIED_COLUMNS
        }


def _copied_share(keys: list[np.ndarray], owners: list[np.ndarray], ids: np.ndarray) -> np.ndarray:
    n = len(ids)
    key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    if not len(key):
        return np.full(n, np.nan)
    unique, inverse = np.unique(key, return_inverse=True)
    first = np.full(len(unique), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, owner)
    copied = (first[inverse] < owner).astype(np.float64)
    group = np.searchsorted(ids, owner)
    known = (group < n) & (ids[np.minimum(group, n - 1)] == owner)
    share = group_mean(copied[known], group[known], n)
    return np.where(share < CHANCE_SHARE, 0.0, share)  # NaN (no run) stays NaN


def copied_features(sessions, event, x, y, ids, click: int, moves: tuple[int, ...]) -> dict[str, np.ndarray]:
    """COPIED_COLUMNS per id of `ids` (sorted, unique) from events in one piece (`CopiedRuns` for chunks)."""
    runs = CopiedRuns(click, moves)
    runs.add(sessions, event, x, y)
    return runs.shares(ids)


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
