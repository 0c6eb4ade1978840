"""Where a synthetic session was recorded: screen, pointing device, and the logger that sampled its events.

Drawn per session and independently of the label: bots run on the same screens, browsers and loggers as
people do, so none of this can become a shortcut to the answer. What varies, and why:

- screen (CSS px viewport) and device pixel ratio: the common desktop sizes, 800x600 (headless Chrome's
  default viewport) included; pointer positions land on a 1 px grid (MouseEvent) or a 1/dpr px grid
  (PointerEvent coordinates are fractional);
- pointing device: a mouse polled at 125-1000 Hz (USB default 125 Hz, gaming mice 500/1000 Hz) or a
  touchpad (~80-125 Hz, people move it differently: see humans.py);
- logger: `browser` (mousemove coalesced to one event per display frame, 60-240 Hz, as Chrome and Firefox
  align input to requestAnimationFrame), `raw` (an OS hook that sees every poll of the device), or `remote`
  (a remote-desktop session: the pointer is forwarded every ~30-120 ms and stamped by a 15.625 ms Windows
  clock, as in Balabit: its median move gap is 93 ms, 12% of gaps are 0 ms);
- clock resolution: 5 µs / 0.1 ms (performance.now), 1 ms (Date.now, Firefox's reduced precision),
  15.625 ms (GetTickCount);
- irregular gaps: dropped frames (a gap of 2-4 frames) at a per-session rate of 0-5%;
- clock jumps: a few sessions have one forward jump of 1-120 s (a laptop suspended, an NTP step, a tab put
  in the background); backward steps are left out because event logs are stored sorted by time;
- clicks without precise timing: loggers that record `click` only give button_down and button_up one time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from airush.abuse.data import EVENT_KINDS

SCREENS = np.array(
    [[1920, 1080], [1366, 768], [1536, 864], [1440, 900], [1280, 720], [2560, 1440], [1280, 800],
     [1680, 1050], [800, 600]], dtype=np.float64,
)  # fmt: skip
SCREEN_P = np.array([0.3, 0.14, 0.12, 0.08, 0.07, 0.08, 0.06, 0.05, 0.10])
DPR = np.array([1.0, 1.25, 1.5, 2.0])
DPR_P = np.array([0.5, 0.2, 0.1, 0.2])
REFRESH_HZ = np.array([60.0, 75.0, 120.0, 144.0, 165.0, 240.0])
REFRESH_P = np.array([0.6, 0.05, 0.1, 0.15, 0.05, 0.05])
POLL_HZ = np.array([125.0, 250.0, 500.0, 1000.0])
POLL_P = np.array([0.55, 0.15, 0.15, 0.15])
LOGGERS = ("browser", "raw", "remote")
CLOCK_MS = np.array([0.005, 0.1, 1.0, 15.625])
# clock resolution per logger (rows: LOGGERS, columns: CLOCK_MS)
CLOCK_P = np.array([[0.1, 0.5, 0.4, 0.0], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0]])
CLOCK_JUMP_MS = (1_000.0, 120_000.0)
# a fixed environment, for `vary_environment: false`: one browser on one 1080p screen at 60 Hz, 1 ms clock
FIXED = {"screen": (1920.0, 1080.0), "dpr": 1.0, "frame_ms": 1000 / 60, "poll_ms": 8.0, "clock_ms": 1.0}
_MOVE = EVENT_KINDS.index("move")
_DOWN, _UP = EVENT_KINDS.index("button_down"), EVENT_KINDS.index("button_up")


def draw_environment(
    rng, n: int, logger_shares: dict[str, float], touchpad_share: float, click_only_share: float,
    clock_jump_share: float, vary: bool = True,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-session arrays: screen (n, 2) CSS px, dpr, touchpad, logger (index in LOGGERS), frame_ms (display
    frame), poll_ms (device report interval), human_ms (interval of a person's recorded samples), jitter
    (lognormal sigma of sample gaps), drop (share of dropped frames), clock_ms, fractional (1/dpr grid),
    click_only, jump_ms (0 = no clock jump), remote_ms (forwarding window of a remote desktop)."""
    shares = np.array([float(logger_shares.get(name, 0.0)) for name in LOGGERS])
    logger = rng.choice(len(LOGGERS), n, p=shares / shares.sum())
    env = {
        "screen": SCREENS[rng.choice(len(SCREENS), n, p=SCREEN_P)],
        "dpr": DPR[rng.choice(len(DPR), n, p=DPR_P)],
        "touchpad": rng.random(n) < touchpad_share,
        "logger": logger,
        "frame_ms": 1000.0 / REFRESH_HZ[rng.choice(len(REFRESH_HZ), n, p=REFRESH_P)],
        "poll_ms": 1000.0 / POLL_HZ[rng.choice(len(POLL_HZ), n, p=POLL_P)],
        "jitter": rng.uniform(0.02, 0.25, n),
        "drop": rng.uniform(0.0, 0.05, n),
        "clock_ms": CLOCK_MS[(rng.random(n)[:, None] > np.cumsum(CLOCK_P[logger], axis=1)).sum(axis=1)],
        "fractional": rng.random(n) < 0.3,
        "click_only": rng.random(n) < click_only_share,
        "jump_ms": np.where(rng.random(n) < clock_jump_share, rng.uniform(*CLOCK_JUMP_MS, n), 0.0),
        "remote_ms": rng.uniform(30.0, 120.0, n),
    }
    touchpad_poll = 1000.0 / rng.uniform(80.0, 125.0, n)
    env["poll_ms"] = np.where(env["touchpad"], touchpad_poll, env["poll_ms"])
    if not vary:
        env |= {
            "screen": np.tile(FIXED["screen"], (n, 1)), "dpr": np.full(n, FIXED["dpr"]),
            "touchpad": np.zeros(n, bool), "logger": np.zeros(n, np.int64),
            "frame_ms": np.full(n, FIXED["frame_ms"]), "poll_ms": np.full(n, FIXED["poll_ms"]),
            "jitter": np.full(n, 0.15), "drop": np.zeros(n), "clock_ms": np.full(n, FIXED["clock_ms"]),
            "fractional": np.zeros(n, bool), "click_only": np.zeros(n, bool), "jump_ms": np.zeros(n),
        }  # fmt: skip
    raw = env["logger"] == LOGGERS.index("raw")
    # a browser (and a remote-desktop client) sees at most one move per frame, no more than the device reports
    env["human_ms"] = np.where(raw, env["poll_ms"], np.maximum(env["frame_ms"], env["poll_ms"]))
    return env


