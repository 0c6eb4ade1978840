"""Seeded keyboard + mouse sessions of people and bots, generated for all sessions at once.

People: pointing movements timed by Fitts' law (MT = a + b·log2(D/W + 1)) with a minimum-jerk velocity
profile, curved paths, hand tremor, overshoot + correction sub-movements, ~16 ms browser sampling with
jitter, clicks with lognormal hold (median ~110 ms), idle pauses; typing with per-user lognormal hold
(~80 ms) and down-down rhythm, digraph effects and rollover (next key down before the last key up).

Bots (each session keeps its `kind`):
- macro: fixed timings to the millisecond, the cursor jumps between a handful of fixed points;
- teleport: one move event per target, near-constant click and key timing;
- linear: straight constant-speed lines sampled every 16 ms exactly, uniform-random delays;
- humanizer: eased Bézier-like curves with noise, sampled every 10 ms exactly, uniform-random delays, no
  overshoot: what "human-like" automation libraries produce;
- replay: a recorded human session (another account's) played back by a careful tool: the whole session
  3% faster or slower, ±0.5 ms timing jitter, positions exact. Per-session statistics cannot tell it from a
  person (measured: recall 0.00); cruder per-event jitter (±2 ms, ±1 px on 16 ms samples) is itself a
  signature the features catch (recall 1.00 / 0.86), so it is not what this kind models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, HUMAN, EventLog, EventSource
from airush.errors import ConfigError
from airush.model import check_settings, one_of

SCREEN = (1920.0, 1080.0)  # px
SAMPLE_MS = 16.0  # browser mousemove cadence

# Timing laws per kind, as (median ms, lognormal sigma, uniform +/- jitter ms). Humans draw their
# medians per user around these values; bots use them as they are.
TIMING = {
    HUMAN: {"hold": (80, 0.25, 0), "dd": (190, 0.45, 0), "click": (110, 0.3, 0), "gap": (350, 0.9, 0)},
    "macro": {"hold": (40, 0.0, 0), "dd": (100, 0.0, 0), "click": (50, 0.0, 0), "gap": (250, 0.0, 0)},
    "teleport": {"hold": (30, 0.02, 2), "dd": (60, 0.02, 3), "click": (20, 0.02, 1), "gap": (150, 0.05, 0)},
    "linear": {"hold": (45, 0.0, 15), "dd": (110, 0.0, 50), "click": (45, 0.0, 15), "gap": (200, 0.0, 100)},
    "humanizer": {"hold": (85, 0.0, 30), "dd": (180, 0.0, 90), "click": (105, 0.0, 35), "gap": (400, 0.7, 0)},
    "replay": {"hold": (80, 0.25, 0), "dd": (190, 0.45, 0), "click": (110, 0.3, 0), "gap": (350, 0.9, 0)},
}
# 0 human min-jerk curve, 1 straight line, 2 jump, 3 eased curve at a fixed sampling rate
MOVE_STYLE = {HUMAN: 0, "macro": 2, "teleport": 2, "linear": 1, "humanizer": 3, "replay": 0}
BOT_SAMPLE_MS = {1: SAMPLE_MS, 3: 10.0}  # bots sample on a timer, to the millisecond
REPLAY_STRETCH = 0.03  # the replay runs up to 3% faster or slower
REPLAY_JITTER_MS = 0.5  # per event
BOT_KINDS = tuple(kind for kind in TIMING if kind != HUMAN)
KEY_CODES = np.array([32] * 18 + list(range(65, 91)) + [8, 13, 190, 188], dtype=np.int16)


@dataclass
class SyntheticSessions(EventSource):
    ranges: ClassVar[dict[str, str]] = {
        "n_users": ">= 1",
        "sessions_per_user": ">= 1",
        "bot_share": "[0, 1)",
        "bot_kinds": one_of(BOT_KINDS),
        "mouse_actions": ">= 0 (a [low, high] range per session)",
        "typing_bursts": ">= 0 (a [low, high] range per session)",
    }

    n_users: int = 300
    sessions_per_user: int = 6
    bot_share: float = 0.05
    bot_kinds: list[str] = field(
        default_factory=lambda: ["macro", "teleport", "linear", "humanizer", "replay"]
    )
    mouse_actions: tuple[int, int] = (8, 30)
    typing_bursts: tuple[int, int] = (1, 6)

    def load(self, seed: int, stages=None) -> EventLog:
        check_settings("data", self)
        for name in ("mouse_actions", "typing_bursts"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"data.{name}=[{low}, {high}]: expected [low, high] with low <= high")
        if self.mouse_actions[0] + self.typing_bursts[0] < 1:
            raise ConfigError(
                f"data.mouse_actions={list(self.mouse_actions)} and data.typing_bursts={list(self.typing_bursts)} "
                "both start at 0: a session could have no events; raise either low to 1"
            )
        rng = np.random.default_rng(seed)
        sessions = assign_sessions(rng, self.n_users, self.sessions_per_user, self.bot_share, self.bot_kinds)
        bar = stages.stage("generate sessions", total=3) if stages else None
        params = session_timing(rng, sessions)
        actions = plan_actions(rng, sessions, params, self.mouse_actions, self.typing_bursts)
        mouse, mouse_ms = render_mouse(rng, actions, params)
        bar and bar.advance()
        keys, typing_ms = render_typing(rng, actions, params)
        bar and bar.advance()
        events = layout(
            actions, [(mouse, mouse_ms, ~actions["typing"]), (keys, typing_ms, actions["typing"])]
        )
        events = replay_sessions(rng, events, sessions)
        bar and bar.advance()
        return EventLog(events=events, sessions=sessions)


def assign_sessions(rng, n_users: int, per_user: int, bot_share: float, bot_kinds: list[str]) -> pd.DataFrame:
    """Bots live on a few accounts (each driven by one tool, kinds spread evenly), taking about half of those
    accounts' sessions: the owner logs in too, as with a shared or hijacked account."""
    n = n_users * per_user
    user = np.repeat(np.arange(n_users), per_user)
    kind = np.full(n, HUMAN, dtype=object)
    n_bot = round(bot_share * n)
    if n_bot and bot_kinds:
        n_accounts = max(1, min(n_users, int(np.ceil(n_bot / max(1, 0.5 * per_user)))))
        accounts = rng.choice(n_users, n_accounts, replace=False)
        candidates = np.flatnonzero(np.isin(user, accounts))
        chosen = rng.choice(candidates, min(n_bot, len(candidates)), replace=False)
        kinds_cycle = np.resize(np.asarray(bot_kinds), n_accounts)[rng.permutation(n_accounts)]
        account_kind = dict(zip(accounts, kinds_cycle, strict=True))
        kind[chosen] = [account_kind[u] for u in user[chosen]]
    return pd.DataFrame(
        {
            "session_id": np.arange(n, dtype=np.int64),
            "user_id": user.astype(np.int64),
            "label": (kind != HUMAN).astype(np.int8),
            "kind": kind.astype(str),
        }
    )


