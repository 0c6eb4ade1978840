"""Pointer paths shared by the people and bot generators: samples of many segments at once.

A segment runs from p0 to p3 along a cubic Bézier curve (a straight line has its control points on the
chord, at 1/3 and 2/3); `progress` in [0, 1] says how far along the curve parameter a sample is. Everything
is vectorised over all segments: `expand` turns per-segment sample counts into per-sample indices.
"""

from __future__ import annotations

import numpy as np

# pyautogui's tween functions (from pytweening), the ones scripts pass to moveTo(..., tween=...)
TWEENS = (
    "linear", "easeInQuad", "easeOutQuad", "easeInOutQuad", "easeInCubic", "easeOutCubic",
    "easeInOutCubic", "easeInOutSine", "easeOutBack",
)  # fmt: skip


def tween(code: np.ndarray, n: np.ndarray) -> np.ndarray:
    """TWEENS[code] applied to n in [0, 1], element-wise."""
    out = n.copy()
    inout = n < 0.5
    for i, name in enumerate(TWEENS):
        sel = code == i
        if not sel.any() or name == "linear":
            continue
        v, lo = n[sel], inout[sel]
        if name == "easeInQuad":
            r = v**2
        elif name == "easeOutQuad":
            r = -v * (v - 2)
        elif name == "easeInOutQuad":
            r = np.where(lo, 2 * v**2, -2 * v**2 + 4 * v - 1)
        elif name == "easeInCubic":
            r = v**3
        elif name == "easeOutCubic":
            r = (v - 1) ** 3 + 1
        elif name == "easeInOutCubic":
            r = np.where(lo, 4 * v**3, 1 + 4 * (v - 1) ** 3)
        elif name == "easeInOutSine":
            r = -0.5 * (np.cos(np.pi * v) - 1)
        else:  # easeOutBack: overshoots the target by ~10% and comes back
            s = 1.70158
            r = (v - 1) ** 2 * ((s + 1) * (v - 1) + s) + 1
        out[sel] = r
    return out


def min_jerk(tau: np.ndarray) -> np.ndarray:
    """Progress of a minimum-jerk movement (Flash & Hogan 1985) at time fraction tau: 10t³ - 15t⁴ + 6t⁵."""
    return tau**3 * (10.0 + tau * (-15.0 + 6.0 * tau))


def expand(n_samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segment of each sample, k = 1..n within its segment) for per-segment sample counts."""
    seg = np.repeat(np.arange(len(n_samples)), n_samples)
    first = np.r_[0, np.cumsum(n_samples)[:-1]]
    return seg, np.arange(len(seg)) - first[seg] + 1


def chord_controls(p0: np.ndarray, p3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Control points that make the cubic Bézier the straight segment p0 -> p3, travelled at constant speed."""
    d = p3 - p0
    return p0 + d / 3.0, p0 + 2.0 * d / 3.0


def normal(p0: np.ndarray, p3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit normal to each chord, chord length px)."""
    d = p3 - p0
    length = np.hypot(d[:, 0], d[:, 1])
    return np.c_[-d[:, 1], d[:, 0]] / np.maximum(length, 1e-9)[:, None], length


def bezier(p0, c1, c2, p3, seg: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Points of cubic Béziers (one row of p0, c1, c2, p3 per curve) at parameter u of samples on curve `seg`,
    evaluated in Horner form from per-curve coefficients."""
    a = p3 - p0 + 3.0 * (c1 - c2)
    b = 3.0 * (p0 - 2.0 * c1 + c2)
    c = 3.0 * (c1 - p0)
    out = np.empty((len(u), 2))
    for axis in range(2):
        out[:, axis] = ((a[seg, axis] * u + b[seg, axis]) * u + c[seg, axis]) * u + p0[seg, axis]
    return out


def within_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum restarting at each group (rows sorted by group)."""
    if not len(values):
        return np.zeros(0)
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    offset = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    return total - values - offset
