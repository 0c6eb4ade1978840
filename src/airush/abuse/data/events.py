"""User-written keyboard + mouse event logs in the schema of `airush.abuse.data`, CSV or Parquet.

events file, one row per input event; sessions may come in any order, but each session's rows in time order:
    session_id  integer
    t_ms        finite number, ms; any origin (epoch ms is fine): each session is shifted to start at 0
    event       one of EVENT_KINDS
    key         virtual key code 0..32767 on key_down/key_up; blank or -1 on mouse events (stored as -1)
    x, y        screen px, finite and within COORD_RANGE on mouse events; blank on key events (stored as NaN)
    button      one of BUTTONS ("none" for moves and key events)
sessions file, one row per session (needed to train; scoring reads the events file alone, streamed in
bounded memory by `iter_session_chunks`):
    session_id  integer, listed once; every listed session has events and every event's session is listed
    user_id     integer, the account (the split keeps each account on one side)
    label       0 (human) or 1 (bot/intruder)
    [kind]      "human" on label 0; a bot kind on label 1, e.g. "macro" (names the recall_<kind> metric).
                Blank or absent: "human" for label 0, "positive" for label 1.
    [part]      "train" or "test" on every row, for data that fixes its own split (task.scope=account)

Any mismatch is one DataError naming the file, row and column. Rows are counted as a user sees them: in a CSV
the header is line 1, so the first data row is row 2; in Parquet the first row is row 1. A valid CSV is read
typed by pyarrow in one pass; when a check fails, the file is read again as text so the message quotes the
cell as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, HUMAN, KEY_EVENTS, EventLog, EventSource
from airush.data.inputs import resolve_path
from airush.data.tables import (
    PARQUET,
    as_float,
    blank_cells,
    fail_where,
    integer_column,
    read_table,
)
from airush.errors import ConfigError, DataError

EVENT_COLUMNS = ("session_id", "t_ms", "event", "key", "x", "y", "button")
SESSION_COLUMNS = ("session_id", "user_id", "label")
# Multi-monitor desktops put screens left of / above the primary one (negative px) and span several 4K/8K
# screens; anything outside this box is a unit or parsing mistake, not a pointer position.
COORD_RANGE = (-10_000.0, 100_000.0)  # px
KEY_MAX = np.iinfo(np.int16).max
PARTS = ("train", "test")
POSITIVE = "positive"  # kind of a label-1 session whose file gives none
KIND_PATTERN = r"[\w.\-]+"  # kinds become MLflow metric names (recall_<kind>)


@dataclass
class EventFiles(EventSource):
    # paths the CLI checks first (airush.data.inputs)
    inputs: ClassVar[dict[str, str]] = {"events": "file", "sessions": "file"}

    events: str
    sessions: str | None = (
        None  # needed to train (labels); scoring (`iter_session_chunks`) reads events alone
    )

    def load(self, seed: int = 0, stages=None) -> EventLog:
        if self.sessions is None:
            raise ConfigError("data.sessions must be set to train: the sessions file holds the labels")
        events_path, sessions_path = resolve_path(self.events), resolve_path(self.sessions)
        for path in (events_path, sessions_path):
            if not path.is_file():
                raise DataError("file not found", path=path)
        bar = stages.stage("read event files", total=2) if stages else None
        events, first_row = _read_checked(events_path, EVENT_COLUMNS, (), _parse_events)
        events, event_rows = _session_order(events, events_path, first_row)
        bar and bar.advance()
        sessions, session_first_row = _read_checked(
            sessions_path, SESSION_COLUMNS, ("kind", "part"), _parse_sessions
        )
        _check_sessions_match(events, event_rows, events_path, sessions, sessions_path, session_first_row)
        bar and bar.advance()
        sessions = sessions.sort_values("session_id", kind="stable", ignore_index=True)
        return EventLog(events=events, sessions=sessions)

    def iter_session_chunks(
        self,
        chunk_events: int = 2_000_000,
        buckets: int | None = None,
        check: Callable[[np.ndarray], None] | None = None,
        seed: int = 0,
    ) -> Iterator[pd.DataFrame]:
        """The events file streamed and spilled into session buckets on disk, then read back a bucket at a
        time (`session_buckets`): bounded memory on any file, sessions in any order. The sessions file is
        not read. Rows are in file order within a session (sorting and rebasing are the scorer's)."""
        from airush.abuse.data.session_buckets import session_chunks

        path = resolve_path(self.events)
        if not path.is_file():
            raise DataError("file not found", path=path)
        yield from session_chunks(path, chunk_events, buckets, check)


def _read_checked(
    path: Path, required, optional, parse: Callable[[pd.DataFrame, Path], pd.DataFrame]
) -> tuple[pd.DataFrame, int]:
    """(parsed frame in file order, row number of its first data row)."""
    frame = None if path.suffix.lower() in PARQUET else _read_typed_csv(path, required, optional)
    if frame is not None:
        try:
            return parse(frame, path), frame.attrs["first_row"]
        except DataError:
            pass  # read the text again so the message quotes the offending cell as written
    frame = read_table(path, required, optional)
    return parse(frame, path), frame.attrs["first_row"]


def _read_typed_csv(path: Path, required, optional) -> pd.DataFrame | None:
    """A well-formed CSV parsed by pyarrow with the schema's types; None when it is not (read_table explains)."""
    import pyarrow as pa
    from pyarrow import csv

    category = pa.dictionary(pa.int32(), pa.string())
    types = {
        "session_id": pa.int64(),
        "user_id": pa.int64(),
        "label": pa.int64(),
        "t_ms": pa.float64(),
        "key": pa.float64(),  # blank on mouse events
        "x": pa.float64(),
        "y": pa.float64(),
        "event": category,
        "button": category,
        "kind": pa.string(),
        "part": pa.string(),
    }
    expected = [*required, *optional]
    options = csv.ConvertOptions(column_types={c: types[c] for c in expected})
    keep_blank_lines = csv.ParseOptions(ignore_empty_lines=False)  # a blank line fails here, as in read_table
    try:
        table = csv.read_csv(path, parse_options=keep_blank_lines, convert_options=options)
        names = table.column_names
    except (pa.ArrowException, OSError, ValueError):  # ValueError: a header that is not UTF-8
        return None
    if len(set(names)) != len(names) or set(required) - set(names) or set(names) - set(expected):
        return None
    if not table.num_rows:
        return None
    frame = table.to_pandas()
    frame.attrs["first_row"] = 2  # the header is line 1
    return frame


def _parse_events(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Typed events in file order; the first bad cell of the first bad column (schema order) raises."""
    session_id = integer_column(frame, "session_id", path)
    t_ms = as_float(frame["t_ms"])
    fail_where(frame, ~np.isfinite(t_ms), "t_ms", path, "a finite number")
    event = _codes(frame, "event", EVENT_KINDS, path)
    is_key = np.isin(event, [EVENT_KINDS.index(k) for k in KEY_EVENTS])
    key = integer_column(frame, "key", path, missing=-1)
    bad_key = (key > KEY_MAX) | (is_key & (key < 0))
    fail_where(
        frame, bad_key, "key", path, f"a key code 0..{KEY_MAX} on key events (blank or -1 on mouse events)"
    )
    x, y = (_coordinate(frame, axis, is_key, event, path) for axis in ("x", "y"))
    button = _codes(frame, "button", BUTTONS, path)
    return pd.DataFrame(
        {
            "session_id": session_id,
            "t_ms": t_ms,
            "event": pd.Categorical.from_codes(event, EVENT_KINDS),
            "key": np.where(is_key, key, -1).astype(np.int16),
            "x": np.where(is_key, np.nan, x).astype(np.float32),
            "y": np.where(is_key, np.nan, y).astype(np.float32),
            "button": pd.Categorical.from_codes(button, BUTTONS),
        }
    )


def _parse_sessions(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    session_id = integer_column(frame, "session_id", path)
    user_id = integer_column(frame, "user_id", path)
    label = as_float(frame["label"])
    fail_where(frame, ~np.isin(label, (0.0, 1.0)), "label", path, "0 (human) or 1 (bot/intruder)")
    label = label.astype(np.int8)
    kind = _kinds(frame, label, path)
    repeated = pd.Series(session_id).duplicated().to_numpy()
    if repeated.any():
        i = int(np.flatnonzero(repeated)[0])
        first_row = frame.attrs["first_row"]
        original = int(np.flatnonzero(session_id == session_id[i])[0]) + first_row
        raise DataError(
            f"session {session_id[i]} is listed twice (first at row {original}); expected one row per session",
            path=path,
            row=i + first_row,
            column="session_id",
        )
    sessions = pd.DataFrame({"session_id": session_id, "user_id": user_id, "label": label, "kind": kind})
    if "part" in frame:
        part = frame["part"].astype(str).str.strip().reset_index(drop=True)
        fail_where(frame, ~part.isin(PARTS).to_numpy(), "part", path, " or ".join(PARTS))
        sessions["part"] = part.astype(str)
    return sessions


def _kinds(frame: pd.DataFrame, label: np.ndarray, path: Path) -> pd.Series:
    default = pd.Series(np.where(label == 1, POSITIVE, HUMAN)).astype(str)
    if "kind" not in frame:
        return default
    blank = frame["kind"].isna().to_numpy()
    text = frame["kind"].astype(str).str.strip().reset_index(drop=True)
    blank = blank | (text == "").to_numpy()
    named = ~blank & text.str.fullmatch(KIND_PATTERN).fillna(False).to_numpy(bool)
    human = (text == HUMAN).to_numpy()
    fail_where(frame, ~blank & ~named, "kind", path, "a kind name made of letters, digits, _ . -")
    fail_where(
        frame, ~blank & (label == 0) & ~human, "kind", path, f"'{HUMAN}' or blank on a label 0 session"
    )
    fail_where(
        frame,
        human & (label == 1),
        "kind",
        path,
        f"a bot kind, or blank for '{POSITIVE}', on a label 1 session",
    )
    return text.where(~blank, default).astype(str)


def _codes(frame: pd.DataFrame, column: str, allowed, path: Path) -> np.ndarray:
    """Index into `allowed` of each cell (surrounding spaces ignored), looked up once per distinct value."""
    codes, uniques = pd.factorize(frame[column])
    names = pd.Index(np.asarray(uniques, dtype=object)).astype(str).str.strip()
    lookup = np.r_[pd.Index(allowed).get_indexer(names), -1]  # blank cells have code -1: the last entry
    out = lookup[codes].astype(np.int8)
    fail_where(frame, out < 0, column, path, f"one of {', '.join(allowed)}")
    return out


def _coordinate(
    frame: pd.DataFrame, axis: str, is_key: np.ndarray, event: np.ndarray, path: Path
) -> np.ndarray:
    """px as float64: any cell a number or blank; on mouse events finite and within COORD_RANGE."""
    value = as_float(frame[axis])
    blank = blank_cells(frame[axis])
    lo, hi = COORD_RANGE
    not_number = np.isnan(value) & ~blank
    not_finite = ~is_key & ~np.isfinite(value)
    outside = ~is_key & ((value < lo) | (value > hi))
    bad = not_number | not_finite | outside
    if bad.any():
        i = int(np.argmax(bad))
        kind = EVENT_KINDS[event[i]]
        if not_number[i]:
            expected = "a number (or a blank cell on key events)"
        elif not_finite[i]:
            expected = f"a finite number on a {kind} event (blank only on key events)"
        else:
            expected = f"screen px within [{lo:g}, {hi:g}] on a {kind} event"
        fail_where(frame, bad, axis, path, expected)
    return value


def _session_order(events: pd.DataFrame, path: Path, first_row: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Events sorted by session (file order kept inside each), each session starting at t_ms 0, and the file
    row of each sorted event. Refuses repeated rows and time going backwards inside a session."""
    _no_repeated_rows(events, path, first_row)
    session = events["session_id"].to_numpy()
    order = np.argsort(session, kind="stable")
    s, t = session[order], events["t_ms"].to_numpy()[order]
    same = s[1:] == s[:-1]
    backwards = np.flatnonzero(same & (t[1:] < t[:-1]))
    if len(backwards):
        k = backwards[np.argmin(order[backwards + 1])]  # the first such row in the file
        raise DataError(
            f"time goes backwards in session {s[k]}: {float(t[k + 1])!r} ms after {float(t[k])!r} ms at row "
            f"{order[k] + first_row}; expected each session's rows in time order",
            path=path,
            row=int(order[k + 1]) + first_row,
            column="t_ms",
        )
    starts = np.flatnonzero(np.r_[True, ~same])
    start_ms = np.repeat(t[starts], np.diff(np.r_[starts, len(t)]))
    events = events.iloc[order].reset_index(drop=True)
    events["t_ms"] = t - start_ms
    return events, order + first_row


def _no_repeated_rows(events: pd.DataFrame, path: Path, first_row: int) -> None:
    """Row hashes find candidates fast; each candidate is then compared with the hash's first row exactly."""
    codes, _ = pd.factorize(pd.util.hash_pandas_object(events, index=False))
    candidates = np.flatnonzero(pd.Series(codes).duplicated().to_numpy())
    if not len(candidates):
        return
    _, first_of_code = np.unique(codes, return_index=True)
    original = first_of_code[codes[candidates]]
    equal = np.ones(len(candidates), dtype=bool)
    for column in events:
        a, b = (events[column].to_numpy()[rows] for rows in (candidates, original))
        equal &= (a == b) | (pd.isna(a) & pd.isna(b))
    if equal.any():
        i = int(np.argmax(equal))
        raise DataError(
            f"repeats row {original[i] + first_row} exactly (same {', '.join(events.columns)}); "
            "expected each event once",
            path=path,
            row=int(candidates[i]) + first_row,
        )


def _check_sessions_match(
    events: pd.DataFrame,
    event_rows: np.ndarray,
    events_path: Path,
    sessions: pd.DataFrame,
    sessions_path: Path,
    sessions_first_row: int,
) -> None:
    """Every event's session is listed and every listed session has events."""
    listed = sessions["session_id"].to_numpy()
    session = events["session_id"].to_numpy()
    unlisted = ~np.isin(session, listed)
    if unlisted.any():
        i = np.flatnonzero(unlisted)[np.argmin(event_rows[unlisted])]  # the first such row in the file
        n_sessions = len(np.unique(session[unlisted]))
        raise DataError(
            f"session {session[i]} is not in the sessions file {sessions_path.name} ({n_sessions} such "
            f"session(s), {int(unlisted.sum())} event(s)); expected every event's session listed there",
            path=events_path,
            row=int(event_rows[i]),
            column="session_id",
        )
    empty = ~np.isin(listed, session)
    if empty.any():
        i = int(np.argmax(empty))
        raise DataError(
            f"session {listed[i]} has no events in {events_path.name} ({int(empty.sum())} such session(s)); "
            "expected events for every listed session",
            path=sessions_path,
            row=i + sessions_first_row,
            column="session_id",
        )
