"""Per-action mouse dynamics (Antal & Egyed-Zsigmond 2019 style), the features per-account verification
scores: shape (distance, straightness, largest deviation from the end-to-end line, direction, where on the
screen it starts and ends), velocity, acceleration and jerk profiles, angular velocity, curvature, critical
points (sharp turns), and the click itself.

`ActionFeatures` cuts each unit's mouse events into actions (mouse_actions.py) and averages the actions'
features per unit. With task.scope=account every unit already is one action, so a row is that action's
features; given whole sessions it gives each session's mean action. Units: ms, px, px/ms, rad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse import features  # module attribute: CHUNK_EVENTS is read at call time
from airush.abuse.mouse_actions import (
    ACTION_PAUSE_MS,
    ACTION_TYPES,
    BUTTON_DOWN,
    LEFT,
    MouseActions,
    segment_actions,
)
from airush.compute.grouped import group_count, group_extreme, group_mean, group_mean_std, group_sum

SHARP_TURN_RAD = np.pi / 4  # a critical point: the path turns by more than this between two steps


@dataclass
class ActionFeatures(features.FeatureSet):
    """Per-unit mean of its mouse actions' features (one action per unit under task.scope=account)."""

    ranges: ClassVar[dict[str, str]] = {"pause_ms": "> 0"}

    pause_ms: float = ACTION_PAUSE_MS

    def chunk_features(self, events: pd.DataFrame, unit_ids: np.ndarray) -> pd.DataFrame:
        group = features.session_index(events["session_id"].to_numpy(), unit_ids)
        code = features.event_codes(events["event"])
        button = events["button"].cat.codes.to_numpy()
        t, x, y = (events[c].to_numpy(np.float64) for c in ("t_ms", "x", "y"))
        actions = segment_actions(group, code, button, t, self.pause_ms)
        n = len(unit_ids)
        columns = {}
        for name, values in action_dynamics(actions, code, button, t, x, y).items():
            real = np.flatnonzero(~np.isnan(values))  # mean over each unit's actions, NaN-skipping
            columns[name] = group_mean(values[real], actions.session[real], n)
        return pd.DataFrame(columns, index=pd.Index(unit_ids, name="session_id"))


def action_dynamics(actions: MouseActions, code, button, t, x, y) -> dict[str, np.ndarray]:
    """One value per action for each feature (NaN where undefined)."""
    n = len(actions)
    r, a = actions.rows, actions.action
    xr, yr, tr = x[r], y[r], t[r]
    first, last = actions.first, actions.last
    out: dict[str, np.ndarray] = {
        f"action_{name}": (actions.kind == k) * 1.0 for k, name in enumerate(ACTION_TYPES)
    }

    # shape
    within = np.flatnonzero(a[1:] == a[:-1])  # step i: action row i -> i + 1
    dx, dy, dt = (np.diff(v)[within] for v in (xr, yr, tr))
    step_action = a[within + 1]
    step = np.sqrt(dx * dx + dy * dy)
    distance = group_sum(step, step_action, n)
    duration = tr[last] - tr[first]
    cx, cy = xr[last] - xr[first], yr[last] - yr[first]
    chord = np.sqrt(cx * cx + cy * cy)
    with np.errstate(invalid="ignore", divide="ignore"):
        out |= {
            "action_rows": actions.size * 1.0,
            "action_duration": duration,
            "action_distance": distance,
            "action_chord": chord,
            "action_straightness": np.where(distance > 0, chord / distance, np.nan),
            "action_speed": np.where(duration > 0, distance / duration, np.nan),
            "action_dir_cos": np.where(chord > 0, cx / chord, np.nan),
            "action_dir_sin": np.where(chord > 0, cy / chord, np.nan),
            # where on the screen: people work in their own layouts (and at their own resolutions)
            "action_x_start": xr[first],
            "action_y_start": yr[first],
            "action_x_end": xr[last],
            "action_y_end": yr[last],
        }
        # perpendicular distance of every row from the end-to-end line
        row_cx, row_cy = cx[a], cy[a]
        offset = np.abs((xr - xr[first][a]) * row_cy - (yr - yr[first][a]) * row_cx) / chord[a]
    out["action_largest_deviation"] = np.where(chord > 0, group_extreme(offset, a, n, largest=True), np.nan)

    # velocity profile over timed steps (Balabit's 15.6 ms clock repeats timestamps: those steps are skipped)
    timed = np.flatnonzero(dt > 0)
    ta = step_action[timed]
    vx, vy, v = dx[timed] / dt[timed], dy[timed] / dt[timed], step[timed] / dt[timed]
    for name, values in (("vx", vx), ("vy", vy), ("v", v)):
        out[f"action_{name}_mean"], out[f"action_{name}_std"] = group_mean_std(values, ta, n)
    out["action_v_max"] = group_extreme(v, ta, n, largest=True)
    p, q = timed[:-1], timed[1:]
    pair = np.flatnonzero(step_action[p] == step_action[q])
    p, q = p[pair], q[pair]
    dt_mid = (dt[p] + dt[q]) / 2.0
    accel = (step[q] / dt[q] - step[p] / dt[p]) / dt_mid
    qa = step_action[q]
    out["action_a_mean"], out["action_a_std"] = group_mean_std(accel, qa, n)
    out["action_a_max"] = group_extreme(accel, qa, n, largest=True)
    out["action_a_min"] = group_extreme(accel, qa, n, largest=False)
    chain = np.flatnonzero(q[:-1] == p[1:])  # consecutive accelerations share their middle step
    jerk = (accel[chain + 1] - accel[chain]) / dt[p[chain + 1]]
    out["action_jerk_mean"], out["action_jerk_std"] = group_mean_std(jerk, qa[chain + 1], n)
    out |= _acceleration_phase(accel, qa, dt_mid, n)
    out |= _peak_speed_time(v, ta, tr, timed, within, first, duration, n)

    # turning: angle between consecutive moving steps, per ms (angular velocity) and per px (curvature)
    moved = np.flatnonzero(step > 0)
    mp, mq = moved[:-1], moved[1:]
    pair = np.flatnonzero(step_action[mp] == step_action[mq])
    mp, mq = mp[pair], mq[pair]
    cross, dot = dx[mp] * dy[mq] - dy[mp] * dx[mq], dx[mp] * dx[mq] + dy[mp] * dy[mq]
    turn = np.arctan2(cross, dot)  # signed, rad
    ma = step_action[mq]
    out["action_turn_total"] = group_sum(np.abs(turn), ma, n)
    out["action_turn_net"] = group_sum(turn, ma, n)
    out["action_sharp_turns"] = group_count(ma[np.abs(turn) > SHARP_TURN_RAD], n)
    curvature = turn / step[mq]
    out["action_curvature_mean"], out["action_curvature_std"] = group_mean_std(curvature, ma, n)
    ok = np.flatnonzero(dt[mq] > 0)
    omega = turn[ok] / dt[mq][ok]
    out["action_omega_mean"], out["action_omega_std"] = group_mean_std(omega, ma[ok], n)
    out |= _click_timing(actions, code, button, tr, n)
    return out


