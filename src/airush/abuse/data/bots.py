"""Bot families as the public automation tools implement them (our own code, written from their docs and
sources; timings of the machine they run on are drawn per session, never fitted on labelled bot data).

style      tool, and what its code does
macro      auto-clickers / "click at (x, y) every N ms" macros: a handful of fixed points, fixed timings
teleport   `page.mouse.move(x, y)` (Puppeteer's default steps=1), Selenium `element.click()`: one move
           event per target, near-constant click and key timing
linear     Puppeteer / Playwright `mouse.move(x, y, {steps: N})`: N moves along the straight line in equal
           steps (from + (to - from)·i/N), each sent as soon as the last returned (a protocol round trip,
           ~1-6 ms), optionally with a loop's own wait; `mouse.click(x, y, {delay})` holds `delay` ms;
           `keyboard.type(text, {delay})` holds each key `delay` ms and waits `delay` before the next
webdriver  Selenium ActionChains / W3C pointerMove: a straight move over a fixed `duration` (250 ms by
           default in Selenium 4) made of intermediate moves at the driver's tick, whatever the distance;
           click and send_keys press and release back to back
tween      pyautogui `moveTo(x, y, duration, tween)`: num_steps = max(|dx|, |dy|), sleep = duration/steps,
           raised to MINIMUM_SLEEP = 50 ms by taking fewer steps; points at tween(i/num_steps) (linear,
           easeInQuad, ...); durations under MINIMUM_DURATION = 0.1 s jump; PAUSE = 0.1 s after every
           call; click() and write(interval) press and release back to back; sleeps round up to the OS
           timer (1 ms, or 15.625 ms on older Windows)
ahk        AutoHotkey `MouseMove x, y, speed` in SendEvent mode: each axis moves remaining/speed per step but
           at least 32 px, SetMouseDelay (10 ms) between steps, so paths bend and decelerate; SendInput mode
           jumps; Click and Send hold/space keys by SetKeyDelay
humanizer  ghost-cursor: a cubic Bézier with two random anchors on one side of the line (spread =
           clamp(distance, 2, 200) px), ceil((log2(fitts(0.8·length, width) + 1) + 25·speed)·3) points at
           equal curve parameter (fitts = 2·log2(D/W + 1), speed random in [0, 1) per move), an overshoot
           to within 120 px of the target beyond 500 px and a second path back (spread 10); each point is
           one `page.mouse.move`; optional moveDelay after a move, waitForClick between press and release
autotyper  keyboard macros / auto-typers: long bursts at a constant interval or a uniformly jittered one
           (min/max delay settings), the pointer jumped to the field

Kinds (what a session is) map to styles (how each action is made): `replay` and `recorder` sessions are
made as people first and then replaced by a copy (synthetic.py); a `mixed` session is a person's with a
share of its actions made by one script style.
"""

from __future__ import annotations

import numpy as np

from airush.abuse.data.paths import TWEENS, bezier, expand, normal, tween, within_cumsum

STYLES = ("human", "macro", "teleport", "linear", "webdriver", "tween", "ahk", "humanizer", "autotyper")
SCRIPT_STYLES = ("linear", "webdriver", "tween", "ahk", "humanizer", "autotyper")  # used by `mixed`
COPY_KINDS = ("replay", "recorder")  # generated as people, then replaced by a played-back copy
KINDS = ("macro", "teleport", "linear", "webdriver", "tween", "ahk", "humanizer", "autotyper", "recorder",
         "replay", "mixed")  # fmt: skip
PYAUTOGUI_MIN_SLEEP_MS, PYAUTOGUI_MIN_DURATION_MS, PYAUTOGUI_PAUSE_MS = 50.0, 100.0, 100.0
AHK_MIN_STEP_PX = 32
GHOST_MIN_STEPS, GHOST_DEFAULT_WIDTH, GHOST_OVERSHOOT_PX, GHOST_OVERSHOOT_RADIUS = 25, 100.0, 500.0, 120.0


def style_of_kind(kind: str) -> int:
    return STYLES.index(kind) if kind in STYLES else 0


def _pick(rng, values, n, p=None):
    return np.asarray(values, dtype=np.float64)[rng.choice(len(values), n, p=p)]


