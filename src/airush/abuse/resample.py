"""Mouse paths resampled at a fixed interval, so that kinematics do not depend on the logger's event rate.

A logger samples the same hand movement at 60-240 Hz (browser frames), 125-1000 Hz (raw OS hook) or every
~30-120 ms (remote desktop); finite differences of consecutive events then measure the logger as much as the
hand. Here each stroke (a run of moves without a gap longer than `pause_ms`) is read as a path x(t), y(t)
linear between its events and sampled every `step_ms` from its first event on. Everything runs over all
strokes at once (no loop per session or stroke); the output has about (stroke span / step_ms) points per
stroke, so memory stays proportional to a chunk's mouse time, not to the whole log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ResampledPath:
    """Points every `step_ms` along each stroke, strokes one after another in input order.

    t: ms since the stroke's first event; x, y: px; stroke: each point's stroke index (0..S-1, increasing);
    group: each point's session (the `group` of the stroke's events)."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    stroke: np.ndarray
    group: np.ndarray


def resample_strokes(
    group: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray, step_ms: float, pause_ms: float
) -> ResampledPath:
    """Moving points (sorted by group, then t; t in ms) -> their strokes sampled every `step_ms` ms.

    A stroke starts at a session's first point and after every gap longer than `pause_ms`; a stroke of one
    point, or one shorter than `step_ms`, gives a single point (no step to measure). Events sharing a time
    stamp (coarse clocks) count as one: the last of them, as the position the logger reported then."""
    if len(t) == 0:
        empty = np.empty(0)
        return ResampledPath(empty, empty, empty, np.empty(0, np.int64), np.empty(0, np.int64))
    new = np.r_[True, (group[1:] != group[:-1]) | (np.diff(t) > pause_ms)]
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(t)] - 1
    point_stroke = np.cumsum(new) - 1
    local = t - t[first][point_stroke]  # ms since the stroke's first point
    span = local[last]
    size = np.floor(span / step_ms).astype(np.int64) + 1  # grid points per stroke
    stroke = np.repeat(np.arange(len(first)), size)
    t_grid = (np.arange(len(stroke)) - np.repeat(np.cumsum(size) - size, size)) * step_ms
    # strokes laid end to end on one increasing axis, so one searchsorted finds every grid point's segment
    offset = np.cumsum(np.r_[0.0, span[:-1] + step_ms + 1.0])
    lo = np.searchsorted(local + offset[point_stroke], t_grid + offset[stroke], side="right") - 1
    lo = np.clip(lo, first[stroke], last[stroke])
    hi = np.minimum(lo + 1, last[stroke])
    width = local[hi] - local[lo]
    w = np.divide(t_grid - local[lo], width, out=np.zeros(len(lo)), where=width > 0)
    return ResampledPath(
        t=t_grid,
        x=x[lo] + w * (x[hi] - x[lo]),
        y=y[lo] + w * (y[hi] - y[lo]),
        stroke=stroke,
        group=group[first][stroke],
    )