def _acceleration_phase(accel, action, dt_mid, n) -> dict[str, np.ndarray]:
    """ms from the action's first acceleration until the speed first stops increasing (0 if it never
    rises; NaN without two timed steps). `action` is nondecreasing."""
    phase = np.full(n, np.nan)
    if len(accel):
        count = np.bincount(action, minlength=n)
        stops = np.cumsum(accel <= 0)
        before = (stops - (accel <= 0))[(np.cumsum(count) - count)[action]]  # stops before the action
        rising = stops == before  # no stop yet in this action
        phase[count > 0] = group_sum(dt_mid * rising, action, n, count)[count > 0]
    return {"action_accel_phase": phase}


def _peak_speed_time(v, ta, tr, timed, within, first, duration, n) -> dict[str, np.ndarray]:
    """Time (ms) from the action's start to the end of its fastest step, and that time / duration."""
    peak_at = np.full(n, np.nan)
    if len(v):
        order = np.lexsort((-v, ta))  # per action, fastest step first (earliest on ties: stable)
        best = order[np.r_[True, ta[order][1:] != ta[order][:-1]]]
        end_row = within[timed[best]] + 1  # the step's second action row
        peak_at[ta[best]] = tr[end_row] - tr[first[ta[best]]]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(duration > 0, peak_at / duration, np.nan)
    return {"action_peak_speed_time": peak_at, "action_peak_speed_share": share}


def _click_timing(actions: MouseActions, code, button, tr, n) -> dict[str, np.ndarray]:
    """PC and DD actions: hold (ms from the left press to the release that ends the action) and, for PC,
    the pause (ms) between the last movement and the press."""
    c, b = code[actions.rows], button[actions.rows]
    hold, pause = np.full(n, np.nan), np.full(n, np.nan)
    clicked = np.flatnonzero(actions.kind > 0)
    press_rows = np.flatnonzero((c == BUTTON_DOWN) & (b == LEFT))
    if len(clicked) and len(press_rows):
        # the last left press of each clicked action (PC: its click; DD: its first row)
        press_action = actions.action[press_rows]
        last_press = np.full(n, -1)
        np.maximum.at(last_press, press_action, press_rows)
        has = clicked[last_press[clicked] >= 0]
        pr = last_press[has]
        hold[has] = tr[actions.last[has]] - tr[pr]
        before = pr - 1
        ok = before >= actions.first[has]
        pause[has[ok]] = tr[pr[ok]] - tr[before[ok]]
    return {"action_click_hold": hold, "action_click_pause": np.where(actions.kind == 1, pause, np.nan)}
