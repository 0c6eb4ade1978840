"""People: how they point, click, scroll and type, calibrated on real human data.

Calibration (measured with the real data sets in ../shared/data, never on labelled bots):
- Balabit mouse dynamics (10 people, 3.4 M events): click hold median 94 ms (p10 78, p90 203, on a 15.6 ms
  clock), pauses > 300 ms between mouse events ~12.5 per minute with median 0.59 s, p90 3.4 s, p99 36 s;
  wheel events 4.5% of all events, 32 ms apart (median) within a scroll; move speed median 0.18 px/ms
  (p90 1.1, p99 3.6);
- Aalto keystrokes (5 people): key hold median 87 ms (per-person medians 64-101, log-sd 0.40),
  down-down median 156 ms (log-sd 0.60), 15% of key pairs roll over (next key down before the last up).
Pointing follows Fitts' law (MT = a + b·log2(D/W + 1); a ~120 ms, b ~140 ms/bit for a mouse, slower on a
touchpad) with a minimum-jerk velocity profile whose peak comes early (deceleration takes longer), curved
paths, 6-12 Hz tremor, overshoot or undershoot followed by a corrective sub-movement, and on touchpads long
movements made as two strokes with the finger lifted in between (no events while it is up).
"""

from __future__ import annotations

import numpy as np

from airush.abuse.data.paths import bezier, expand, min_jerk, normal, within_cumsum

KEY_HOLD_MS = (87.0, 0.15, 0.30)  # median, between-person log-sd, within-person log-sd (Aalto)
KEY_DD_MS = (156.0, 0.25, 0.50)  # down-down within a burst (Aalto)
CLICK_HOLD_MS = (100.0, 0.20, 0.30)  # Balabit
ACTION_GAP_MS = (400.0, 0.30, 0.80)  # between actions, before idle pauses
IDLE_MS = (2500.0, 1.1)  # lognormal median, sigma: Balabit's pause tail (p90 3.4 s, p99 36 s)
WHEEL_GAP_MS = (32.0, 0.6)  # Balabit


def draw_people(rng, user: np.ndarray, touchpad: np.ndarray) -> dict[str, np.ndarray]:
    """Per-session laws of the person at the keyboard: drawn per account (one person's pace and rhythm in
    all their sessions), the pointing device per session."""
    n_users, n = int(user.max()) + 1, len(user)

    def per_user(median, between):
        return (median * np.exp(rng.normal(0.0, between, n_users)))[user]

    people = {
        "key_hold": per_user(*KEY_HOLD_MS[:2]),
        "key_dd": per_user(*KEY_DD_MS[:2]),
        "click_hold": per_user(*CLICK_HOLD_MS[:2]),
        "gap": per_user(*ACTION_GAP_MS[:2]),
        "fitts_a": np.maximum(rng.normal(120.0, 25.0, n_users), 40.0)[user] + 60.0 * touchpad,
        "fitts_b": per_user(140.0, 0.25) * np.where(touchpad, 1.5, 1.0),
        "tremor_px": rng.uniform(0.2, 1.0, n_users)[user],
        "tremor_hz": rng.uniform(6.0, 12.0, n_users)[user],
        "idle": rng.uniform(0.02, 0.15, n),  # share of actions followed by an idle pause
        "click": rng.uniform(0.6, 0.9, n),  # share of pointing actions that end in a click
        "slow": rng.uniform(0.1, 0.4, n_users)[user],  # share of movements made slowly (drifting, reading)
    }
    return people


def action_gaps(rng, people, session: np.ndarray) -> np.ndarray:
    """ms before each action: a lognormal think time, sometimes an idle pause."""
    gap = people["gap"][session] * np.exp(rng.normal(0, ACTION_GAP_MS[2], len(session)))
    idle = rng.random(len(session)) < people["idle"][session]
    return gap + np.where(
        idle, np.minimum(rng.lognormal(np.log(IDLE_MS[0]), IDLE_MS[1], len(session)), 6e5), 0
    )