def draw_tools(rng, n: int, mixed_share: tuple[float, float]) -> dict[str, np.ndarray]:
    """Per-session settings of every tool (only the session's own tool reads them): what a script's author
    sets, and the round trip / timer of the machine it runs on."""
    tools = {
        "rt": rng.uniform(0.5, 6.0, n),  # ms per protocol call (CDP, WebDriver)
        "steps": _pick(rng, [2, 5, 10, 20, 25, 50, 100], n, [0.1, 0.2, 0.25, 0.15, 0.1, 0.1, 0.1]),
        "step_wait": _pick(rng, [0, 5, 10, 16, 20, 50], n, [0.6, 0.08, 0.08, 0.08, 0.08, 0.08]),
        "wd_ms": _pick(rng, [250, 100, 500, 1000], n, [0.6, 0.1, 0.2, 0.1]),
        "wd_tick": _pick(rng, [5, 8, 10, 16], n),
        "tw_random": rng.random(n) < 0.5,  # duration random.uniform(lo, hi) per call, else one constant
        "tw_ms": rng.uniform(100, 1500, n),
        "tw_lo": rng.uniform(100, 500, n),
        "tw_tween": rng.integers(0, len(TWEENS), n),
        "timer": _pick(rng, [1.0, 15.625], n, [0.7, 0.3]),
        "ahk_speed": _pick(rng, [2, 5, 10, 20, 50], n, [0.5, 0.2, 0.1, 0.1, 0.1]),
        "ahk_input": rng.random(n) < 0.3,  # SendInput: moves jump, keys go out together
        "ahk_delay": _pick(rng, [10, 20, 50], n, [0.8, 0.1, 0.1]),
        "gc_fixed": rng.random(n) < 0.3,  # moveSpeed set: speed = 25 / moveSpeed
        "gc_move_speed": _pick(rng, [10, 25, 50], n),
        "gc_delay": np.where(rng.random(n) < 0.6, 0.0, rng.uniform(20, 200, n)),
        "click_delay": np.where(rng.random(n) < 0.5, 0.0, _pick(rng, [10, 50, 100, 150], n)),
        "type_delay": np.where(rng.random(n) < 0.4, 0.0, rng.uniform(10, 150, n)),
        "tw_interval": _pick(rng, [0, 10, 50, 100, 250], n),
        "at_dd": rng.uniform(30, 300, n),
        "at_dd_jitter": np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.1, 0.6, n)),
        "at_hold": rng.uniform(5, 80, n),
        "at_hold_jitter": np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.1, 0.6, n)),
        "gap_mode": rng.integers(0, 3, n),  # constant, uniform [c, c + w], lognormal around c
        "gap_c": np.exp(rng.uniform(np.log(100), np.log(3000), n)),
        "gap_w": rng.uniform(0.2, 1.0, n),
        "scroll_gap": _pick(rng, [2, 50, 100, 250], n),
        "macro_hold": _pick(rng, [0, 10, 50], n),
        "macro_dd": _pick(rng, [50, 100, 200], n),
        "macro_gap": _pick(rng, [100, 250, 500, 1000], n),
        "mixed_script": rng.integers(0, len(SCRIPT_STYLES), n),
        "mixed_share": rng.uniform(*mixed_share, n),
    }
    tools["tw_hi"] = tools["tw_lo"] + rng.uniform(100, 1000, n)
    return tools


def timer_sleep(ms: np.ndarray, timer: np.ndarray) -> np.ndarray:
    """What sleep(ms) takes on an OS whose timer ticks every `timer` ms."""
    return np.where(ms > 0, np.ceil(ms / timer) * timer, 0.0)


def bot_gaps(rng, tools, style, session) -> np.ndarray:
    """ms a script waits before each action: constant, uniform random or lognormal (per session)."""
    n = len(session)
    mode, c, w = tools["gap_mode"][session], tools["gap_c"][session], tools["gap_w"][session]
    gap = np.select([mode == 0, mode == 1], [c, c + w * c * rng.random(n)], c * rng.lognormal(0, 0.5, n))
    gap = np.where(style == STYLES.index("macro"), tools["macro_gap"][session], gap)
    gap += np.where(style == STYLES.index("tween"), PYAUTOGUI_PAUSE_MS, 0.0)
    gap += np.where(style == STYLES.index("humanizer"), tools["gc_delay"][session] * rng.random(n), 0.0)
    return gap + tools["rt"][session] * np.isin(
        style, [STYLES.index(s) for s in ("linear", "webdriver", "humanizer")]
    )


