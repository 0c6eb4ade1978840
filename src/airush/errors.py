"""Mistakes a user can fix. The CLI prints them as one line and exits 2; anything else is our bug."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path


class UserError(Exception):
    """A problem with the user's config or data, explained in one line."""

    exit_code = 2


class SweepFailed(UserError):
    """A sweep ran but produced nothing to choose from (every trial failed): one line, exit 1."""

    exit_code = 1


class EnvironmentFailure(UserError):
    """The machine refused (disk full, read-only, permission denied): one line, exit 1."""

    exit_code = 1


class ConfigError(UserError):
    """The composed config asks for something that cannot run."""


class DataError(UserError):
    """Input data does not match its documented schema.

    The message names the file, row and column, and what was expected.
    """

    def __init__(
        self, message: str, *, path: str | None = None, row: int | None = None, column: str | None = None
    ):
        where = ", ".join(
            part
            for part in (
                str(path) if path is not None else None,
                f"row {row}" if row is not None else None,
                f"column '{column}'" if column is not None else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


# What the machine refused, not the user's input nor our bug: one line, exit 1.
_ENVIRONMENT_ERRNOS = {
    28: "no space left on the device (disk full)",  # ENOSPC
    122: "disk quota exceeded",  # EDQUOT
    30: "read-only file system",  # EROFS
    13: "permission denied",  # EACCES
    1: "operation not permitted",  # EPERM
}
_SQLITE_MESSAGES = {
    "database or disk is full": "no space left on the device (disk full)",
    "attempt to write a readonly database": "read-only database file",
    "unable to open database file": "cannot open the database file (missing folder or no permission)",
}


def causes(err: BaseException | None) -> Iterator[BaseException]:
    """The exception, then what caused it (explicitly or while handling it), each once."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def environment_error_line(err: BaseException, places: Iterable[str | os.PathLike] = ()) -> str | None:
    """One line for a failure of the environment (disk full, read-only, permission denied) anywhere in the
    exception's chain, naming the file when the system said which, else (a full disk) which of `places`
    (where the failed process writes: its run dir, its store) has no room left; None for anything else.
    Never includes SQL statements or their parameter values."""
    for link in causes(err):
        if isinstance(link, OSError) and link.errno in _ENVIRONMENT_ERRNOS:
            where = link.filename or getattr(link, "filename2", None)
            if where:
                return f"cannot write {where}: {_ENVIRONMENT_ERRNOS[link.errno]}"
            full = full_places(places) if link.errno in (28, 122) else []
            if full:
                return f"{_ENVIRONMENT_ERRNOS[link.errno]}: {', '.join(full)}"
            return _ENVIRONMENT_ERRNOS[link.errno]
        if type(link).__name__ == "OperationalError" and type(link).__module__ in ("sqlite3", "_sqlite3"):
            text = str(link).strip().lower()
            for needle, meaning in _SQLITE_MESSAGES.items():
                if needle in text:
                    return f"MLflow database: {meaning}"
    return None


FULL_BYTES = 1 << 20  # a filesystem with less room than this is the full one


def full_places(places: Iterable[str | os.PathLike]) -> list[str]:
    """`places` (or their nearest existing parent) on a filesystem with under FULL_BYTES free, each once."""
    import shutil

    full, seen = [], set()
    for place in places:
        if str(place) in seen:
            continue
        seen.add(str(place))
        path = Path(place).absolute()
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if free < FULL_BYTES:
            full.append(f"{place} ({free // 1024} KiB free)")
    return full