def record(rng, events: dict[str, np.ndarray], env: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the session's logger writes down of the events its user (or bot) produced: moves coalesced per
    display frame (browser) or forwarding window (remote desktop), moves that did not move dropped, times
    floored to the clock, positions on the pixel grid, an optional forward clock jump; times rebased to 0.

    `events`: columns of the schema of `airush.abuse.data` with integer codes in `event` (EVENT_KINDS index),
    sorted by session_id then t_ms; session_id is the row of the session in `env`."""
    sid, t, code = events["session_id"], events["t_ms"], events["event"]
    if not len(sid):
        return events
    n_sessions = len(env["dpr"])
    # coalescing: a move is dropped when the next row is a move of the same session in the same bin
    logger = env["logger"]
    window = np.select(
        [logger == LOGGERS.index("browser"), logger == LOGGERS.index("remote")],
        [env["frame_ms"], env["remote_ms"]],
        0.0,
    )  # per session, 0 = no coalescing
    phase = rng.uniform(0, 1, n_sessions) * window
    coalesced = (window > 0)[sid]
    bin_ = np.floor((t + phase[sid]) / np.where(window > 0, window, 1.0)[sid])
    move = code == _MOVE
    same_bin = (sid[1:] == sid[:-1]) & move[1:] & (bin_[1:] == bin_[:-1]) & coalesced[1:]
    keep = ~(move & np.r_[same_bin, False])
    # positions on the session's pixel grid (1 px, or 1/dpr px for fractional pointer coordinates)
    grid = np.where(env["fractional"], 1.0 / env["dpr"], 1.0)[sid]
    x = np.rint(events["x"] / grid) * grid
    y = np.rint(events["y"] / grid) * grid
    # a move to where the pointer already was at the session's previous move reports nothing
    moves = np.flatnonzero(keep & move)
    a, b = moves[:-1], moves[1:]
    still = np.zeros(len(t), bool)
    still[b] = (sid[b] == sid[a]) & (x[b] == x[a]) & (y[b] == y[a])
    kept = np.flatnonzero(keep & ~still)
    s_out = sid[kept]
    clock = env["clock_ms"][s_out]
    t_out = np.floor(t[kept] / clock) * clock
    first = np.flatnonzero(np.r_[True, s_out[1:] != s_out[:-1]])
    size = np.diff(np.r_[first, len(s_out)])
    jump = env["jump_ms"][s_out]
    if jump.any():  # forward clock jumps, at a uniformly drawn point of the session
        span = np.repeat(np.maximum.reduceat(t_out, first), size)
        at = rng.uniform(0, 1, n_sessions)[s_out] * span
        t_out = t_out + np.where(t_out > at, jump, 0.0)
    out = {c: v[kept] for c, v in events.items() if c not in ("t_ms", "x", "y")}
    out["t_ms"] = t_out - np.repeat(t_out[first], size)  # rows are in time order
    out["x"], out["y"] = x[kept].astype(np.float32), y[kept].astype(np.float32)
    return _without_repeats(out)


def _without_repeats(events: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop rows repeating another row exactly (two wheel notches or key presses within one clock tick):
    a log holds each event once, and identical rows could not be told apart anyway."""
    sid, t = events["session_id"], events["t_ms"]
    tied = np.r_[False, (sid[1:] == sid[:-1]) & (t[1:] == t[:-1])]
    rows = np.flatnonzero(tied | np.r_[tied[1:], False])
    if not len(rows):
        return events
    sub = pd.DataFrame({c: v[rows] for c, v in events.items()})
    drop = rows[sub.duplicated().to_numpy()]
    keep = np.ones(len(t), bool)
    keep[drop] = False
    return {c: v[keep] for c, v in events.items()}