def bot_moves(rng, style_name, p0, p3, width, session, tools):
    """Moves p0 -> p3 of one script style. Returns (row, t_ms in the action, x, y) per sample and each
    movement's duration (ms)."""
    n = len(p0)
    rt = tools["rt"][session]
    if style_name in ("macro", "teleport", "autotyper") or n == 0:
        t = np.where(style_name == "macro", 0.0, rt * rng.random(n))
        return np.arange(n), t, p3[:, 0], p3[:, 1], t
    if style_name == "linear":
        steps = tools["steps"][session].astype(np.int64)
        row, k = expand(steps)
        gap = rt[row] * rng.lognormal(0, 0.3, len(row)) + tools["step_wait"][session][row]
        return _line(row, k, steps, gap, p0, p3)
    if style_name == "webdriver":
        tick = tools["wd_tick"][session]
        steps = np.maximum(1, np.rint(tools["wd_ms"][session] / tick)).astype(np.int64)
        row, k = expand(steps)
        gap = tick[row] + rng.uniform(-0.5, 0.5, len(row))
        return _line(row, k, steps, gap, p0, p3)
    if style_name == "tween":
        return _pyautogui(rng, p0, p3, session, tools)
    if style_name == "ahk":
        return _autohotkey(rng, p0, p3, session, tools)
    if style_name == "humanizer":
        return _ghost_cursor(rng, p0, p3, width, session, tools)
    raise ValueError(style_name)


def _line(row, k, steps, gap, p0, p3):
    t = within_cumsum(gap, row) + gap
    frac = (k / steps[row])[:, None]
    xy = p0[row] + (p3[row] - p0[row]) * frac
    return row, t, xy[:, 0], xy[:, 1], np.bincount(row, weights=gap, minlength=len(p0))


def _pyautogui(rng, p0, p3, session, tools):
    n = len(p0)
    start, end = np.rint(p0), np.rint(p3)
    duration = np.where(
        tools["tw_random"][session],
        rng.uniform(tools["tw_lo"][session], tools["tw_hi"][session]),
        tools["tw_ms"][session],
    )
    duration = np.where(duration < PYAUTOGUI_MIN_DURATION_MS, 0.0, duration)
    steps = np.maximum(np.abs(end - start).max(axis=1), 1)
    sleep = duration / steps
    short = sleep < PYAUTOGUI_MIN_SLEEP_MS
    steps = np.where(short, np.maximum(np.floor(duration / PYAUTOGUI_MIN_SLEEP_MS), 1), steps)
    steps = np.where(duration == 0, 1, steps).astype(np.int64)
    sleep = np.where(duration == 0, 0.0, duration / steps)
    row, k = expand(steps)
    gap = timer_sleep(sleep[row], tools["timer"][session][row]) + rng.uniform(0.05, 0.5, len(row))
    t = within_cumsum(gap, row) + gap
    u = tween(tools["tw_tween"][session][row], k / steps[row])
    xy = np.rint(start[row] + (end[row] - start[row]) * u[:, None])
    return row, t, xy[:, 0], xy[:, 1], np.bincount(row, weights=gap, minlength=n)


def _autohotkey(rng, p0, p3, session, tools):
    n = len(p0)
    pos, end = np.rint(p0), np.rint(p3)
    speed = tools["ahk_speed"][session]
    delay = timer_sleep(tools["ahk_delay"][session], tools["timer"][session])
    instant = tools["ahk_input"][session]
    pos[instant] = end[instant]  # SendInput: one jump (emitted below as the only step)
    rows, steps_xy, it = [np.flatnonzero(instant)], [end[instant]], 1
    step_no = [np.zeros(instant.sum())]
    while True:
        rem = end - pos
        active = np.flatnonzero((rem != 0).any(axis=1))
        if not len(active) or it > 500:
            break
        r = np.abs(rem[active])
        delta = np.maximum(np.floor(r / speed[active, None]), AHK_MIN_STEP_PX)
        pos[active] += np.sign(rem[active]) * np.minimum(delta, r)
        rows.append(active)
        steps_xy.append(pos[active].copy())
        step_no.append(np.full(len(active), it))
        it += 1
    row = np.concatenate(rows)
    xy = np.concatenate(steps_xy)
    k = np.concatenate(step_no)
    order = np.lexsort((k, row))
    row, xy, k = row[order], xy[order], k[order]
    t = np.maximum(k - 1, 0) * delay[row] + rng.uniform(0.05, 0.5, len(row))
    move_ms = np.zeros(n)
    np.maximum.at(move_ms, row, t)
    return row, t, xy[:, 0], xy[:, 1], move_ms


