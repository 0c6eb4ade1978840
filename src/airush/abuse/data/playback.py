"""Bot kinds that play a person's session back (synthetic.py makes the sessions, then swaps these in):

- replay: a careful replay of another account's whole session, 3% faster or slower, ±0.5 ms jitter per
  event, positions exact; per-session statistics cannot tell it from a person;
- recorder: an OS macro recorder (TinyTask-, Jitbit-, pynput-style) playing back the start of another
  account's session in a loop, at a speed factor with its timer's rounding, with every short gap set to
  one fixed delay, or with the recorded delays.

Events are columns (dicts of arrays) in the schema of `airush.abuse.data`, sorted by session then time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from airush.abuse.data import HUMAN

EVENT_COLUMNS = ("session_id", "t_ms", "event", "key", "x", "y", "button")
REPLAY_STRETCH = 0.03  # the replay runs up to 3% faster or slower
REPLAY_JITTER_MS = 0.5  # per event
RECORDER_SPEEDS = (0.5, 1.0, 2.0, 4.0)  # playback speed factors of macro recorders
RECORDER_FIXED_MS = (1.0, 10.0, 16.0)  # "fixed timing" playback: one delay for every short gap


def _donors(rng, sessions: pd.DataFrame, copies: np.ndarray) -> np.ndarray:
    """A person's session from another account for each session in `copies` (positions in `sessions`, whose
    rows are in the order sessions began), recorded before it: one can only play back what already happened."""
    kinds = sessions["kind"].to_numpy()
    donors = np.flatnonzero(kinds == HUMAN)
    users = sessions["user_id"].to_numpy()
    earlier = np.searchsorted(donors, copies)  # donors[:earlier[i]] began before copy i
    source = donors[np.floor(rng.random(len(copies)) * np.maximum(earlier, 1)).astype(np.int64)]
    for i in np.flatnonzero((users[source] == users[copies]) | (source > copies)):  # few: draw again
        others = donors[(users[donors] != users[copies[i]]) & (donors < copies[i])]
        if not len(others):  # one of the first sessions: a later person's is all there is to copy
            others = donors[users[donors] != users[copies[i]]]
        if len(others):  # else every person is on this account: its own owner is all there is to copy
            source[i] = others[rng.integers(0, len(others))]
    return source


def played_back(rng, events: dict, sessions: pd.DataFrame) -> dict:
    """Replay and recorder sessions replaced by their copies of people's sessions (each sorted by time and
    rebased to 0)."""
    ids = sessions["session_id"].to_numpy()
    kinds = sessions["kind"].to_numpy()
    copies, frames = [], []
    for kind, make in (("replay", replay_copies), ("recorder", recorder_copies)):
        targets = np.flatnonzero(kinds == kind)
        if len(targets) and (kinds == HUMAN).any():
            copies.append(targets)
            frames.append(make(rng, events, sessions, targets, ids))
    if not copies:
        return events
    new = {c: np.concatenate([f[c] for f in frames]) for c in EVENT_COLUMNS}
    order = np.lexsort((np.arange(len(new["t_ms"])), new["t_ms"], new["session_id"]))
    new = {c: v[order] for c, v in new.items()}
    first = np.flatnonzero(np.r_[True, new["session_id"][1:] != new["session_id"][:-1]])
    new["t_ms"] = new["t_ms"] - np.repeat(new["t_ms"][first], np.diff(np.r_[first, len(order)]))
    # stitch: the kept stretches of `events` between the replaced sessions, each copy in its session's place
    replaced = ids[np.sort(np.concatenate(copies))]
    lo = np.searchsorted(events["session_id"], replaced, side="left")
    hi = np.searchsorted(events["session_id"], replaced, side="right")
    new_lo = np.searchsorted(new["session_id"], replaced, side="left")
    new_hi = np.searchsorted(new["session_id"], replaced, side="right")
    cuts = np.r_[0, hi]
    out = {}
    for c in EVENT_COLUMNS:
        pieces = []
        for i in range(len(replaced)):
            pieces += [events[c][cuts[i] : lo[i]], new[c][new_lo[i] : new_hi[i]]]
        out[c] = np.concatenate([*pieces, events[c][cuts[-1] :]])
    return out


def _session_rows(events: dict, ids: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the sessions `ids[source]`, one after another, and each one's length."""
    lo = np.searchsorted(events["session_id"], ids[source], side="left")
    hi = np.searchsorted(events["session_id"], ids[source], side="right")
    length = hi - lo
    rows = np.repeat(lo - np.r_[0, np.cumsum(length)[:-1]], length) + np.arange(length.sum())
    return rows, length


def replay_copies(rng, events, sessions, replay, ids) -> dict:
    """A copy of a person's session from another account for each replay session, time stretched by up to
    ±REPLAY_STRETCH and jittered by ±REPLAY_JITTER_MS per event, positions unchanged."""
    rows, length = _session_rows(events, ids, _donors(rng, sessions, replay))
    copy = {c: v[rows] for c, v in events.items()}
    copy["session_id"] = np.repeat(ids[replay], length)
    stretch = np.repeat(1.0 + rng.uniform(-REPLAY_STRETCH, REPLAY_STRETCH, len(replay)), length)
    jitter = rng.uniform(-REPLAY_JITTER_MS, REPLAY_JITTER_MS, len(rows))
    copy["t_ms"] = np.maximum(copy["t_ms"] * stretch + jitter, 0.0)
    return copy


def recorder_copies(rng, events, sessions, rec, ids) -> dict:
    """A macro recorder's playback of another account's session for each recorder session: the first
    30-100% of it (the recording), played 1-3 times in a loop with a pause between, in one of three ways
    (a third each): at a speed factor with every delay rounded up to the player's timer (1 or 15.625 ms),
    with every gap shorter than 300 ms replaced by one fixed delay, or with the recorded delays (a player
    with a high-resolution clock). Positions and keys as recorded."""
    source = _donors(rng, sessions, rec)
    sid, t_all = events["session_id"], events["t_ms"]
    frames = []
    for target, donor in zip(rec, source, strict=True):
        lo, hi = np.searchsorted(sid, ids[donor], "left"), np.searchsorted(sid, ids[donor], "right")
        end = min(hi, lo + max(2, int(np.ceil((hi - lo) * rng.uniform(0.3, 1.0)))))
        gaps = np.diff(t_all[lo:end], prepend=t_all[lo])
        mode = rng.integers(0, 3)
        if mode == 0:
            timer = rng.choice([1.0, 15.625])
            gaps = np.ceil(gaps / rng.choice(RECORDER_SPEEDS) / timer) * timer
        elif mode == 1:
            gaps = np.where(gaps < 300.0, rng.choice(RECORDER_FIXED_MS), gaps)
        # else as recorded: a player with a high-resolution clock keeps the recording's own delays
        loops = int(rng.integers(1, 4))
        part = {c: np.tile(v[lo:end], loops) for c, v in events.items()}
        g = np.tile(gaps, loops)
        g[np.arange(1, loops) * (end - lo)] = rng.uniform(200, 2000, loops - 1)  # pause between loops
        part["t_ms"] = np.cumsum(g)
        part["session_id"] = np.full(len(g), ids[target], np.int64)
        frames.append(part)
    return {c: np.concatenate([f[c] for f in frames]) for c in EVENT_COLUMNS}