def session_timing(rng, sessions: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-session timing laws; people share a per-user rhythm, bots the constants of their kind."""
    n_users = int(sessions["user_id"].max()) + 1
    kinds = sessions["kind"].to_numpy()
    user = sessions["user_id"].to_numpy()
    params: dict[str, np.ndarray] = {
        "style": np.array([MOVE_STYLE[k] for k in kinds], dtype=np.int8),
        "fixed_points": kinds == "macro",
    }
    human = np.isin(kinds, (HUMAN, "replay"))  # a replay session is first generated like a person's
    for name in ("hold", "dd", "click", "gap"):
        table = np.array([TIMING[k][name] for k in kinds], dtype=np.float64)
        user_factor = np.exp(rng.normal(0.0, 0.25, n_users))[user]  # each person's own pace
        table[human, 0] *= user_factor[human]
        params[f"{name}_median"], params[f"{name}_sigma"], params[f"{name}_jitter"] = table.T
    # Fitts' law slope (ms/bit) and intercept (ms) per person; bots move at a fixed 2 px/ms when they move
    params["fitts_a"] = np.where(human, rng.normal(120, 20, n_users)[user], 0.0)
    params["fitts_b"] = np.where(human, rng.lognormal(np.log(140), 0.2, n_users)[user], 0.0)
    return params


def draw(rng, median: np.ndarray, sigma: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """median·exp(sigma·N(0,1)) ± uniform jitter, element-wise, never below 1 ms."""
    value = median * np.exp(sigma * rng.standard_normal(len(median))) + jitter * rng.uniform(
        -1, 1, len(median)
    )
    return np.maximum(value, 1.0)


def plan_actions(rng, sessions, params, mouse_range, typing_range) -> pd.DataFrame:
    """Each session is a shuffled sequence of mouse actions and typing bursts, laid out in time."""
    n = len(sessions)
    n_mouse = rng.integers(mouse_range[0], mouse_range[1] + 1, n)
    n_typing = rng.integers(typing_range[0], typing_range[1] + 1, n)
    session = np.repeat(np.arange(n), n_mouse + n_typing)
    rank = np.arange(len(session)) - np.repeat(
        np.cumsum(n_mouse + n_typing) - (n_mouse + n_typing), n_mouse + n_typing
    )
    is_typing = rank >= n_mouse[session]  # first the mouse actions, then the bursts ...
    order = np.lexsort((rng.random(len(session)), session))  # ... shuffled within each session
    actions = pd.DataFrame({"session": session, "typing": is_typing[order]})
    gap = draw(rng, *(params[f"gap_{p}"][session] for p in ("median", "sigma", "jitter")))
    idle = (params["style"][session] == 0) & (rng.random(len(session)) < 0.06)
    actions["gap_ms"] = gap + np.where(idle, rng.exponential(3000, len(session)), 0.0)
    return actions


def _within_session_cumsum(values: np.ndarray, session: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum restarting at each session (rows sorted by session)."""
    if not len(values):
        return np.zeros(0)
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(session)) + 1]
    offset = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    return total - values - offset


