"""The Aalto 136M Keystrokes data set (Dhakal et al., CHI 2018) in its published layout: a folder of tab-separated
files, one per participant (`<id>_keystrokes.txt`; `*.tsv` are read too), sorted by name, each with the header
PARTICIPANT_ID TEST_SECTION_ID SENTENCE USER_INPUT KEYSTROKE_ID PRESS_TIME RELEASE_TIME LETTER KEYCODE and one
row per key press (PRESS_TIME/RELEASE_TIME in epoch ms). Every row is a person typing a given sentence, so
every session is human (label 0): a test set of real people for a detector trained elsewhere.

Each press becomes a key_down at PRESS_TIME and a key_up at RELEASE_TIME, key = KEYCODE (the browser's key
code). A session is one TEST_SECTION_ID (one typed sentence, `session_by="section"`) or all of a participant's
sentences (`session_by="participant"`, session_id = PARTICIPANT_ID); t_ms counts from the session's first
press. At equal times a key_down comes before a key_up (so a zero-length hold stays down-then-up), and rows of
one kind keep their file order. SENTENCE, USER_INPUT and LETTER spell what people typed: they are never read
into the log (KEYSTROKE_ID is not needed either).

Rules, and why they refuse rather than drop: the sample in ../shared/data/aalto-keystrokes-sample breaks none
of them (3,802 presses: no missing or non-numeric time, no release before its press, key codes 8..222, one
participant per section), so a row that does is a damaged or different file, and a user should see where
(file, row, column) rather than get quietly different counts. Refused:
- a line whose number of tab-separated fields differs from the header's (a tab inside a sentence would shift
  every later column: PRESS_TIME would silently read KEYSTROKE_ID), a blank line, a missing column;
- a PRESS_TIME or RELEASE_TIME that is not a finite number, a RELEASE_TIME before its PRESS_TIME;
- a KEYCODE that is not a whole number in 0..32767 (the schema's key is int16; browser key codes are < 256);
- a PARTICIPANT_ID or TEST_SECTION_ID that is not a whole number >= 0, a section typed by two participants or
  found in two files;
- an empty folder, an empty file, a file with a header but no rows.
Quotes are plain characters (LETTER is `"` when someone types one), and bytes that are not UTF-8 are
replaced, since they can only sit in the text columns, which are not read.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, HUMAN, EventLog, EventSource
from airush.abuse.data.events import KEY_MAX
from airush.data.inputs import resolve_path
from airush.data.tables import as_float, fail_where, integer_column
from airush.errors import DataError
from airush.model import one_of

HEADER = ("PARTICIPANT_ID", "TEST_SECTION_ID", "SENTENCE", "USER_INPUT", "KEYSTROKE_ID", "PRESS_TIME",
          "RELEASE_TIME", "LETTER", "KEYCODE")  # fmt: skip
USED = ("PARTICIPANT_ID", "TEST_SECTION_ID", "PRESS_TIME", "RELEASE_TIME", "KEYCODE")
PATTERNS = ("*_keystrokes.txt", "*.tsv")
SESSION_BY = ("section", "participant")
SET_ROOT = "set data.root=..., or task.test_data.root=... for a test set"


@dataclass
class AaltoKeystrokes(EventSource):
    inputs: ClassVar[dict[str, str]] = {"root": "folder"}  # paths the CLI checks first (airush.data.inputs)
    ranges: ClassVar[dict[str, str]] = {"session_by": one_of(SESSION_BY), "max_files": ">= 1"}

    root: str
    session_by: str = "section"  # section: one session per typed sentence; participant: one per person
    max_files: int | None = None  # the first files by name (e.g. for a quick run on the full data set)

    def load(self, seed: int = 0, stages=None) -> EventLog:
        root = resolve_path(self.root)
        if not root.is_dir():
            raise DataError(f"folder not found ({SET_ROOT})", path=root)
        files = keystroke_files(root)[: self.max_files]
        bar = stages.stage("parse Aalto", total=len(files)) if stages else None
        presses, seen = [], {}
        for path in files:
            frame = read_keystrokes(path)
            check_sections(frame, path, seen)
            presses.append(frame)
            if bar is not None:
                bar.advance()
        return key_events(pd.concat(presses, ignore_index=True), self.session_by)


def keystroke_files(root: Path) -> list[Path]:
    files = sorted({path for pattern in PATTERNS for path in root.glob(pattern) if path.is_file()})
    if not files:
        raise DataError(f"no {' or '.join(PATTERNS)} files ({SET_ROOT})", path=root)
    return files


def read_keystrokes(path: Path) -> pd.DataFrame:
    """One file's presses: participant, section (int64), press, release (float64 epoch ms), key (int16)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot be read: {err.strerror or err}", path=path) from None
    lines = raw.split(b"\n")
    if lines and not lines[-1].strip():  # the newline that ends the last line
        lines.pop()
    if not lines or not lines[0].strip():
        raise DataError("is empty", path=path)
    header = [column_name(name) for name in lines[0].decode("utf-8", "replace").split("\t")]
    missing = [name for name in USED if name not in header]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; expected the columns {' '.join(HEADER)}",
            path=path,
            row=1,
        )
    if len(lines) == 1:
        raise DataError("has a header but no data rows", path=path)
    tabs = np.fromiter((line.count(b"\t") for line in lines), np.int64, len(lines))
    wrong = tabs != tabs[0]
    if wrong.any():
        i = int(np.argmax(wrong))
        raise DataError(
            f"expected {tabs[0] + 1} tab-separated fields as in the header, got {tabs[i] + 1}",
            path=path,
            row=i + 1,
        )
    frame = pd.read_csv(
        io.BytesIO(raw),
        sep="\t",
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
        index_col=False,
        usecols=lambda name: column_name(name) in USED,
        encoding="utf-8",
        encoding_errors="replace",
    )
    frame.columns = [column_name(name) for name in frame.columns]
    frame.attrs["first_row"] = 2  # the header is line 1
    press, release = (as_float(frame[column]) for column in ("PRESS_TIME", "RELEASE_TIME"))
    fail_where(frame, ~np.isfinite(press), "PRESS_TIME", path, "a finite time in ms")
    fail_where(frame, ~np.isfinite(release), "RELEASE_TIME", path, "a finite time in ms")
    fail_where(frame, release < press, "RELEASE_TIME", path, "a time at or after the row's PRESS_TIME")
    code = as_float(frame["KEYCODE"])
    fine = np.isfinite(code) & (code == np.round(code)) & (code >= 0) & (code <= KEY_MAX)
    fail_where(frame, ~fine, "KEYCODE", path, f"a key code, a whole number in 0..{KEY_MAX}")
    return pd.DataFrame(
        {
            "participant": integer_column(frame, "PARTICIPANT_ID", path, min_value=0),
            "section": integer_column(frame, "TEST_SECTION_ID", path, min_value=0),
            "press": press,
            "release": release,
            "key": code.astype(np.int16),
        }
    )


