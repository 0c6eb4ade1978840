"""Seeded keyboard + mouse sessions of people and bots, generated for all sessions at once.

A detector trained here must work on real logs, so the generator covers the settings real logs vary in
rather than one of them (issue 14). The parts:
- environment.py: where a session was recorded (screen and DPI, mouse or touchpad, a browser coalescing
  moves per frame at 60-240 Hz, a raw 125-1000 Hz hook or a remote desktop, clock resolution, dropped
  frames, clock jumps, clicks logged without timing), drawn independently of the label;
- humans.py: people, calibrated on Balabit (mouse) and the Aalto keystroke sample;
- bots.py: the bot families as the public tools implement them (Puppeteer/Playwright steps, Selenium
  ActionChains, pyautogui tweens, AutoHotkey, ghost-cursor, auto-typers, fixed-point macros);
- playback.py: the kinds that play a person's session back: `replay` (another account's whole session,
  3% faster or slower, ±0.5 ms jitter, positions exact; per-session statistics cannot tell it from a
  person) and `recorder` (an OS macro recorder looping the start of one, at a speed factor or fixed delays);
- here: accounts and sessions, the plan of each session (pointing, scrolling and typing actions, the style
  that makes each one and the waits between them; a `mixed` session is a person's with a share of its
  actions made by one script style), and laying the actions out in time.

Every session keeps its `kind`; a session's events are in the schema of `airush.abuse.data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, HUMAN, EventLog, EventSource
from airush.abuse.data.bots import (
    KINDS,
    SCRIPT_STYLES,
    STYLES,
    bot_clicks,
    bot_gaps,
    bot_keys,
    bot_moves,
    draw_tools,
    style_of_kind,
)
from airush.abuse.data.environment import LOGGERS, draw_environment, record
from airush.abuse.data.humans import (
    action_gaps,
    draw_people,
    human_clicks,
    human_keys,
    human_moves,
    human_wheel,
)
from airush.abuse.data.paths import within_cumsum
from airush.abuse.data.playback import EVENT_COLUMNS, played_back
from airush.errors import ConfigError
from airush.model import check_settings, one_of

BOT_KINDS = KINDS
KEY_CODES = np.array([32] * 18 + list(range(65, 91)) + [8, 13, 190, 188], dtype=np.int16)
POINT, TYPE, SCROLL = 0, 1, 2  # action types
_EV = {name: i for i, name in enumerate(EVENT_KINDS)}
_HUMAN = STYLES.index("human")


@dataclass
class SyntheticSessions(EventSource):
    ranges: ClassVar[dict[str, str]] = {
        "n_users": ">= 1",
        "sessions_per_user": ">= 1",
        "bot_share": "[0, 1)",
        "bot_kinds": one_of(BOT_KINDS),
        "mouse_actions": ">= 0 (a [low, high] range per session)",
        "typing_bursts": ">= 0 (a [low, high] range per session)",
        "scroll_share": "[0, 1] (a [low, high] range per session)",
        "logger_shares": ">= 0",
        "touchpad_share": "[0, 1]",
        "click_only_share": "[0, 1]",
        "clock_jump_share": "[0, 1]",
        "mixed_script_share": "[0, 1] (a [low, high] range per session)",
        "recorded_devices": ">= 0",
    }

    n_users: int = 300
    sessions_per_user: int = 6
    bot_share: float = 0.05
    bot_kinds: list[str] = field(default_factory=lambda: list(KINDS))
    mouse_actions: tuple[int, int] = (8, 30)
    typing_bursts: tuple[int, int] = (1, 6)
    scroll_share: tuple[float, float] = (0.0, 0.3)  # of a session's mouse actions
    vary_environment: bool = True  # false: every session on one 1080p browser at 60 Hz, 1 ms clock
    logger_shares: dict[str, float] = field(
        default_factory=lambda: {"browser": 0.75, "raw": 0.15, "remote": 0.1}
    )
    touchpad_share: float = 0.3
    click_only_share: float = 0.1
    clock_jump_share: float = 0.03
    mixed_script_share: tuple[float, float] = (0.2, 0.6)
    # which devices a session's log holds, drawn per session independently of the label (share of sessions):
    # pages without a text field and loggers that record the pointer only give mouse-only logs (Balabit),
    # keystroke loggers keyboard-only ones, so a detector must score a session whatever devices it has
    recorded_devices: dict[str, float] = field(
        default_factory=lambda: {"both": 0.7, "mouse": 0.25, "keyboard": 0.05}
    )

    def load(self, seed: int, stages=None) -> EventLog:
        self._check()
        rng = np.random.default_rng(seed)
        sessions = assign_sessions(rng, self.n_users, self.sessions_per_user, self.bot_share, self.bot_kinds)
        bar = stages.stage("generate sessions", total=3) if stages else None
        n = len(sessions)
        env = draw_environment(
            rng, n, self.logger_shares, self.touchpad_share, self.click_only_share, self.clock_jump_share,
            self.vary_environment,
        )  # fmt: skip
        people = draw_people(rng, sessions["user_id"].to_numpy(), env["touchpad"])
        tools = draw_tools(rng, n, tuple(self.mixed_script_share))
        devices = draw_devices(rng, n, self.recorded_devices)
        actions = plan_actions(
            rng, sessions, people, tools, self.mouse_actions, self.typing_bursts, self.scroll_share, devices
        )
        pointer, pointer_ms = render_pointer(rng, actions, env, people, tools)
        bar and bar.advance()
        keys, typing_ms = render_typing(rng, actions, people, tools)
        bar and bar.advance()
        typing = actions["type"] == TYPE
        events = layout(actions, [(pointer, pointer_ms, ~typing), (keys, typing_ms, typing)])
        events = played_back(rng, events, sessions)
        events = record(rng, events, env)
        events["event"] = pd.Categorical.from_codes(events["event"], EVENT_KINDS)
        events["button"] = pd.Categorical.from_codes(events["button"], BUTTONS)
        bar and bar.advance()
        return EventLog(events=pd.DataFrame(events, columns=list(EVENT_COLUMNS)), sessions=sessions)

    def _check(self) -> None:
        check_settings("data", self)
        for name in ("mouse_actions", "typing_bursts", "scroll_share", "mixed_script_share"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"data.{name}=[{low}, {high}]: expected [low, high] with low <= high")
        if self.mouse_actions[0] + self.typing_bursts[0] < 1:
            raise ConfigError(
                f"data.mouse_actions={list(self.mouse_actions)} and data.typing_bursts={list(self.typing_bursts)} "
                "both start at 0: a session could have no events; raise either low to 1"
            )
        unknown = sorted(set(self.logger_shares) - set(LOGGERS))
        if unknown:
            raise ConfigError(f"data.logger_shares.{unknown[0]} unknown; choose from: {', '.join(LOGGERS)}")
        if sum(self.logger_shares.values()) <= 0:
            raise ConfigError("data.logger_shares: at least one logger needs a share above 0")
        unknown = sorted(set(self.recorded_devices) - set(DEVICE_SETS))
        if unknown:
            raise ConfigError(
                f"data.recorded_devices.{unknown[0]} unknown; choose from: {', '.join(DEVICE_SETS)}"
            )
        if sum(self.recorded_devices.values()) <= 0:
            raise ConfigError(
                "data.recorded_devices: at least one of both, mouse, keyboard needs a share above 0"
            )
        for only, name in (("mouse", "mouse_actions"), ("keyboard", "typing_bursts")):
            if self.recorded_devices.get(only, 0) > 0 and getattr(self, name)[1] < 1:
                raise ConfigError(
                    f"data.recorded_devices.{only}={self.recorded_devices[only]} makes {only}-only sessions, but "
                    f"data.{name}={list(getattr(self, name))} gives them nothing: raise its high or set "
                    f"data.recorded_devices.{only}=0"
                )


def assign_sessions(rng, n_users: int, per_user: int, bot_share: float, bot_kinds: list[str]) -> pd.DataFrame:
    """Bots live on a few accounts (each driven by one tool, kinds spread evenly), taking about half of those
    accounts' sessions: the owner logs in too, as with a shared or hijacked account. Session ids are in the
    order the sessions began (the schema's convention), so accounts' sessions interleave."""
    n = n_users * per_user
    user = rng.permutation(np.repeat(np.arange(n_users), per_user))
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


DEVICE_SETS = ("both", "mouse", "keyboard")  # data.recorded_devices: what a session's log holds


def draw_devices(rng, n: int, shares: dict[str, float]) -> np.ndarray:
    """Per session, the index in DEVICE_SETS of the devices its log holds (shares normalised)."""
    p = np.array([float(shares.get(name, 0.0)) for name in DEVICE_SETS])
    return rng.choice(len(DEVICE_SETS), n, p=p / p.sum())


def plan_actions(rng, sessions, people, tools, mouse_range, typing_range, scroll_range, devices=None):
    """Each session is a shuffled sequence of pointing/scrolling actions and typing bursts, each with the
    style that makes it (a person, or a script) and the wait before it. `devices` (`draw_devices`; None: both)
    leaves out the typing of mouse-only sessions and the pointing of keyboard-only ones (at least one action
    of the device they keep)."""
    n = len(sessions)
    kinds = sessions["kind"].to_numpy()
    n_mouse = rng.integers(mouse_range[0], mouse_range[1] + 1, n)
    n_typing = rng.integers(typing_range[0], typing_range[1] + 1, n)
    if devices is not None:
        mouse_only, keyboard_only = (
            devices == DEVICE_SETS.index("mouse"),
            devices == DEVICE_SETS.index("keyboard"),
        )
        n_mouse = np.where(keyboard_only, 0, np.where(mouse_only, np.maximum(n_mouse, 1), n_mouse))
        n_typing = np.where(mouse_only, 0, np.where(keyboard_only, np.maximum(n_typing, 1), n_typing))
    total = n_mouse + n_typing
    session = np.repeat(np.arange(n), total)
    rank = np.arange(len(session)) - np.repeat(np.cumsum(total) - total, total)
    is_typing = rank >= n_mouse[session]  # first the mouse actions, then the bursts ...
    scroll = ~is_typing & (rng.random(len(session)) < rng.uniform(*scroll_range, n)[session])
    kind_type = np.where(is_typing, TYPE, np.where(scroll, SCROLL, POINT))
    order = np.lexsort((rng.random(len(session)), session))  # ... shuffled within each session
    session_style = np.array([style_of_kind(k) for k in kinds], dtype=np.int64)
    style = session_style[session]
    mixed = (kinds == "mixed")[session]
    scripted = mixed & (rng.random(len(session)) < tools["mixed_share"][session])
    script = np.array([STYLES.index(s) for s in SCRIPT_STYLES])[tools["mixed_script"][session]]
    style = np.where(scripted, script, style)
    actions = pd.DataFrame({"session": session, "type": kind_type[order], "style": style})
    human = style == _HUMAN
    gap = np.where(human, action_gaps(rng, people, session), bot_gaps(rng, tools, style, session))
    actions["gap_ms"] = np.maximum(gap, 1.0)
    return actions


def _targets(rng, session, screen, fixed_points, style):
    """Where each pointing action aims on its session's page: the content column, the navigation bar, or
    anywhere; macros cycle through 4 fixed points of their session. Also the target's width (px)."""
    n = len(session)
    w, h = screen[:, 0], screen[:, 1]
    region = rng.choice(3, n, p=[0.45, 0.2, 0.35])
    column = np.minimum(rng.uniform(500, 1100, n), w)
    x = np.where(region == 0, w / 2 + (rng.random(n) - 0.5) * column, 10 + rng.random(n) * (w - 20))
    y = np.where(region == 1, rng.uniform(5, 70, n), 10 + rng.random(n) * (h - 20))
    xy = np.c_[x, y]
    macro = style == STYLES.index("macro")
    xy[macro] = fixed_points[session[macro], rng.integers(0, 4, macro.sum())]
    width = np.clip(rng.lognormal(np.log(40), 0.7, n), 8, 400)
    return xy, width


def render_pointer(rng, actions: pd.DataFrame, env, people, tools):
    """Move, button and wheel events of every pointing and scrolling action, and each action's duration."""
    rows = np.flatnonzero(actions["type"].to_numpy() != TYPE)
    session = actions["session"].to_numpy()[rows]
    style = actions["style"].to_numpy()[rows]
    scroll = actions["type"].to_numpy()[rows] == SCROLL
    n = len(rows)
    screen = env["screen"][session]
    fixed = rng.uniform(0.05, 0.95, (len(env["dpr"]), 4, 2)) * env["screen"][:, None, :]
    targets, width = _targets(rng, session, screen, fixed, style)
    first = np.r_[True, session[1:] != session[:-1]][:n]
    # the pointer starts where the last action left it; a scroll leaves it where it is
    start_pos = rng.random((n, 2)) * screen
    targets = np.where(scroll[:, None], np.nan, targets)
    pos = pd.DataFrame(targets).groupby(session).ffill().to_numpy()  # last aimed point so far
    prev = np.roll(pos, 1, axis=0)
    starts = np.where(first[:, None] | np.isnan(prev), start_pos, prev)
    targets = np.where(scroll[:, None], starts, targets)

    parts_row, parts_t, parts_x, parts_y = [], [], [], []
    move_ms = np.zeros(n)
    point = ~scroll
    for code, name in enumerate(STYLES):
        sel = np.flatnonzero(point & (style == code))
        if not len(sel):
            continue
        if name == "human":
            r, t, x, y, ms = human_moves(
                rng, starts[sel], targets[sel], width[sel], session[sel], people, env
            )
        else:
            r, t, x, y, ms = bot_moves(rng, name, starts[sel], targets[sel], width[sel], session[sel], tools)
        parts_row.append(sel[r]), parts_t.append(t), parts_x.append(x), parts_y.append(y)
        move_ms[sel] = ms

    # clicks after arriving
    react, hold = np.zeros(n), np.zeros(n)
    click_p = np.where(style == _HUMAN, people["click"][session], 0.95)
    clicks = point & (rng.random(n) < click_p)
    for code, name in enumerate(STYLES):
        sel = np.flatnonzero(clicks & (style == code))
        if not len(sel):
            continue
        if name == "human":
            react[sel], hold[sel] = human_clicks(rng, people, session[sel])
        else:
            react[sel], hold[sel] = bot_clicks(rng, name, session[sel], tools)
    hold = np.where(env["click_only"][session], 0.0, hold)
    down_at = move_ms + react
    button = np.where(rng.random(n) < 0.92, 1, 2).astype(np.int8)

    # scrolls: wheel notches at the pointer
    wheel_n = np.zeros(n, np.int64)
    wheel_gap, wheel_sigma = np.zeros(n), np.zeros(n)
    s_human = scroll & (style == _HUMAN)
    wheel_n[s_human], wheel_gap[s_human], wheel_sigma[s_human] = human_wheel(rng, session[s_human], env)
    s_bot = scroll & (style != _HUMAN)
    wheel_n[s_bot] = rng.integers(1, 9, s_bot.sum())
    wheel_gap[s_bot] = tools["scroll_gap"][session[s_bot]]
    wheel_sigma[s_bot] = 0.01
    w_row = np.repeat(np.arange(n), wheel_n)
    w_gap = wheel_gap[w_row] * np.exp(wheel_sigma[w_row] * rng.standard_normal(len(w_row)))
    w_t = within_cumsum(w_gap, w_row)
    wheel_ms = np.bincount(w_row, weights=w_gap, minlength=n)

    action_ms = np.select([clicks, scroll], [down_at + hold, wheel_ms], move_ms)
    m_row = np.concatenate(parts_row) if parts_row else np.zeros(0, np.int64)
    m_t = np.concatenate(parts_t) if parts_t else np.zeros(0)
    m_x = np.clip(np.concatenate(parts_x) if parts_x else np.zeros(0), 0, screen[m_row, 0] - 1)
    m_y = np.clip(np.concatenate(parts_y) if parts_y else np.zeros(0), 0, screen[m_row, 1] - 1)
    c = np.flatnonzero(clicks)
    n_moves, n_clicks, n_wheel = len(m_row), len(c), len(w_row)
    frame = dict(
        {
            "action": np.r_[m_row, c, c, w_row],
            "t_rel": np.r_[m_t, down_at[c], down_at[c] + hold[c], w_t],
            "event": np.r_[
                np.full(n_moves, _EV["move"]),
                np.full(n_clicks, _EV["button_down"]),
                np.full(n_clicks, _EV["button_up"]),
                np.full(n_wheel, _EV["wheel"]),
            ].astype(np.int8),
            "key": np.full(n_moves + 2 * n_clicks + n_wheel, -1, dtype=np.int16),
            "x": np.r_[m_x, targets[c, 0], targets[c, 0], starts[w_row, 0]].astype(np.float32),
            "y": np.r_[m_y, targets[c, 1], targets[c, 1], starts[w_row, 1]].astype(np.float32),
            "button": np.r_[np.zeros(n_moves, np.int8), button[c], button[c], np.zeros(n_wheel, np.int8)],
        }
    )
    return frame, action_ms


def render_typing(rng, actions: pd.DataFrame, people, tools):
    """key_down/key_up events of every typing burst, and each burst's duration."""
    rows = np.flatnonzero(actions["type"].to_numpy() == TYPE)
    session = actions["session"].to_numpy()[rows]
    style = actions["style"].to_numpy()[rows]
    autotyper = style == STYLES.index("autotyper")
    length = np.where(autotyper, rng.integers(20, 200, len(rows)), rng.integers(4, 40, len(rows)))
    key_burst = np.repeat(np.arange(len(rows)), length)
    key_session = session[key_burst]
    key_style = style[key_burst]
    keys = KEY_CODES[rng.integers(0, len(KEY_CODES), len(key_burst))]
    new_burst = np.r_[True, key_burst[1:] != key_burst[:-1]][: len(key_burst)]
    dd, hold = np.zeros(len(key_burst)), np.zeros(len(key_burst))
    for code, name in enumerate(STYLES):
        sel = np.flatnonzero(key_style == code)
        if not len(sel):
            continue
        if name == "human":
            dd[sel], hold[sel] = human_keys(rng, people, key_session[sel], keys[sel], new_burst[sel])
        else:
            dd[sel], hold[sel] = bot_keys(rng, name, key_session[sel], tools)
    dd = np.where(new_burst, 0.0, np.maximum(dd, 0.0))
    hold = np.maximum(hold, 0.0)
    offset = within_cumsum(dd, key_burst) + dd  # inclusive: time of each key down in its burst
    burst_ms = np.zeros(len(rows))
    np.maximum.at(burst_ms, key_burst, offset + hold)
    n = len(offset)
    in_time = np.lexsort((np.r_[offset, offset + hold], np.r_[key_burst, key_burst]))  # stable: down first
    frame = dict(
        {
            "action": np.r_[key_burst, key_burst],
            "t_rel": np.r_[offset, offset + hold],
            "event": np.r_[np.full(n, _EV["key_down"]), np.full(n, _EV["key_up"])].astype(np.int8),
            "key": np.r_[keys, keys],
            "x": np.full(2 * n, np.nan, np.float32),
            "y": np.full(2 * n, np.nan, np.float32),
            "button": np.zeros(2 * n, np.int8),
        }
    )
    return {c: v[in_time] for c, v in frame.items()}, burst_ms


def layout(actions: pd.DataFrame, parts) -> dict[str, np.ndarray]:
    """Place actions one after another (gap, then the action) and turn relative times into session times.

    `parts` holds (events with `action` = index among that part's actions and each action's rows in time
    order, durations, mask of those actions). Returns the events as columns (`event` and `button` integer
    codes of EVENT_KINDS and BUTTONS until the log is recorded), sorted by session and time: an action's
    events all fall between its start and the next action's, so sorting by action keeps time order.
    """
    durations = actions["gap_ms"].to_numpy().copy()
    for _, part_ms, mask in parts:
        durations[mask.to_numpy()] += part_ms
    session = actions["session"].to_numpy()
    start = within_cumsum(durations, session) + actions["gap_ms"].to_numpy()
    rows = np.concatenate([np.flatnonzero(mask.to_numpy())[frame["action"]] for frame, _, mask in parts])
    t_rel = np.concatenate([frame["t_rel"] for frame, _, _ in parts])
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    events = {c: np.concatenate([frame[c] for frame, _, _ in parts])[order] for c in EVENT_COLUMNS[2:]}
    events["session_id"] = session[rows].astype(np.int64)
    t = start[rows] + t_rel[order]
    first = np.flatnonzero(np.r_[True, events["session_id"][1:] != events["session_id"][:-1]])
    events["t_ms"] = t - np.repeat(t[first], np.diff(np.r_[first, len(t)]))
    return events