def render_mouse(rng, actions: pd.DataFrame, params) -> pd.DataFrame:
    """Move, button_down and button_up events of every mouse action, with action durations filled in."""
    mouse = actions.index[~actions["typing"]].to_numpy()
    session = actions["session"].to_numpy()[mouse]
    style = params["style"][session]
    n = len(mouse)
    # macro bots cycle through 4 fixed points per session; others aim anywhere on screen
    fixed = rng.uniform([50, 50], [SCREEN[0] - 50, SCREEN[1] - 50], (len(params["style"]), 4, 2))
    targets = rng.uniform([10, 10], [SCREEN[0] - 10, SCREEN[1] - 10], (n, 2))
    is_macro = params["fixed_points"][session]
    targets[is_macro] = fixed[session[is_macro], rng.integers(0, 4, is_macro.sum())]
    first = np.r_[True, session[1:] != session[:-1]][:n]  # [:n]: no mouse action at all is n = 0
    starts = np.roll(targets, 1, axis=0)
    starts[first] = rng.uniform([0, 0], SCREEN, (first.sum(), 2))
    width = rng.uniform(16, 80, n)  # target size, px

    # Human primary movements overshoot 30% of the time and come back with a short correction.
    overshoot = (style == 0) & (rng.random(n) < 0.3)
    direction = targets - starts
    aim = targets + direction * (rng.uniform(0.03, 0.1, n) * overshoot)[:, None]
    seg_action = np.r_[np.arange(n), np.flatnonzero(overshoot)]
    seg_from = np.r_[starts, aim[overshoot]]
    seg_to = np.r_[aim, targets[overshoot]]
    seg_order = np.lexsort((np.r_[np.zeros(n), np.ones(overshoot.sum())], seg_action))
    seg_action, seg_from, seg_to = seg_action[seg_order], seg_from[seg_order], seg_to[seg_order]
    seg_session = session[seg_action]
    seg_style = style[seg_action]
    seg_dist = np.hypot(*(seg_to - seg_from).T)
    fitts = params["fitts_a"][seg_session] + params["fitts_b"][seg_session] * np.log2(
        seg_dist / width[seg_action] + 1
    )
    seg_ms = np.select(
        [seg_style == 0, seg_style == 3],
        [fitts, 250.0 + 0.4 * seg_dist + rng.uniform(0, 100, len(seg_dist))],
        np.maximum(seg_dist / 2.0, SAMPLE_MS),
    )
    bot_step = np.where(seg_style == 3, BOT_SAMPLE_MS[3], SAMPLE_MS)
    n_samples = np.where(seg_style == 2, 1, np.maximum(2, np.ceil(seg_ms / bot_step))).astype(np.int64)

    sample_seg = np.repeat(np.arange(len(seg_action)), n_samples)
    first_sample = np.r_[0, np.cumsum(n_samples)[:-1]]
    k = np.arange(len(sample_seg)) - first_sample[sample_seg] + 1
    tau = k / n_samples[sample_seg]
    sample_style = seg_style[sample_seg]
    human = sample_style == 0
    eased = sample_style == 3
    progress = np.select(
        [human, eased],
        [10 * tau**3 - 15 * tau**4 + 6 * tau**5, (1 - np.cos(np.pi * tau)) / 2],  # minimum-jerk, sine ease
        tau,  # constant speed
    )
    delta = seg_to - seg_from
    normal = np.c_[-delta[:, 1], delta[:, 0]] / np.maximum(seg_dist, 1e-9)[:, None]
    bend = rng.normal(0, 0.08, len(seg_action)) * seg_dist  # px of path curvature at mid-movement
    xy = seg_from[sample_seg] + delta[sample_seg] * progress[:, None]
    curved = human | eased
    xy += normal[sample_seg] * (bend[sample_seg] * np.sin(np.pi * tau) * curved)[:, None]
    xy += rng.normal(0, 0.8, xy.shape) * human[:, None]  # tremor
    xy += rng.normal(0, 1.5, xy.shape) * eased[:, None]  # the humaniser's added noise
    xy = np.clip(np.rint(xy), 0, [SCREEN[0] - 1, SCREEN[1] - 1])
    # sample times: humans ~16 ms with jitter, rescaled to end at the movement time; bots exactly 16 ms
    step = np.where(human, rng.lognormal(0, 0.15, len(sample_seg)), 1.0)
    step_cum = np.cumsum(step)
    seg_total = step_cum[first_sample + n_samples - 1] - np.r_[0, step_cum[first_sample[1:] - 1]]
    seg_before = np.r_[0, step_cum[first_sample[1:] - 1]]
    frac = (step_cum - seg_before[sample_seg]) / seg_total[sample_seg]
    timer = (sample_style == 1) | eased
    t_in_seg = np.where(timer, k * bot_step[sample_seg], frac * seg_ms[sample_seg])
    seg_dur = np.select(
        [seg_style == 2, (seg_style == 1) | (seg_style == 3)], [1.0, n_samples * bot_step], seg_ms
    )
    seg_offset = _within_session_cumsum(seg_dur, seg_action)  # offset of a segment inside its action
    move_dur = np.bincount(seg_action, weights=seg_dur, minlength=n)

    # clicks after arriving: people react then hold ~110 ms; bots click every time, humanisers after a delay
    clicks = (style != 0) | (rng.random(n) < 0.8)
    react = np.select(
        [style == 0, style == 3], [rng.lognormal(np.log(120), 0.4, n), rng.uniform(50, 200, n)], 5.0
    )
    hold = draw(rng, *(params[f"click_{p}"][session] for p in ("median", "sigma", "jitter")))
    down_at = move_dur + react
    action_ms = np.where(clicks, down_at + hold, move_dur)
    button = np.where(rng.random(n) < 0.92, 1, 2).astype(np.int8)

    sample_action = seg_action[sample_seg]
    c = np.flatnonzero(clicks)
    n_moves, n_clicks = len(sample_action), len(c)
    frame = pd.DataFrame(
        {
            "action": np.r_[sample_action, c, c],
            "t_rel": np.r_[seg_offset[sample_seg] + t_in_seg, down_at[c], down_at[c] + hold[c]],
            "event": np.r_[
                np.full(n_moves, EVENT_KINDS.index("move")),
                np.full(n_clicks, EVENT_KINDS.index("button_down")),
                np.full(n_clicks, EVENT_KINDS.index("button_up")),
            ].astype(np.int8),
            "key": np.full(n_moves + 2 * n_clicks, -1, dtype=np.int16),
            "x": np.r_[xy[:, 0], targets[c, 0], targets[c, 0]].astype(np.float32),
            "y": np.r_[xy[:, 1], targets[c, 1], targets[c, 1]].astype(np.float32),
            "button": np.r_[np.zeros(n_moves, np.int8), button[c], button[c]],
            "order": np.r_[np.zeros(n_moves), np.ones(n_clicks), np.full(n_clicks, 2)].astype(np.int8),
        }
    )
    return frame, action_ms


