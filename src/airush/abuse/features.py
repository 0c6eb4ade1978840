"""Session features from raw keyboard and mouse events, computed for all sessions of a chunk at once.

Units: times in ms, distances in px, speeds in px/ms. Every feature is NaN when a session has nothing to
measure it on (no key presses, a single mouse move, ...); LightGBM handles NaN natively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.data import EVENT_KINDS
from airush.abuse.mouse_actions import session_action_features
from airush.abuse.repeats import path_repeat_share
from airush.compute.grouped import (
    group_count,
    group_entropy,
    group_extreme,
    group_mean,
    group_mean_std,
    group_mode_share,
    group_quantiles,
    paired_next,
)

QS = (0.1, 0.5, 0.9)
TYPING_PAUSE_MS = 2000.0  # a longer key-down gap ends a typing burst
MOUSE_PAUSE_MS = 300.0  # a longer gap between mouse events ends a stroke
# a ruler-straight stroke (scripted movers draw lines; a hand's long strokes bend): at least this long (px),
# this many points, this far off both axes (px; scroll-bar drags run along one), every point this close to
# the chord (px; positions on a 1 px grid stray up to 0.71 px from the exact line)
STRAIGHT_MIN_CHORD_PX, STRAIGHT_MIN_POINTS, STRAIGHT_MIN_AXIS_PX, STRAIGHT_PX = 100.0, 5, 3.0, 1.0
TELEPORT_PX = 250.0  # one sampled step longer than this is a jump no hand makes in ~16 ms
# a session's size rather than its behaviour: left out unless SessionFeatures(counts=True)
COUNT_COLUMNS = ("duration_s", "key_presses", "key_pauses", "mouse_moves", "mouse_clicks")
CHUNK_EVENTS = 1_000_000  # bounded memory: sessions are processed in chunks of about this many events

EVENT_CODE = {name: i for i, name in enumerate(EVENT_KINDS)}


class FeatureSet:
    """What `features=` builds for the abuse task: one row of numbers per unit (a session, or a mouse action
    under task.scope=account) from its events. A feature set implements `chunk_features`; `transform` hands
    it whole units about CHUNK_EVENTS events at a time, so memory stays bounded on any log. Columns are
    numbers (NaN where a unit has nothing to measure); names must be unique across combined sets."""

    task = "abuse"

    def chunk_features(self, events: pd.DataFrame, unit_ids: np.ndarray) -> pd.DataFrame:
        """One row per id in `unit_ids` (sorted, unique; the index), from `events` (the events schema of
        `airush.abuse.data`, sorted by session_id then t_ms; session_id is the unit id)."""
        raise NotImplementedError

    def transform(self, events: pd.DataFrame, unit_ids: np.ndarray, bar=None) -> pd.DataFrame:
        """`chunk_features` over all units, chunk by chunk; `bar` advances once per chunk."""
        return transform_in_chunks(self.chunk_features, events, unit_ids, bar)

    def n_chunks(self, events: pd.DataFrame, unit_ids: np.ndarray) -> int:
        return n_chunks(events, unit_ids)


class CombinedFeatures(FeatureSet):
    """Several feature sets side by side (`parts`, each built from its own `_target_`): how a user adds
    features of their own to airush's without touching either."""

    def __init__(self, parts: list[FeatureSet]) -> None:
        self.parts = list(parts)

    def chunk_features(self, events: pd.DataFrame, unit_ids: np.ndarray) -> pd.DataFrame:
        return self._combined([part.chunk_features(events, unit_ids) for part in self._checked()])

    def transform(self, events: pd.DataFrame, unit_ids: np.ndarray, bar=None) -> pd.DataFrame:
        """Each part's own `transform` (a part may compare sessions with each other, which chunks cannot)."""
        return self._combined([part.transform(events, unit_ids, bar) for part in self._checked()])

    def n_chunks(self, events: pd.DataFrame, unit_ids: np.ndarray) -> int:
        return sum(part.n_chunks(events, unit_ids) for part in self.parts)

    def _checked(self) -> list[FeatureSet]:
        from airush.errors import ConfigError

        if not self.parts:
            raise ConfigError("features.parts is empty: list at least one feature set")
        return self.parts

    @staticmethod
    def _combined(frames: list[pd.DataFrame]) -> pd.DataFrame:
        from airush.errors import ConfigError

        columns = [c for frame in frames for c in frame.columns]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ConfigError(f"features.parts give the column '{repeated[0]}' twice: rename one")
        return pd.concat(frames, axis=1)


