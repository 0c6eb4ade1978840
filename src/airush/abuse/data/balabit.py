"""The Balabit Mouse Dynamics Challenge folder as published: training_files/userN/session_*,
test_files/userN/session_*, public_labels.csv (filename,is_illegal).

Training sessions are the account owner's (label 0, part "train"); test sessions with a public label keep
it (1 = someone else used the account, part "test"); unlabelled test sessions are left out. Quirks:
- times: `client timestamp` in seconds, quantised to ~15.6 ms (Windows timer), made ms; rows are kept in
  file order, which is time order;
- x/y sentinels up to 65535 (remote-desktop artefacts) are dropped, not clipped: no screen is that wide (nor
  that far left or up); a session left without events is refused;
- state Move/Drag -> move/drag, Pressed/Released -> button_down/up, Down/Up (button Scroll) -> wheel.
Parsing 1.7k files takes ~10 s, so the result is cached as Parquet under `cache_dir`, keyed by a hash of
the source files' names, sizes and contents: a changed file means a new cache, never a stale one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, EventLog, EventSource
from airush.data.inputs import resolve_path
from airush.data.tables import as_float, fail_where, integer_column, read_table
from airush.errors import DataError

HEADER = ["record timestamp", "client timestamp", "button", "state", "x", "y"]
SENTINEL_PX = 16384  # coordinates this large (either sign) are remote-desktop artefacts
STATE_EVENT = {"Move": "move", "Drag": "drag", "Pressed": "button_down", "Released": "button_up",
               "Down": "wheel", "Up": "wheel"}  # fmt: skip
BUTTON = {
    "NoButton": "none",
    "Left": "left",
    "Right": "right",
    "Middle": "middle",
    "XButton": "x",
    "Scroll": "none",
}


@dataclass
class BalabitMouse(EventSource):
    inputs: ClassVar[dict[str, str]] = {"root": "folder"}  # paths the CLI checks first (airush.data.inputs)
    ranges: ClassVar[dict[str, str]] = {"users": ">= 0", "max_test_sessions": ">= 1"}

    root: str
    cache_dir: str | None = None
    users: list[int] | None = None  # a subset of accounts (e.g. for a quick CI run)
    max_test_sessions: int | None = None  # per account, the first ones by file name

    def load(self, seed: int = 0, stages=None) -> EventLog:
        root = resolve_path(self.root)
        for part in ("training_files", "test_files", "public_labels.csv"):
            if not (root / part).exists():
                raise DataError(f"not a Balabit folder: {part} missing (set data.root=...)", path=root)
        files = self._files(root)
        cache = None
        if self.cache_dir:  # hashing ~200 MB only pays off when there is a cache to key
            digest = files_digest(root, [path for path, _ in files])
            cache = resolve_path(self.cache_dir) / f"balabit-{digest[:20]}"
        if cache is not None and (cache / "events.parquet").exists():
            return EventLog(
                pd.read_parquet(cache / "events.parquet"), pd.read_parquet(cache / "sessions.parquet")
            )
        bar = stages.stage("parse Balabit", total=len(files)) if stages else None
        log = parse_sessions(files, bar)
        if cache is not None:
            write_cache(cache, log)
        return log

    def _files(self, root: Path) -> list[tuple[Path, dict]]:
        is_illegal = read_labels(root / "public_labels.csv")
        files = []
        for part, folder in (("train", "training_files"), ("test", "test_files")):
            for user, user_dir in numbered(root / folder, "user", "folder"):
                if self.users is not None and user not in self.users:
                    continue
                sessions = sorted(  # by file name, as published
                    path
                    for _, path in numbered(user_dir, "session_", "file")
                    if part == "train" or path.name in is_illegal
                )
                if part == "test" and self.max_test_sessions is not None:
                    sessions = sessions[: self.max_test_sessions]
                for path in sessions:
                    label = is_illegal.get(path.name, 0) if part == "test" else 0
                    files.append((path, {"user_id": user, "label": label, "part": part}))
        if not files:
            raise DataError(f"no sessions found for users {self.users}", path=root)
        return files


def read_labels(path: Path) -> dict[str, int]:
    """file name -> is_illegal (0/1), each file named once."""
    labels = read_table(path, ["filename", "is_illegal"])
    first_row = labels.attrs["first_row"]
    names = labels["filename"].astype(str).str.strip()
    repeated = names.duplicated().to_numpy()
    if repeated.any():
        i = int(np.argmax(repeated))
        raise DataError(f"{names[i]} is listed twice", path=path, row=i + first_row, column="filename")
    is_illegal = integer_column(labels, "is_illegal", path)
    fail_where(labels, ~np.isin(is_illegal, (0, 1)), "is_illegal", path, "0 or 1")
    return dict(zip(names, is_illegal.tolist(), strict=True))


def numbered(folder: Path, prefix: str, kind: str) -> list[tuple[int, Path]]:
    """(number, path) of `folder`'s entries named prefix + digits (user7, session_0041905381), by number;
    another entry starting with the prefix is refused."""
    found = []
    for path in folder.glob(f"{prefix}*"):
        digits = path.name[len(prefix) :]
        is_kind = path.is_dir() if kind == "folder" else path.is_file()
        if not (digits.isascii() and digits.isdigit() and int(digits) < 2**63) or not is_kind:
            raise DataError(f"expected a {kind} named {prefix}<digits>, as Balabit names them", path=path)
        found.append((int(digits), path))
    return sorted(found)


def files_digest(root: Path, paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root)}:{path.stat().st_size}:".encode())
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha1").digest())
    return digest.hexdigest()


def parse_sessions(files: list[tuple[Path, dict]], bar=None) -> EventLog:
    frames, sessions, seen = [], [], {}
    for path, meta in files:
        session_id = int(path.name.removeprefix("session_"))
        if session_id in seen:
            raise DataError(f"session {session_id} is also in {seen[session_id]}", path=path)
        seen[session_id] = path
        frame = read_session(path)
        frame["session_id"] = session_id
        frames.append(frame)
        sessions.append({"session_id": session_id, **meta})
        if bar is not None:
            bar.advance()
    raw = pd.concat(frames, ignore_index=True)
    keep = (raw["x"].abs() < SENTINEL_PX) & (raw["y"].abs() < SENTINEL_PX)
    raw = raw[keep.to_numpy()]
    left = set(raw["session_id"].unique().tolist())
    emptied = [path for session, path in seen.items() if session not in left]
    if emptied:
        raise DataError(
            f"every row's x or y is beyond {SENTINEL_PX} px (an artefact): no events", path=emptied[0]
        )
    event = raw["state"].map(STATE_EVENT)
    button = raw["button"].map(BUTTON)
    events = pd.DataFrame(
        {
            "session_id": raw["session_id"].to_numpy(np.int64),
            "t_ms": raw["client timestamp"].to_numpy(np.float64) * 1000.0,
            "event": pd.Categorical(event.to_numpy(), categories=EVENT_KINDS),
            "key": np.full(len(raw), -1, np.int16),
            "x": raw["x"].to_numpy(np.float32),
            "y": raw["y"].to_numpy(np.float32),
            "button": pd.Categorical(button.to_numpy(), categories=BUTTONS),
        }
    )
    events = events.sort_values(["session_id", "t_ms"], kind="stable", ignore_index=True)
    table = pd.DataFrame(sessions).sort_values("session_id", ignore_index=True)
    table["kind"] = np.where(table["label"] == 1, "intruder", "owner")
    table = table.astype({"session_id": np.int64, "user_id": np.int64, "label": np.int8})
    return EventLog(events, table[["session_id", "user_id", "label", "kind", "part"]])


def read_session(path: Path) -> pd.DataFrame:
    """One session file: the published header, finite numbers for time and x/y, known states and buttons."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError("is empty", path=path) from None
    except (ValueError, OSError) as err:  # a line of more fields than the header, not UTF-8, a folder
        raise DataError(f"cannot be read: {str(err).strip().splitlines()[0]}", path=path) from None
    if list(frame.columns) != HEADER:
        raise DataError(f"unexpected header {list(frame.columns)}; expected {HEADER}", path=path, row=1)
    if frame.empty:
        raise DataError("has a header but no data rows", path=path)
    frame.attrs["first_row"] = 2  # the header is line 1
    for column in ("client timestamp", "x", "y"):
        if not pd.api.types.is_float_dtype(frame[column]) or not np.isfinite(frame[column]).all():
            values = as_float(frame[column])
            fail_where(frame, ~np.isfinite(values), column, path, "a finite number")
            frame[column] = values
    for column, known in (("state", STATE_EVENT), ("button", BUTTON)):
        fail_where(
            frame, ~frame[column].isin(list(known)).to_numpy(), column, path, f"one of {', '.join(known)}"
        )
    return frame


def write_cache(cache: Path, log: EventLog) -> None:
    """Write to a temporary folder, then rename: a run killed mid-write leaves no half cache."""
    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    log.events.to_parquet(tmp / "events.parquet", index=False)
    log.sessions.to_parquet(tmp / "sessions.parquet", index=False)
    try:
        tmp.rename(cache)
    except OSError:  # another process wrote it first
        for child in tmp.iterdir():
            child.unlink()
        tmp.rmdir()