def render_typing(rng, actions: pd.DataFrame, params) -> pd.DataFrame:
    """key_down/key_up events of every typing burst (actions must already carry start_ms)."""
    typing = actions.index[actions["typing"]].to_numpy()
    session = actions["session"].to_numpy()[typing]
    length = rng.integers(4, 40, len(typing))
    key_burst = np.repeat(np.arange(len(typing)), length)
    key_session = session[key_burst]
    keys = KEY_CODES[rng.integers(0, len(KEY_CODES), len(key_burst))]
    human = params["style"][key_session] == 0
    dd = draw(rng, *(params[f"dd_{p}"][key_session] for p in ("median", "sigma", "jitter")))
    digraph = np.exp(rng.normal(0, 0.2, (256, 256)))  # fixed per seed: some key pairs are simply faster
    prev = np.r_[keys[:1], keys[:-1]]  # keys[:1]: no typing burst at all leaves keys empty
    dd = np.where(human, dd * digraph[prev, keys], dd)
    first = np.r_[True, key_burst[1:] != key_burst[:-1]][: len(key_burst)]
    dd[first] = 0.0
    offset = _within_session_cumsum(dd, key_burst) + dd  # inclusive: time of each key down in its burst
    hold = draw(rng, *(params[f"hold_{p}"][key_session] for p in ("median", "sigma", "jitter")))
    burst_ms = np.zeros(len(typing))
    np.maximum.at(burst_ms, key_burst, offset + hold)
    n = len(offset)
    frame = pd.DataFrame(
        {
            "action": np.r_[key_burst, key_burst],
            "t_rel": np.r_[offset, offset + hold],
            "event": np.r_[
                np.full(n, EVENT_KINDS.index("key_down")), np.full(n, EVENT_KINDS.index("key_up"))
            ].astype(np.int8),
            "key": np.r_[keys, keys],
            "x": np.full(2 * n, np.nan, np.float32),
            "y": np.full(2 * n, np.nan, np.float32),
            "button": np.zeros(2 * n, np.int8),
            "order": np.r_[np.zeros(n), np.ones(n)].astype(np.int8),
        }
    )
    return frame, burst_ms