def _ghost_cursor(rng, p0, p3, width, session, tools):
    n = len(p0)
    _, dist = normal(p0, p3)
    over = dist > GHOST_OVERSHOOT_PX
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = GHOST_OVERSHOOT_RADIUS * np.sqrt(rng.random(n))
    via = p3 + np.c_[np.cos(angle), np.sin(angle)] * radius[:, None]
    # paths: p0 -> (via if overshooting else p3), then via -> p3 with spread 10
    row = np.r_[np.arange(n), np.flatnonzero(over)]
    second = np.r_[np.zeros(n, bool), np.ones(over.sum(), bool)]
    a = np.r_[p0, via[over]]
    b = np.r_[np.where(over[:, None], via, p3), p3[over]]
    order = np.lexsort((second, row))
    row, second, a, b = row[order], second[order], a[order], b[order]
    nrm, length = normal(a, b)
    spread = np.where(second, 10.0, np.clip(length, 2, 200))
    side = np.where(rng.random(len(row)) < 0.5, 1.0, -1.0)
    anchors = []
    for _ in range(2):  # a random point on the line, pushed out along the normal by up to `spread`
        mid = a + (b - a) * rng.random(len(row))[:, None]
        anchors.append(mid + nrm * (side * spread * rng.random(len(row)))[:, None])
    c1, c2 = anchors
    swap = c1[:, 0] > c2[:, 0]  # ghost-cursor sorts its anchors by x
    c1[swap], c2[swap] = c2[swap].copy(), c1[swap].copy()
    s = session[row]
    speed = np.where(tools["gc_fixed"][s], 25.0 / tools["gc_move_speed"][s], rng.random(len(row)))
    w = np.where(width[row] > 0, width[row], GHOST_DEFAULT_WIDTH)
    fitts = 2.0 * np.log2(0.8 * length * 1.05 / w + 1)
    steps = np.ceil((np.log2(fitts + 1) + speed * GHOST_MIN_STEPS) * 3).astype(np.int64)
    steps = np.maximum(steps, 1)
    seg, k = expand(steps)
    xy = np.maximum(bezier(a, c1, c2, b, seg, k / steps[seg]), 0.0)
    gap = tools["rt"][s][seg] * rng.lognormal(0, 0.3, len(seg))
    action = row[seg]
    t = within_cumsum(gap, action) + gap
    return action, t, xy[:, 0], xy[:, 1], np.bincount(action, weights=gap, minlength=n)


def bot_clicks(rng, style_name, session, tools):
    """(reaction ms after arriving, hold ms) of each click."""
    n = len(session)
    rt = tools["rt"][session] * rng.lognormal(0, 0.3, n)
    if style_name == "macro":
        return np.full(n, 1.0), tools["macro_hold"][session]
    if style_name in ("teleport", "autotyper"):
        return 5.0 + rng.uniform(-1, 1, n), 20.0 + rng.uniform(-1, 1, n)
    if style_name in ("linear", "humanizer"):
        return rt, tools["click_delay"][session] + rt
    if style_name == "webdriver":
        return rt, rt
    if style_name == "tween":
        return PYAUTOGUI_PAUSE_MS + rng.uniform(0.05, 0.5, n), rng.uniform(0.0, 1.0, n)
    if style_name == "ahk":
        delay = timer_sleep(tools["ahk_delay"][session], tools["timer"][session])
        return delay + rng.uniform(0.05, 0.5, n), delay + rng.uniform(0.05, 0.5, n)
    raise ValueError(style_name)


def bot_keys(rng, style_name, key_session, tools) -> tuple[np.ndarray, np.ndarray]:
    """(down-down ms, hold ms) per key of a script style."""
    m = len(key_session)
    s = key_session
    rt = tools["rt"][s] * rng.lognormal(0, 0.3, m)
    small = rng.uniform(0.05, 0.5, m)
    if style_name == "macro":
        return tools["macro_dd"][s], tools["macro_hold"][s]
    if style_name == "teleport":
        return 60 * rng.lognormal(0, 0.02, m) + rng.uniform(-3, 3, m), 30 * rng.lognormal(0, 0.02, m)
    if style_name in ("linear", "humanizer"):
        delay = tools["type_delay"][s]
        return 2 * delay + 2 * rt, delay + rt
    if style_name == "webdriver":
        return 2 * rt, rt
    if style_name == "tween":
        interval = tools["tw_interval"][s]
        return timer_sleep(interval, tools["timer"][s]) + small, rng.uniform(0.0, 1.0, m)
    if style_name == "ahk":
        delay = timer_sleep(tools["ahk_delay"][s], tools["timer"][s])
        return np.where(tools["ahk_input"][s], small, delay + small), small
    if style_name == "autotyper":
        dd = tools["at_dd"][s] * (1 + tools["at_dd_jitter"][s] * rng.uniform(-1, 1, m))
        hold = tools["at_hold"][s] * (1 + tools["at_hold_jitter"][s] * rng.uniform(-1, 1, m))
        return dd, hold
    raise ValueError(style_name)