def column_name(text: str) -> str:
    return text.strip().lstrip("\ufeff").strip()  # a byte-order mark, a Windows line end


def check_sections(frame: pd.DataFrame, path: Path, seen: dict[int, Path]) -> None:
    """Each section is one participant's and in one file; `seen` (section -> file) grows with this file's."""
    section, participant = frame["section"].to_numpy(), frame["participant"].to_numpy()
    first = pd.Series(participant).groupby(section).transform("first").to_numpy()
    if (participant != first).any():
        i = int(np.argmax(participant != first))
        raise DataError(
            f"section {section[i]} is typed by participants {first[i]} and {participant[i]}: "
            "a TEST_SECTION_ID is one participant's sentence",
            path=path,
            row=i + 2,
            column="TEST_SECTION_ID",
        )
    sections, rows = np.unique(section, return_index=True)
    for value, i in zip(sections.tolist(), rows.tolist(), strict=True):
        if value in seen:
            raise DataError(
                f"section {value} is also in {seen[value]}", path=path, row=i + 2, column="TEST_SECTION_ID"
            )
        seen[value] = path


def key_events(presses: pd.DataFrame, session_by: str) -> EventLog:
    """Presses -> the event log: key_downs then key_ups, sorted by session, time and that order."""
    by = "section" if session_by == "section" else "participant"
    session = presses[by].to_numpy(np.int64)
    n = len(presses)
    sessions_2 = np.concatenate([session, session])
    t = np.concatenate([presses["press"].to_numpy(), presses["release"].to_numpy()])
    order = np.lexsort((np.arange(2 * n), t, sessions_2))  # ties: key_downs first, each in file order
    sessions_2, t = sessions_2[order], t[order]
    starts = np.flatnonzero(np.r_[True, sessions_2[1:] != sessions_2[:-1]])
    t_start = np.repeat(t[starts], np.diff(np.r_[starts, len(t)]))  # the session's first press
    event = np.repeat(np.array([EVENT_KINDS.index("key_down"), EVENT_KINDS.index("key_up")], np.int8), n)
    key = presses["key"].to_numpy(np.int16)
    events = pd.DataFrame(
        {
            "session_id": sessions_2,
            "t_ms": (t - t_start).astype(np.float64),
            "event": pd.Categorical.from_codes(event[order], categories=EVENT_KINDS),
            "key": np.concatenate([key, key])[order],
            "x": np.full(2 * n, np.nan, np.float32),
            "y": np.full(2 * n, np.nan, np.float32),
            "button": pd.Categorical.from_codes(np.zeros(2 * n, np.int8), categories=BUTTONS),
        }
    )
    owners = (
        pd.DataFrame({"session_id": session, "user_id": presses["participant"].to_numpy(np.int64)})
        .drop_duplicates("session_id")
        .sort_values("session_id", ignore_index=True)
    )
    table = owners.assign(label=np.int8(0), kind=HUMAN)
    table = table.astype({"session_id": np.int64, "user_id": np.int64, "label": np.int8})
    return EventLog(events, table[["session_id", "user_id", "label", "kind"]])
