"""A straightforward per-session implementation of `airush.abuse.features`, one session at a time.

Slow on purpose: it is the readable definition the vectorised extractor is checked against (to 1e-9, in
tests/test_abuse_features.py) and the baseline of scripts/bench_features.py. Same units and NaN rules.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS
from airush.abuse.features import (
    MOUSE_PAUSE_MS,
    STRAIGHT_MIN_AXIS_PX,
    STRAIGHT_MIN_CHORD_PX,
    STRAIGHT_MIN_POINTS,
    STRAIGHT_PX,
    TELEPORT_PX,
    TYPING_PAUSE_MS,
    event_codes,
)
from airush.abuse.mouse_actions import ACTION_PAUSE_MS, ACTION_TYPES, MIN_ACTION_ROWS

CODE = {name: i for i, name in enumerate(EVENT_KINDS)}


def reference_features(
    events: pd.DataFrame, session_ids: np.ndarray, keyboard=True, mouse=True
) -> pd.DataFrame:
    codes = event_codes(events["event"])
    button = (
        events["button"].cat.codes.to_numpy()
        if hasattr(events["button"], "cat")
        else events["button"].to_numpy()
    )
    frame = events.assign(code=codes, button_code=button)
    rows = []
    for _, session in frame.groupby("session_id", sort=True):
        row: dict[str, float] = {}
        t = session["t_ms"].to_numpy(float)
        span = t.max() - t.min()
        row["duration_s"] = span / 1000.0
        row["events_per_s"] = len(t) / max(span / 1000.0, 1e-3)
        if keyboard:
            row |= _keyboard(session)
        if mouse:
            row |= _mouse(session, span)
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.Index(sorted(frame["session_id"].unique()), name="session_id"))
    return out.reindex(pd.Index(session_ids, name="session_id"))


def _stats(out: dict, name: str, values, quantiles=(0.1, 0.5, 0.9)) -> None:
    s = pd.Series(values, dtype=float)
    out[f"{name}_mean"] = s.mean() if len(s) else np.nan
    out[f"{name}_std"] = s.std(ddof=1) if len(s) > 1 else np.nan
    for q in quantiles:
        out[f"{name}_p{round(q * 100)}"] = s.quantile(q) if len(s) else np.nan


def _mode_share(values) -> float:
    s = pd.Series(values)
    return s.value_counts().iloc[0] / len(s) if len(s) else np.nan


def _entropy(values) -> float:
    s = pd.Series(values)
    if not len(s):
        return np.nan
    p = s.value_counts(normalize=True).to_numpy()
    return float(-(p * np.log2(p)).sum())


def _pairs(session: pd.DataFrame, first: int, second: int, by: str) -> list[tuple[int, int]]:
    """(first row, second row) where a `first` event is directly followed by a `second` event of the same
    `by` value (key or button), ordering by time with `second` after `first` at equal times."""
    out = []
    relevant = session[session["code"].isin([first, second])]
    for _, group in relevant.groupby(by, sort=False):
        group = group.assign(is_second=(group["code"] == second).astype(int)).sort_values(
            ["t_ms", "is_second"], kind="stable"
        )
        codes, index = group["code"].to_numpy(), group.index.to_numpy()
        for i in range(len(group) - 1):
            if codes[i] == first and codes[i + 1] == second:
                out.append((index[i], index[i + 1]))
    return out


def _keyboard(session: pd.DataFrame) -> dict:
    out: dict[str, float] = {}
    t = session["t_ms"]
    pairs = _pairs(session, CODE["key_down"], CODE["key_up"], "key")
    hold = [t[u] - t[d] for d, u in pairs]
    _stats(out, "key_hold", hold)
    released = {d: t[u] for d, u in pairs}
    downs = session.index[session["code"] == CODE["key_down"]].to_list()
    dd, ud, in_burst = [], [], []
    for a, b in itertools.pairwise(downs):
        gap = t[b] - t[a]
        dd.append(gap)
        in_burst.append(gap < TYPING_PAUSE_MS)
        ud.append(t[b] - released[a] if a in released else np.nan)
    dd, ud, in_burst = np.array(dd), np.array(ud), np.array(in_burst, dtype=bool)
    _stats(out, "key_dd", dd[in_burst])
    ok = in_burst & np.isfinite(ud)
    _stats(out, "key_ud", ud[ok], quantiles=(0.5,))
    out["key_rollover_rate"] = float(np.mean(ud[ok] < 0)) if ok.any() else np.nan
    out["key_per_s"] = 1000.0 / out["key_dd_mean"]
    out["key_dd_cv"] = out["key_dd_std"] / out["key_dd_mean"]
    out["key_dd_mode_share"] = _mode_share(np.rint(dd[in_burst]))
    out["key_hold_mode_share"] = _mode_share(np.rint(hold))
    out["key_dd_entropy"] = _entropy(dd[in_burst] // 10)
    out["key_presses"] = float(len(downs))
    out["key_pauses"] = float((~in_burst).sum())
    return out


def _mouse(session: pd.DataFrame, span: float) -> dict:
    out: dict[str, float] = {}
    moving = session[session["code"].isin([CODE["move"], CODE["drag"]])]
    x, y, t = (moving[c].to_numpy(float) for c in ("x", "y", "t_ms"))
    dx, dy, dt = np.diff(x), np.diff(y), np.diff(t)
    step = np.hypot(dx, dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(dt > 0, step / np.where(dt > 0, dt, 1.0), np.nan)
    ok = np.isfinite(speed)
    _stats(out, "mouse_speed", speed[ok])
    out["mouse_teleport_rate"] = float(np.mean(step > TELEPORT_PX)) if len(step) else np.nan
    out["mouse_dt_mode_share"] = _mode_share(np.rint(dt))
    out["mouse_step_mode_share"] = _mode_share(np.rint(step))
    dts = pd.Series(dt)
    out["mouse_dt_cv"] = (dts.std(ddof=1) if len(dts) > 1 else np.nan) / (dts.mean() if len(dts) else np.nan)
    out["mouse_pauses_per_min"] = float((dt > MOUSE_PAUSE_MS).sum()) / max(span / 60000.0, 1e-3)

    idx = np.flatnonzero(ok)  # consecutive timed steps
    accel = [(speed[q] - speed[p]) / ((dt[p] + dt[q]) / 2.0) for p, q in itertools.pairwise(idx)]
    _stats(out, "mouse_accel", np.abs(accel), quantiles=(0.5, 0.9))
    jerk = [
        (accel[i + 1] - accel[i]) / dt[idx[i + 1]] for i in range(len(accel) - 1)
    ]  # consecutive accelerations share their middle step
    out["mouse_jerk_mean"] = float(np.mean(np.abs(jerk))) if jerk else np.nan

    moved = np.flatnonzero(step > 0)
    angle = np.arctan2(dy, dx)
    turns = [abs((angle[b] - angle[a] + np.pi) % (2 * np.pi) - np.pi) for a, b in itertools.pairwise(moved)]
    turn_steps = [step[b] for b in moved[1:]]
    _stats(out, "mouse_turn", turns, quantiles=(0.5,))
    out["mouse_curvature_mean"] = float(np.mean(np.array(turns) / np.array(turn_steps))) if turns else np.nan

    straightness, straight, path, start = [], [], 0.0, 0
    for i in range(len(step) + 1):
        if i == len(step) or (i > 0 and dt[i] > MOUSE_PAUSE_MS):
            ex, ey = (x[i] - x[start], y[i] - y[start]) if i > start else (0.0, 0.0)
            chord = np.hypot(ex, ey)
            if i > start and path > 20.0:
                straightness.append(chord / path)
            long = chord >= STRAIGHT_MIN_CHORD_PX and i - start + 1 >= STRAIGHT_MIN_POINTS
            if i > start and long and min(abs(ex), abs(ey)) >= STRAIGHT_MIN_AXIS_PX:
                points = range(start, i + 1)
                off = max(abs((x[j] - x[start]) * ey - (y[j] - y[start]) * ex) / chord for j in points)
                straight.append(off < STRAIGHT_PX)
            path, start = 0.0, i
        if i < len(step):
            path += step[i]
    _stats(out, "mouse_straightness", straightness, quantiles=(0.1, 0.5))
    out["mouse_straight_share"] = float(np.mean(straight)) if straight else np.nan

    clicks = _pairs(session, CODE["button_down"], CODE["button_up"], "button_code")
    holds = [session["t_ms"][u] - session["t_ms"][d] for d, u in clicks]
    _stats(out, "click_hold", holds, quantiles=(0.5,))
    out["click_hold_mode_share"] = _mode_share(np.rint(holds))
    out["mouse_moves"] = float(len(step))
    out["mouse_clicks"] = float((session["code"] == CODE["button_down"]).sum())
    out["mouse_clicks_per_min"] = out["mouse_clicks"] / max(span / 60000.0, 1e-3)
    out["mouse_path_repeat_share"] = _repeat_share(x, y)
    return out | _actions(session, span)


def _repeat_share(x: np.ndarray, y: np.ndarray, moves: int = 4, grid: int = 8) -> float:
    """Share of the session's runs of `moves` consecutive positions (1/grid px) seen earlier in it."""
    finite = np.isfinite(x) & np.isfinite(y)
    points = list(
        zip(np.rint(x[finite] * grid).astype(int), np.rint(y[finite] * grid).astype(int), strict=True)
    )
    grams = [tuple(points[i : i + moves]) for i in range(len(points) - moves + 1)]
    if not grams:
        return np.nan
    seen, again = set(), 0
    for gram in grams:
        again += gram in seen
        seen.add(gram)
    return again / len(grams)


