"""Raw event sequences for sequence models: events -> one ragged array of per-event inputs per session.

Per event (units in the names; deltas are to the previous event of the same session):
    dt_log          log1p(ms since the previous event)
    dt_device_log   log1p(ms since the previous event of the same device: keyboard or mouse)
    ddt_log         log1p(|change in that gap| ms) from the device's previous gap: 0 on a timer, bots' tell
    dx_slog, dy_slog   sign * log1p(|px|) moved since the previous mouse position (0 on key events)
    speed_log       log1p(px/ms) over that move (time floored at 1 ms)
    turn            turning angle (radians, 0..pi) from the previous move's direction: 0 on straight lines
    hold_log        log1p(ms the key or button was held), on the key_up / button_up that ends a press
plus two categorical codes: the event kind (EVENT_KINDS) and the button (BUTTONS).

Key codes are left out on purpose: they spell what was typed (passwords), and bots give themselves away by
timing, which dt/hold carry. Absolute screen positions are left out too: they depend on the screen.
Sessions are stored back to back (`offsets`), so memory is one row per event, not per padded slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, KEY_EVENTS
from airush.abuse.features import EVENT_CODE, consecutive_pairs, schema_codes
from airush.compute.grouped import paired_next

CONTINUOUS = ("dt_log", "dt_device_log", "ddt_log", "dx_slog", "dy_slog", "speed_log", "turn", "hold_log")
# codes of anything outside the schema (should not happen after validation) get one spare index
N_EVENT_CODES = len(EVENT_KINDS) + 1
N_BUTTON_CODES = len(BUTTONS) + 1
_BUTTON = {name: i for i, name in enumerate(BUTTONS)}
ARRAYS = ("values", "event", "button", "offsets", "session_ids")
MIN_MOVE_MS = 1.0  # speed = distance / max(dt, this): sub-ms steps would blow speeds up


@dataclass(frozen=True)
class SessionSequences:
    """Per-event inputs of many sessions; session i owns rows offsets[i]:offsets[i + 1]."""

    values: np.ndarray  # (events, len(CONTINUOUS)) float32
    event: np.ndarray  # (events,) int8 EVENT_KINDS index
    button: np.ndarray  # (events,) int8 BUTTONS index
    offsets: np.ndarray  # (sessions + 1,) int64
    session_ids: np.ndarray  # (sessions,) int64

    def __len__(self) -> int:
        return len(self.session_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def channels(self) -> tuple[str, ...]:
        return CONTINUOUS

    def save(self, folder: Path, prefix: str) -> None:
        """One .npy per array (`<prefix>.<array>.npy`), so other processes can memory-map them."""
        for name in ARRAYS:
            np.save(folder / f"{prefix}.{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path, prefix: str) -> SessionSequences:
        """Memory-mapped, read-only: processes that load the same files share one copy in the page cache."""
        return cls(**{name: np.load(folder / f"{prefix}.{name}.npy", mmap_mode="r") for name in ARRAYS})

    def channel_scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of each continuous channel over all events (std floored: constant channels stay finite)."""
        if len(self.values) == 0:
            return np.zeros(len(CONTINUOUS), np.float32), np.ones(len(CONTINUOUS), np.float32)
        values = self.values.astype(np.float64)
        return values.mean(0).astype(np.float32), np.maximum(values.std(0), 1e-3).astype(np.float32)

    def take(self, rows: np.ndarray) -> SessionSequences:
        """The sessions at positions `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return SessionSequences(
            self.values[gather], self.event[gather], self.button[gather], offsets, self.session_ids[rows]
        )


def session_sequences(
    events: pd.DataFrame, session_ids: np.ndarray, keyboard: bool = True, mouse: bool = True
) -> SessionSequences:
    """One sequence per id in `session_ids` (sorted, unique; a session without events gets length 0).

    `events` follows the EventLog schema, sorted by session_id then t_ms. `keyboard`/`mouse` keep only that
    device's events (deltas are then taken between the kept events).
    """
    from airush.errors import ConfigError

    if not (keyboard or mouse):
        raise ConfigError("features: enable keyboard, mouse or both")
    session_ids = np.asarray(session_ids, dtype=np.int64)
    code = schema_codes(events["event"], EVENT_CODE, len(EVENT_CODE))
    is_key = np.isin(code, [EVENT_CODE[k] for k in KEY_EVENTS])
    keep = (is_key & keyboard) | (~is_key & mouse)
    sid = events["session_id"].to_numpy(np.int64)[keep]
    t = events["t_ms"].to_numpy(np.float64)[keep]
    code, is_key = code[keep], is_key[keep]
    button = schema_codes(events["button"], _BUTTON, len(_BUTTON))[keep]
    key = events["key"].to_numpy()[keep]
    x = events["x"].to_numpy(np.float64)[keep]
    y = events["y"].to_numpy(np.float64)[keep]

    group = np.searchsorted(session_ids, sid)
    listed = (group < len(session_ids)) & (session_ids[np.minimum(group, len(session_ids) - 1)] == sid)
    if not listed.all():  # events of sessions not asked for
        t, code, is_key, button, key, x, y, group = (
            a[listed] for a in (t, code, is_key, button, key, x, y, group)
        )
    offsets = np.zeros(len(session_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(group, minlength=len(session_ids)), out=offsets[1:])

    values = np.zeros((len(t), len(CONTINUOUS)), dtype=np.float32)
    column = {name: i for i, name in enumerate(CONTINUOUS)}
    values[:, column["dt_log"]] = np.log1p(_since_previous(t, np.arange(len(t)), group))
    for device_rows in (np.flatnonzero(is_key), np.flatnonzero(~is_key)):
        gap = _since_previous(t, device_rows, group)
        values[device_rows, column["dt_device_log"]] = np.log1p(gap)
        g = group[device_rows]
        has_gap = np.r_[False, g[1:] == g[:-1]]
        j = np.flatnonzero(has_gap[1:] & has_gap[:-1]) + 1  # this gap and the one before, same session
        values[device_rows[j], column["ddt_log"]] = np.log1p(np.abs(gap[j] - gap[j - 1]))

    positioned = np.flatnonzero(~is_key & np.isfinite(x) & np.isfinite(y))
    prev, cur = consecutive_pairs(positioned, group)
    dx, dy = x[cur] - x[prev], y[cur] - y[prev]
    values[cur, column["dx_slog"]] = np.sign(dx) * np.log1p(np.abs(dx))
    values[cur, column["dy_slog"]] = np.sign(dy) * np.log1p(np.abs(dy))
    step_ms = np.maximum(t[cur] - t[prev], MIN_MOVE_MS)
    values[cur, column["speed_log"]] = np.log1p(np.hypot(dx, dy) / step_ms)
    moved = (dx != 0) | (dy != 0)
    k = np.flatnonzero(cur[:-1] == prev[1:]) + 1  # move k starts where move k - 1 ended
    k = k[moved[k] & moved[k - 1]]
    angle = np.arctan2(dy[k], dx[k]) - np.arctan2(dy[k - 1], dx[k - 1])
    values[cur[k], column["turn"]] = np.abs((angle + np.pi) % (2 * np.pi) - np.pi)

    for down, up, which in (
        (EVENT_CODE["key_down"], EVENT_CODE["key_up"], key),
        (EVENT_CODE["button_down"], EVENT_CODE["button_up"], button),
    ):
        press, release = paired_next(code == down, code == up, (group, which), t)
        values[release, column["hold_log"]] = np.log1p(np.maximum(t[release] - t[press], 0.0))

    return SessionSequences(values, code.astype(np.int8), button.astype(np.int8), offsets, session_ids)


def _since_previous(t: np.ndarray, rows: np.ndarray, group: np.ndarray) -> np.ndarray:
    """ms from the previous row in `rows` of the same session (0 for the first), one value per row."""
    out = np.zeros(len(rows))
    if len(rows) > 1:
        same = group[rows[1:]] == group[rows[:-1]]
        out[1:][same] = np.maximum(np.diff(t[rows])[same], 0.0)
    return out


def crop_starts(lengths: np.ndarray, max_events: int, rng: np.random.Generator) -> np.ndarray:
    """A random window start per session for training (0 when the session fits in `max_events`)."""
    room = np.maximum(np.asarray(lengths) - max_events, 0)
    return np.floor(rng.random(len(room)) * (room + 1)).astype(np.int64)


def eval_windows(lengths: np.ndarray, max_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic windows that cover every session: ceil(length / max_events) windows of `max_events`
    events, evenly spaced from the first event to the last. Returns (session, start, length) per window."""
    lengths = np.asarray(lengths, dtype=np.int64)
    count = np.maximum(-(-lengths // max_events), 1)
    session = np.repeat(np.arange(len(lengths)), count)
    nth = np.arange(len(session)) - np.repeat(np.cumsum(count) - count, count)
    span = np.maximum(lengths - max_events, 0)[session]
    denominator = np.maximum(count[session] - 1, 1)
    start = (span * nth + denominator // 2) // denominator  # rounded span * nth / (count - 1)
    return session, start, np.minimum(lengths[session], max_events)


def padded_batch(
    sequences: SessionSequences, sessions: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows [start, start + length) of `sessions`, padded to the longest: (values (B, L, C) float32,
    event (B, L) int64, button (B, L) int64, mask (B, L) bool). Padding is all zeros."""
    width = int(lengths.max()) if len(lengths) else 0
    steps = np.arange(width)
    mask = steps[None, :] < lengths[:, None]
    rows = np.where(mask, sequences.offsets[sessions][:, None] + starts[:, None] + steps[None, :], 0)
    values = np.where(mask[..., None], sequences.values[rows], 0.0).astype(np.float32)
    event = np.where(mask, sequences.event[rows], 0).astype(np.int64)
    button = np.where(mask, sequences.button[rows], 0).astype(np.int64)
    return values, event, button, mask


def length_batches(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 32
) -> list[np.ndarray]:
    """Cut `order` (already shuffled) into batches of similar length: sort each pool of `pool` batches by
    length, cut, then shuffle the batch order. Always ceil(len(order) / batch_size) batches."""
    batches = []
    for lo in range(0, len(order), batch_size * pool):
        chunk = order[lo : lo + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