def human_moves(rng, p0, p3, width, session, people, env):
    """A person's pointing movements p0 -> p3 (one per row). Returns (row, t_ms in the action, x, y) per
    sample and each movement's duration (ms)."""
    n = len(p0)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)
    d = p3 - p0
    dist = np.hypot(d[:, 0], d[:, 1])
    over = rng.random(n) < 0.25
    under = ~over & (dist > 300) & (rng.random(n) < 0.25)
    aim = (
        p3
        + d
        * np.where(over, rng.uniform(0.03, 0.1, n), np.where(under, -rng.uniform(0.05, 0.12, n), 0))[:, None]
    )
    correct = over | under
    clutch = env["touchpad"][session] & (dist > rng.uniform(250, 450, n))
    split = p0 + (aim - p0) * rng.uniform(0.4, 0.65, n)[:, None]
    # segments: [p0 -> split -> aim] with a clutch, else [p0 -> aim]; then [aim -> p3] to correct
    parts = [
        (np.arange(n), p0, np.where(clutch[:, None], split, aim), np.zeros(n), width * 2, 0),
        (np.flatnonzero(clutch), split[clutch], aim[clutch], rng.uniform(80, 350, clutch.sum()),
         width[clutch] * 2, 1),
        (np.flatnonzero(correct), aim[correct], p3[correct], rng.uniform(40, 150, correct.sum()),
         width[correct], 2),
    ]  # fmt: skip
    row = np.concatenate([p[0] for p in parts])
    order = np.lexsort((np.concatenate([np.full(len(p[0]), p[5]) for p in parts]), row))
    row = row[order]
    a, b = (np.concatenate([p[i] for p in parts])[order] for i in (1, 2))
    pause = np.concatenate([p[3] for p in parts])[order]
    w = np.maximum(np.concatenate([p[4] for p in parts])[order], 4.0)
    s = session[row]
    nrm, length = normal(a, b)
    fitts = people["fitts_a"][s] * np.where(pause > 0, 0.5, 1.0) + people["fitts_b"][s] * np.log2(
        length / w + 1
    )
    # not every movement is aimed as fast as Fitts allows: people drift while reading, hover, hesitate
    slow = rng.random(len(row)) < people["slow"][s]
    duration = np.maximum(fitts, 60.0) * np.where(slow, rng.uniform(2.0, 5.0, len(row)), 1.0)
    interval = env["human_ms"][s]
    n_samples = np.maximum(2, np.ceil(duration / interval)).astype(np.int64)
    seg, _ = expand(n_samples)
    ss = s[seg]
    step = interval[seg] * np.exp(env["jitter"][ss] * rng.standard_normal(len(seg)))
    step *= np.where(rng.random(len(seg)) < env["drop"][ss], rng.integers(2, 5, len(seg)), 1)
    t_in = within_cumsum(step, seg) + step  # inclusive: time of each sample in its segment
    last = np.cumsum(n_samples) - 1  # each segment's last sample: its times increase
    seg_ms = t_in[last]
    tau = t_in / seg_ms[seg]
    alpha = rng.uniform(0.7, 1.0, len(row))  # < 1: velocity peaks early, the deceleration is longer
    progress = min_jerk(tau ** alpha[seg])
    bend = rng.normal(0, 0.1, len(row)) * length
    c1 = a + (b - a) / 3 + nrm * (bend * (1 + rng.normal(0, 0.3, len(row))))[:, None]
    c2 = a + 2 * (b - a) / 3 + nrm * (bend * (1 + rng.normal(0, 0.3, len(row))))[:, None]
    xy = bezier(a, c1, c2, b, seg, progress)
    seg_start = within_cumsum(pause + seg_ms, row) + pause  # in the action
    t = seg_start[seg] + t_in
    phase = rng.uniform(0, 2 * np.pi, (n, 2))[row]
    omega = 2 * np.pi * people["tremor_hz"][s] / 1000.0
    amplitude = people["tremor_px"][ss]
    for axis in range(2):
        xy[:, axis] += amplitude * np.sin(omega[seg] * t + phase[seg, axis])
    move_ms = np.zeros(n)
    move_ms[row] = t[last]  # segments are in time order within their movement: the last one's end wins
    return row[seg], t, xy[:, 0], xy[:, 1], move_ms


def human_clicks(rng, people, session):
    """(reaction ms after arriving, hold ms) of each click."""
    react = rng.lognormal(np.log(120), 0.4, len(session))
    hold = people["click_hold"][session] * np.exp(rng.normal(0, CLICK_HOLD_MS[2], len(session)))
    return react, np.maximum(hold, 1.0)


def human_wheel(rng, session, env):
    """(notches, ms between notches) of each scroll: a mouse wheel turns a few notches ~32 ms apart; a
    touchpad scrolls smoothly, one small event per frame."""
    n = len(session)
    touchpad = env["touchpad"][session]
    notches = np.where(touchpad, rng.integers(10, 60, n), 1 + rng.geometric(0.25, n))
    gap = np.where(touchpad, env["frame_ms"][session], WHEEL_GAP_MS[0])
    sigma = np.where(touchpad, 0.2, WHEEL_GAP_MS[1])
    return notches, gap, sigma


def human_keys(rng, people, key_session, keys, new_burst) -> tuple[np.ndarray, np.ndarray]:
    """(down-down ms, hold ms) per key: per-person lognormal laws, some key pairs faster than others."""
    m = len(key_session)
    dd = people["key_dd"][key_session] * np.exp(rng.normal(0, KEY_DD_MS[2], m))
    digraph = np.exp(rng.normal(0, 0.2, (256, 256)))  # fixed per seed: some key pairs are simply faster
    prev = np.r_[keys[:1], keys[:-1]]
    dd = np.maximum(dd * digraph[prev % 256, keys % 256], 15.0)
    hold = np.maximum(people["key_hold"][key_session] * np.exp(rng.normal(0, KEY_HOLD_MS[2], m)), 10.0)
    return np.where(new_burst, 0.0, dd), hold