def reference_actions(session: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(type, rows) of each mouse action of one session, by a row-by-row scan (see mouse_actions.py)."""
    mouse_codes = [CODE["move"], CODE["drag"], CODE["button_down"], CODE["button_up"]]
    rows = session[session["code"].isin(mouse_codes)]
    code, t = rows["code"].to_numpy(), rows["t_ms"].to_numpy(float)
    left = rows["button_code"].to_numpy() == BUTTONS.index("left")
    actions, current = [], []
    for i in range(len(rows)):
        starts_drag = False
        if code[i] == CODE["button_down"] and left[i]:  # a left press whose release comes after drags
            for j in range(i + 1, len(rows)):
                if code[j] == CODE["button_up"] and left[j]:
                    starts_drag = (code[i + 1 : j] == CODE["drag"]).any()
                    break
                if code[j] == CODE["button_down"] and left[j]:
                    break
        if current and (starts_drag or t[i] - t[current[-1]] > ACTION_PAUSE_MS):
            actions.append(current)
            current = []
        current.append(i)
        if code[i] == CODE["button_up"] and left[i]:
            actions.append(current)
            current = []
    if current:
        actions.append(current)
    out = []
    for members in actions:
        c, is_left = code[members], left[members]
        clicked = c[-1] == CODE["button_up"] and is_left[-1]
        pressed = ((c == CODE["button_down"]) & is_left).any()
        kind = "dd" if clicked and (c == CODE["drag"]).any() else "pc" if clicked and pressed else "mm"
        out.append((kind, rows.iloc[members]))
    return out


def _actions(session: pd.DataFrame, span: float) -> dict:
    out: dict[str, float] = {}
    actions = reference_actions(session)
    out["mouse_actions_per_min"] = len(actions) / max(span / 60000.0, 1e-3)
    for name in ACTION_TYPES:
        out[f"mouse_{name}_share"] = sum(k == name for k, _ in actions) / len(actions) if actions else np.nan
    for name in ACTION_TYPES:
        measures: dict[str, list[float]] = {"duration": [], "distance": [], "straightness": [], "speed": []}
        for kind, rows in actions:
            if kind != name or len(rows) < MIN_ACTION_ROWS:
                continue
            x, y, t = (rows[c].to_numpy(float) for c in ("x", "y", "t_ms"))
            distance = float(np.hypot(np.diff(x), np.diff(y)).sum())
            chord = float(np.hypot(x[-1] - x[0], y[-1] - y[0]))
            measures["duration"].append(t[-1] - t[0])
            measures["distance"].append(distance)
            measures["straightness"].append(chord / distance if distance > 0 else np.nan)
            measures["speed"].append(distance / (t[-1] - t[0]) if t[-1] > t[0] else np.nan)
        for measure, values in measures.items():
            out[f"mouse_{name}_{measure}_p50"] = pd.Series(values, dtype=float).median()
    return out