@dataclass
class SessionFeatures(FeatureSet):
    """Keyboard and mouse statistics per session. `resample_ms`: None measures mouse kinematics on events as
    logged; a number (ms, below MOUSE_PAUSE_MS) measures them on every stroke resampled at that interval,
    so that they do not depend on the logger's event rate (see `mouse_features`). `counts`: also the
    session's size (COUNT_COLUMNS: its duration, key presses, pauses, moves, clicks). Off by default: how
    long a session is says what the page asked for, not who did it, and a detector that learned the
    generator's session lengths misjudges real sessions of other lengths (issue 14: Balabit's hour-long
    sessions were flagged for their click counts); rates (events, keys, clicks, pauses per time) stay.
    `copies`: also how much of a session's clicking and pointing an earlier session already did (`transform`)."""

    ranges: ClassVar[dict[str, str]] = {
        "resample_ms": f"(0, {MOUSE_PAUSE_MS:g}) (ms; null: events as logged)"
    }

    keyboard: bool = True
    mouse: bool = True
    resample_ms: float | None = None
    counts: bool = False
    copies: bool = True

    def transform(self, events: pd.DataFrame, unit_ids: np.ndarray, bar=None) -> pd.DataFrame:
        """The per-session statistics chunk by chunk, then (`copies`, with mouse) the features that compare
        sessions with each other (airush.abuse.copies.COPIED_COLUMNS), over every session passed."""
        if not (self.mouse and self.copies):
            return super().transform(events, unit_ids, bar)
        from airush.abuse.copies import CopiedRuns

        runs = CopiedRuns(click=EVENT_CODE["button_down"], moves=(EVENT_CODE["move"], EVENT_CODE["drag"]))

        def chunk_features(chunk: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
            x, y = (chunk[c].to_numpy(np.float64) for c in ("x", "y"))
            runs.add(chunk["session_id"].to_numpy(), event_codes(chunk["event"]), x, y)
            return self.chunk_features(chunk, ids)

        out = transform_in_chunks(chunk_features, events, unit_ids, bar)
        return out.assign(**runs.shares(np.asarray(unit_ids)))

    def chunk_features(self, events: pd.DataFrame, session_ids: np.ndarray) -> pd.DataFrame:
        from airush.errors import ConfigError

        if not (self.keyboard or self.mouse):
            raise ConfigError("features: enable keyboard, mouse or both")
        if self.resample_ms is not None and not 0 < self.resample_ms < MOUSE_PAUSE_MS:
            raise ConfigError(f"features.resample_ms must be in (0, {MOUSE_PAUSE_MS:g}) ms or null")
        n = len(session_ids)
        group = session_index(events["session_id"].to_numpy(), session_ids)
        code = event_codes(events["event"])
        t = events["t_ms"].to_numpy(np.float64)
        features: dict[str, np.ndarray] = {}
        duration = group_extreme(t, group, n, largest=True) - group_extreme(t, group, n, largest=False)
        features["duration_s"] = duration / 1000.0
        features["events_per_s"] = group_count(group, n) / np.maximum(duration / 1000.0, 1e-3)
        if self.keyboard:
            features |= keyboard_features(group, n, code, t, events["key"].to_numpy())
        if self.mouse:
            x = events["x"].to_numpy(np.float64)
            y = events["y"].to_numpy(np.float64)
            button = (
                events["button"].cat.codes.to_numpy()
                if hasattr(events["button"], "cat")
                else events["button"].to_numpy()
            )
            features |= mouse_features(group, n, code, t, x, y, button, duration, self.resample_ms)
        if not self.counts:
            features = {k: v for k, v in features.items() if k not in COUNT_COLUMNS}
        return pd.DataFrame(features, index=pd.Index(session_ids, name="session_id"))


def transform_in_chunks(chunk_features, events: pd.DataFrame, ids: np.ndarray, bar=None) -> pd.DataFrame:
    """chunk_features(events, ids) over whole sessions of about CHUNK_EVENTS events at a time, concatenated:
    memory stays bounded whatever the log's size; `bar` advances once per chunk."""
    frames = []
    for lo, hi, s_lo, s_hi in chunk_bounds(events["session_id"].to_numpy(), ids, CHUNK_EVENTS):
        frames.append(chunk_features(events.iloc[lo:hi], ids[s_lo:s_hi]))
        if bar is not None:
            bar.advance()
    return pd.concat(frames) if frames else pd.DataFrame(index=pd.Index(ids, name="session_id"))


def chunk_bounds(
    sid: np.ndarray, session_ids: np.ndarray, chunk_events: int
) -> list[tuple[int, int, int, int]]:
    """(event lo, event hi, session lo, session hi) per chunk; chunks never split a session."""
    starts = np.searchsorted(sid, session_ids, side="left")
    out, s_lo = [], 0
    while s_lo < len(session_ids):
        target = starts[s_lo] + chunk_events
        s_hi = max(s_lo + 1, int(np.searchsorted(starts, target, side="right")) - 1)
        s_hi = min(s_hi, len(session_ids))
        hi = starts[s_hi] if s_hi < len(session_ids) else len(sid)
        out.append((int(starts[s_lo]), int(hi), s_lo, s_hi))
        s_lo = s_hi
    return out


def session_index(sid: np.ndarray, session_ids: np.ndarray) -> np.ndarray:
    """Position of each event's session in `session_ids`; looks up one id per run of equal ids."""
    if len(sid) == 0:
        return np.empty(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    run_group = np.searchsorted(session_ids, sid[starts])
    return np.repeat(run_group, np.diff(np.r_[starts, len(sid)]))


def n_chunks(events: pd.DataFrame, unit_ids: np.ndarray) -> int:
    """How many chunks `transform_in_chunks` cuts `events` into (a progress bar's total)."""
    return len(chunk_bounds(events["session_id"].to_numpy(), unit_ids, CHUNK_EVENTS))


def event_codes(event: pd.Series) -> np.ndarray:
    """EVENT_KINDS index of each event (-1 for none), whatever the category order of the column."""
    return schema_codes(event, EVENT_CODE, -1, np.int8)


def schema_codes(column: pd.Series, index: dict[str, int], unknown: int, dtype=np.int16) -> np.ndarray:
    """Position of each value in a schema list (`index`: value -> position), whatever the category order of
    the column; values outside it and missing ones -> `unknown`."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        lookup = np.array([index.get(c, unknown) for c in column.cat.categories] + [unknown], dtype=dtype)
        return lookup[column.cat.codes.to_numpy()]  # code -1 (missing) -> the last entry, `unknown`
    return column.map(index).fillna(unknown).to_numpy(dtype)


def _describe(out: dict, name: str, values: np.ndarray, group: np.ndarray, n: int, quantiles=QS) -> None:
    out[f"{name}_mean"], out[f"{name}_std"] = group_mean_std(values, group, n)
    for q, row in zip(quantiles, group_quantiles(values, group, n, quantiles), strict=True):
        out[f"{name}_p{round(q * 100)}"] = row


def consecutive_pairs(rows: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of consecutive rows (in `rows` order) that belong to the same group."""
    same = group[rows[1:]] == group[rows[:-1]]
    return rows[:-1][same], rows[1:][same]


def keyboard_features(group, n, code, t, key) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    down, up = code == EVENT_CODE["key_down"], code == EVENT_CODE["key_up"]
    press, release = paired_next(down, up, (group, key), t)
    hold = t[release] - t[press]
    _describe(out, "key_hold", hold, group[press], n)
    released_at = np.full(len(t), np.nan)
    released_at[press] = t[release]

    a, b = consecutive_pairs(np.flatnonzero(down), group)
    dd = t[b] - t[a]
    in_burst = dd < TYPING_PAUSE_MS
    g = group[b]
    _describe(out, "key_dd", dd[in_burst], g[in_burst], n)
    ud = t[b] - released_at[a]
    ok = in_burst & np.isfinite(ud)
    _describe(out, "key_ud", ud[ok], g[ok], n, quantiles=(0.5,))
    out["key_rollover_rate"] = group_mean((ud[ok] < 0).astype(np.float64), g[ok], n)
    with np.errstate(divide="ignore", invalid="ignore"):  # every key in one clock tick: inf keys/s, NaN cv
        out["key_per_s"] = 1000.0 / out["key_dd_mean"]
        out["key_dd_cv"] = out["key_dd_std"] / out["key_dd_mean"]
    out["key_dd_mode_share"] = group_mode_share(np.rint(dd[in_burst]).astype(np.int64), g[in_burst], n)
    out["key_hold_mode_share"] = group_mode_share(np.rint(hold).astype(np.int64), group[press], n)
    out["key_dd_entropy"] = group_entropy((dd[in_burst] // 10).astype(np.int64), g[in_burst], n)
    out["key_presses"] = group_count(group[down], n)
    out["key_pauses"] = group_count(g[~in_burst], n)
    return out


def steps(a, b, x, y, t) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """dx, dy (px), dt (ms) and length (px) of the steps from rows `a` to rows `b`."""
    dx, dy, dt = x[b] - x[a], y[b] - y[a], t[b] - t[a]
    return dx, dy, dt, np.sqrt(dx * dx + dy * dy)  # np.hypot is 5x slower and equal to 1 ulp here


def path_kinematics(n, g, chain, a, b, x, y, dx, dy, dt, step) -> dict[str, np.ndarray]:
    """Speed (px/ms), acceleration, jerk, turning angle, curvature and stroke straightness over steps
    a -> b (rows of x, y; dx, dy, dt, step from `steps`, in time order). `g`: each step's session;
    `chain`: consecutive steps form derivatives and strokes only when equal (the session for raw events,
    the stroke for resampled paths, whose strokes are already cut at pauses)."""
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 ms gaps: no speed
        speed = step / dt
    ok = np.isfinite(speed)
    speed[~ok] = np.nan
    timed = np.flatnonzero(ok)  # index arrays: boolean masks with scattered gaps are ~5x slower to apply
    _describe(out, "mouse_speed", speed[timed], g[timed], n)

    # derivatives over consecutive steps of the same chain (steps are in time order)
    p, q = timed[:-1], timed[1:]
    same = chain[p] == chain[q]
    p, q = p[same], q[same]
    dt_mid = (dt[p] + dt[q]) / 2.0
    accel = (speed[q] - speed[p]) / dt_mid
    _describe(out, "mouse_accel", np.abs(accel), g[q], n, quantiles=(0.5, 0.9))
    p2, q2 = p[1:], p[:-1]  # consecutive accelerations share their middle step
    link = q[:-1] == p[1:]
    jerk = (accel[1:] - accel[:-1])[link] / dt[p2[link]]
    out["mouse_jerk_mean"] = group_mean(np.abs(jerk), g[q2[link]], n)

    m = np.flatnonzero(step > 0)
    mp, mq = m[:-1], m[1:]
    same = chain[mp] == chain[mq]
    mp, mq = mp[same], mq[same]
    # |turning angle| between consecutive steps, in [0, pi]: atan2(|cross|, dot)
    turn = np.arctan2(np.abs(dx[mp] * dy[mq] - dy[mp] * dx[mq]), dx[mp] * dx[mq] + dy[mp] * dy[mq])
    _describe(out, "mouse_turn", turn, g[mq], n, quantiles=(0.5,))
    out["mouse_curvature_mean"] = group_mean(turn / step[mq], g[mq], n)

    # strokes: runs of moves without a pause; straightness = chord / path length
    breaks = (
        np.r_[True, (chain[1:] != chain[:-1]) | (dt[1:] > MOUSE_PAUSE_MS)] if len(g) else np.empty(0, bool)
    )
    stroke = np.cumsum(breaks) - 1
    if len(stroke):
        n_strokes = stroke[-1] + 1
        path = np.bincount(stroke, weights=step, minlength=n_strokes)
        first_row, last_row = a[breaks], b[np.r_[np.flatnonzero(breaks)[1:] - 1, len(b) - 1]]
        chord = np.hypot(x[last_row] - x[first_row], y[last_row] - y[first_row])
        real = path > 20.0
        _describe(
            out, "mouse_straightness", (chord / np.maximum(path, 1e-9))[real], g[breaks][real], n, (0.1, 0.5)
        )
        # ruler-straight strokes: every point within STRAIGHT_PX of the chord over a long, sampled, oblique stroke
        starts = np.flatnonzero(breaks)
        cx, cy = (x[last_row] - x[first_row]), (y[last_row] - y[first_row])
        with np.errstate(invalid="ignore", divide="ignore"):
            off = np.abs(
                (x[b] - x[first_row][stroke]) * cy[stroke] - (y[b] - y[first_row][stroke]) * cx[stroke]
            )
            deviation = np.maximum.reduceat(off, starts) / chord
        long = (chord >= STRAIGHT_MIN_CHORD_PX) & (np.diff(np.r_[starts, len(b)]) + 1 >= STRAIGHT_MIN_POINTS)
        long &= np.minimum(np.abs(cx), np.abs(cy)) >= STRAIGHT_MIN_AXIS_PX
        straight = (deviation[long] < STRAIGHT_PX).astype(np.float64)
        out["mouse_straight_share"] = group_mean(straight, g[breaks][long], n)
    else:
        _describe(out, "mouse_straightness", np.empty(0), np.empty(0, np.int64), n, (0.1, 0.5))
        out["mouse_straight_share"] = np.full(n, np.nan)
    return out


def mouse_features(group, n, code, t, x, y, button, duration, resample_ms=None) -> dict[str, np.ndarray]:
    """`duration`: each session's span in ms (first to last event of any kind). `resample_ms`: None measures
    the kinematics (`path_kinematics`) on consecutive events as logged; a number, on each stroke resampled
    every that many ms (airush.abuse.resample), so they no longer depend on the logger's event rate. Timer
    features (dt and step mode shares, dt cv, pauses, teleports), clicks and counts always see raw events."""
    moving = (code == EVENT_CODE["move"]) | (code == EVENT_CODE["drag"])
    a, b = consecutive_pairs(np.flatnonzero(moving), group)
    dx, dy, dt, step = steps(a, b, x, y, t)
    g = group[b]
    if resample_ms is None:
        kinematics = path_kinematics(n, g, g, a, b, x, y, dx, dy, dt, step)
    else:
        from airush.abuse.resample import resample_strokes

        rows = np.flatnonzero(moving)
        path = resample_strokes(group[rows], t[rows], x[rows], y[rows], resample_ms, MOUSE_PAUSE_MS)
        ra, rb = consecutive_pairs(np.arange(len(path.t)), path.stroke)
        r_steps = steps(ra, rb, path.x, path.y, path.t)
        kinematics = path_kinematics(n, path.group[rb], path.stroke[rb], ra, rb, path.x, path.y, *r_steps)
    # columns in the order they have always had: speed first, then the timer features, then the rest
    out = {k: kinematics.pop(k) for k in list(kinematics) if k.startswith("mouse_speed_")}
    out["mouse_teleport_rate"] = group_mean((step > TELEPORT_PX).astype(np.float64), g, n)
    out["mouse_dt_mode_share"] = group_mode_share(np.rint(dt).astype(np.int64), g, n)
    out["mouse_step_mode_share"] = group_mode_share(np.rint(step).astype(np.int64), g, n)
    with np.errstate(invalid="ignore", divide="ignore"):  # all gaps 0 ms (quantised clocks): NaN
        dt_mean, dt_std = group_mean_std(dt, g, n)
        out["mouse_dt_cv"] = dt_std / dt_mean
    out["mouse_pauses_per_min"] = group_count(g[dt > MOUSE_PAUSE_MS], n) / np.maximum(
        duration / 60000.0, 1e-3
    )
    out |= kinematics

    down, up = code == EVENT_CODE["button_down"], code == EVENT_CODE["button_up"]
    press, release = paired_next(down, up, (group, button), t)
    _describe(out, "click_hold", t[release] - t[press], group[press], n, quantiles=(0.5,))
    out["click_hold_mode_share"] = group_mode_share(
        np.rint(t[release] - t[press]).astype(np.int64), group[press], n
    )
    out["mouse_moves"] = group_count(g, n)
    out["mouse_clicks"] = group_count(group[down], n)
    out["mouse_clicks_per_min"] = out["mouse_clicks"] / np.maximum(duration / 60000.0, 1e-3)
    moves = np.flatnonzero(moving)
    out["mouse_path_repeat_share"] = path_repeat_share(group[moves], n, x[moves], y[moves])
    return out | session_action_features(group, n, code, t, x, y, button, duration)
