"""Mouse actions: each session's mouse events cut into movements, the unit mouse-dynamics work reasons in.

Following Antal & Egyed-Zsigmond (2019, "Intrusion detection using mouse dynamics", on Balabit), an action
is one of
- MM, mouse move: movement that does not end in a left click;
- PC, point-click: movement ending in a left press and its release;
- DD, drag-and-drop: a left press, movement with the button held (`drag` events), the release.
A left release ends the current action; a gap longer than `pause_ms` (10 s in the paper) starts a new one,
and a left press that starts a drag starts a DD action (the movement before it is an MM action of its own).
Action rows are move, drag, button_down and button_up events (wheel events are not movement).
Everything here runs over all sessions at once; `group` is each event's session index, as in features.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airush.abuse.data import BUTTONS, EVENT_KINDS
from airush.compute.grouped import group_count, group_quantiles

ACTION_TYPES = ("mm", "pc", "dd")  # mouse move, point-click, drag-and-drop; index = type code
ACTION_PAUSE_MS = 10_000.0  # a longer gap between mouse events ends an action (Antal & Egyed-Zsigmond)
MIN_ACTION_ROWS = 4  # shorter actions are counted, but too short to measure a shape or speed on
LEFT = BUTTONS.index("left")
_MOVE, _DRAG = EVENT_KINDS.index("move"), EVENT_KINDS.index("drag")
BUTTON_DOWN, BUTTON_UP = EVENT_KINDS.index("button_down"), EVENT_KINDS.index("button_up")


@dataclass
class MouseActions:
    """Actions over the mouse rows of a set of events.

    rows: event row of each action row (in event order); action: each action row's action id (0..n-1,
    increasing along the rows); per action: session (group index), kind (index in ACTION_TYPES),
    first/last (positions in `rows` of its first and last row), size (rows).
    """

    rows: np.ndarray
    action: np.ndarray
    session: np.ndarray
    kind: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @property
    def size(self) -> np.ndarray:
        return self.last - self.first + 1

    def __len__(self) -> int:
        return len(self.session)


def segment_actions(group, code, button, t, pause_ms: float = ACTION_PAUSE_MS) -> MouseActions:
    """Cut the mouse rows of events (sorted by session, then time) into MM / PC / DD actions."""
    rows = np.flatnonzero((code == _MOVE) | (code == _DRAG) | (code == BUTTON_DOWN) | (code == BUTTON_UP))
    g, c, b, tr = group[rows], code[rows], button[rows], t[rows]
    left_down, left_up, drag = (c == BUTTON_DOWN) & (b == LEFT), (c == BUTTON_UP) & (b == LEFT), c == _DRAG
    left = np.flatnonzero(left_down | left_up)  # a press and the next left event, if it is the release
    pair = left_down[left[:-1]] & left_up[left[1:]] & (g[left[:-1]] == g[left[1:]])
    press, release = left[:-1][pair], left[1:][pair]
    drags_before = np.cumsum(drag)
    starts_drag = np.zeros(len(rows), bool)
    starts_drag[press[drags_before[release] > drags_before[press]]] = True
    new = starts_drag.copy()
    if len(rows):
        new[0] = True
        new[1:] |= (g[1:] != g[:-1]) | left_up[:-1] | (np.diff(tr) > pause_ms)
    action = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(rows) - 1] if len(rows) else first
    n = len(first)
    ends_click = left_up[last]
    has_drag = np.bincount(action, weights=drag, minlength=n) > 0
    has_press = np.bincount(action, weights=left_down, minlength=n) > 0
    kind = np.select([ends_click & has_drag, ends_click & has_press], [2, 1], 0).astype(np.int8)
    return MouseActions(rows, action, g[first], kind, first, last)


def action_shape(actions: MouseActions, t, x, y) -> dict[str, np.ndarray]:
    """Per action: duration (ms), distance (path length, px), straightness (end-to-end / path) and speed
    (path / duration, px/ms); NaN where undefined (no movement, no time)."""
    r = actions.rows
    xr, yr = x[r], y[r]
    step = np.hypot(np.diff(xr), np.diff(yr))
    within = actions.action[1:] == actions.action[:-1]
    n = len(actions)
    distance = np.bincount(actions.action[1:][within], weights=step[within], minlength=n)
    f, last = actions.first, actions.last
    duration = t[r[last]] - t[r[f]]
    chord = np.hypot(xr[last] - xr[f], yr[last] - yr[f])
    with np.errstate(invalid="ignore", divide="ignore"):
        straightness = np.where(distance > 0, chord / distance, np.nan)
        speed = np.where(duration > 0, distance / duration, np.nan)
    return {"duration": duration, "distance": distance, "straightness": straightness, "speed": speed}


def session_action_features(group, n, code, t, x, y, button, duration) -> dict[str, np.ndarray]:
    """Per session: actions per minute and the share of each type (over all actions), and per type the
    median duration (ms), distance (px), straightness and speed (px/ms) of actions of >= MIN_ACTION_ROWS
    rows. `duration` is each session's span in ms."""
    actions = segment_actions(group, code, button, t)
    shape = action_shape(actions, t, x, y)
    out: dict[str, np.ndarray] = {}
    per_session = group_count(actions.session, n)
    out["mouse_actions_per_min"] = per_session / np.maximum(duration / 60000.0, 1e-3)
    cell = actions.session.astype(np.int64) * len(ACTION_TYPES) + actions.kind
    by_type = group_count(cell, n * len(ACTION_TYPES)).reshape(n, len(ACTION_TYPES))
    with np.errstate(invalid="ignore", divide="ignore"):
        for k, name in enumerate(ACTION_TYPES):
            out[f"mouse_{name}_share"] = by_type[:, k] / np.where(per_session > 0, per_session, np.nan)
    measured = actions.size >= MIN_ACTION_ROWS
    medians = {
        measure: group_quantiles(values[measured], cell[measured], n * len(ACTION_TYPES), (0.5,))[0]
        for measure, values in shape.items()
    }
    for k, name in enumerate(ACTION_TYPES):
        for measure, median in medians.items():
            out[f"mouse_{name}_{measure}_p50"] = median.reshape(n, len(ACTION_TYPES))[:, k]
    return out