def layout(actions: pd.DataFrame, parts) -> pd.DataFrame:
    """Place actions one after another (gap, then the action) and turn relative times into session times.

    `parts` holds (events with `action` = index among that part's actions, durations, mask of those actions).
    """
    durations = actions["gap_ms"].to_numpy().copy()
    for _, part_ms, mask in parts:
        durations[mask.to_numpy()] += part_ms
    session = actions["session"].to_numpy()
    start = _within_session_cumsum(durations, session) + actions["gap_ms"].to_numpy()
    frames = []
    for frame, _, mask in parts:
        rows = np.flatnonzero(mask.to_numpy())[frame["action"].to_numpy()]
        frame = frame.drop(columns=["action", "t_rel"]).assign(
            session_id=session[rows].astype(np.int64), t_ms=start[rows] + frame["t_rel"].to_numpy()
        )
        frames.append(frame)
    events = pd.concat(frames, ignore_index=True)
    events = events.sort_values(["session_id", "t_ms", "order"], kind="stable", ignore_index=True)
    events["t_ms"] -= events.groupby("session_id")["t_ms"].transform("min")
    events["event"] = pd.Categorical.from_codes(events["event"].to_numpy(), EVENT_KINDS)
    events["button"] = pd.Categorical.from_codes(events["button"].to_numpy(), BUTTONS)
    cols = ["session_id", "t_ms", "event", "key", "x", "y", "button"]
    return events[cols]


def replay_sessions(rng, events: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Replace each replay session's events by a copy of a person's session from another account, time
    stretched by up to ±REPLAY_STRETCH and jittered by ±REPLAY_JITTER_MS per event, positions unchanged."""
    kinds = sessions["kind"].to_numpy()
    replay = np.flatnonzero(kinds == "replay")
    donors = np.flatnonzero(kinds == HUMAN)
    if len(replay) == 0 or len(donors) == 0:
        return events
    users = sessions["user_id"].to_numpy()
    source = donors[rng.integers(0, len(donors), len(replay))]
    clash = users[source] == users[replay]
    source[clash] = donors[(np.searchsorted(donors, source[clash]) + 1) % len(donors)]
    sid = events["session_id"].to_numpy()
    ids = sessions["session_id"].to_numpy()
    lo = np.searchsorted(sid, ids[source], side="left")
    hi = np.searchsorted(sid, ids[source], side="right")
    length = hi - lo
    rows = np.repeat(lo - np.r_[0, np.cumsum(length)[:-1]], length) + np.arange(length.sum())
    copy = events.iloc[rows].reset_index(drop=True)
    copy["session_id"] = np.repeat(ids[replay], length)
    stretch = np.repeat(1.0 + rng.uniform(-REPLAY_STRETCH, REPLAY_STRETCH, len(replay)), length)
    jitter = rng.uniform(-REPLAY_JITTER_MS, REPLAY_JITTER_MS, len(copy))
    copy["t_ms"] = np.maximum(copy["t_ms"].to_numpy() * stretch + jitter, 0.0)
    # only the copies need ordering and rebasing: every other session is already sorted and starts at 0
    order = np.lexsort((np.arange(len(copy)), copy["t_ms"].to_numpy(), copy["session_id"].to_numpy()))
    copy = copy.iloc[order].reset_index(drop=True)
    copy["t_ms"] -= copy.groupby("session_id")["t_ms"].transform("min")
    replaced = np.zeros(len(ids), dtype=bool)
    replaced[replay] = True
    kept = events[~replaced[np.searchsorted(ids, sid)]]
    out = pd.concat([kept, copy], ignore_index=True)
    return out.iloc[np.argsort(out["session_id"].to_numpy(), kind="stable")].reset_index(drop=True)
