"""Files holding one JSON array of records, streamed a batch at a time, read into typed columns.

`json_record_batches` yields lists of records without ever holding the whole file as Python objects; a
`Batch` turns one key of its records into a list or int64 array, refusing the first record whose value has
the wrong type with one line naming the file, the record (counted from 1, in file order) and the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from operator import methodcaller
from pathlib import Path
from typing import NoReturn

import numpy as np

from airush.errors import DataError

BATCH_RECORDS = 20_000
CHUNK_CHARS = 1 << 22
MISSING = object()  # a key absent from a record (null is a value, MISSING is not)


def json_record_batches(path: Path) -> Iterator[tuple[int, list[dict]]]:
    """(index of the batch's first record, records) for a file holding one JSON array of objects."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        with open(path, encoding="utf-8") as handle:
            reader, batch, first = ArrayReader(handle, path), [], 0
            for record in reader.records():
                batch.append(record)
                if len(batch) == BATCH_RECORDS:
                    yield first, batch
                    first, batch = first + len(batch), []
            if batch:
                yield first, batch
            elif not first:
                raise DataError("has no records (an empty JSON array)", path=path)
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text: {err.reason}", path=path) from None


class ArrayReader:
    """Streams the records of `[{...}, {...}]` through json's own decoder, a bounded text window at a time."""

    decoder = json.JSONDecoder()
    space = re.compile(r"[ \t\n\r]*")
    next_record = re.compile(r"[ \t\n\r]*,[ \t\n\r]*(?=\{)")  # the common case, one match per record

    def __init__(self, handle, path: Path) -> None:
        self.handle, self.path = handle, path
        self.text, self.pos, self.lines_before, self.eof = "", 0, 0, False

    def refill(self, at_least: int = 0) -> bool:
        """Append at least CHUNK_CHARS (or `at_least`) more characters; False, text untouched, at the end."""
        more = "" if self.eof else self.handle.read(max(at_least, CHUNK_CHARS))
        if not more:
            self.eof = True
            return False
        self.lines_before += self.text.count("\n", 0, self.pos)
        self.text, self.pos = self.text[self.pos :] + more, 0
        return True

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the file)."""
        while True:
            self.pos = self.space.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self.refill():
                return self.text[self.pos : self.pos + 1]

    def fail(self, message: str, pos: int) -> NoReturn:
        line = self.lines_before + self.text.count("\n", 0, pos) + 1
        col = pos - self.text.rfind("\n", 0, pos)
        raise DataError(f"malformed JSON at line {line} column {col}: {message}", path=self.path)

    def records(self) -> Iterator[dict]:
        start = self.peek()
        if start != "[":
            raise DataError("is empty" if not start else "expected a JSON array of records", path=self.path)
        self.pos += 1
        index, end = 0, self.peek()
        while end != "]":
            if end != "{":
                got = "the end of the file" if not end else repr(self.text[self.pos : self.pos + 20])
                raise DataError(f"record {index + 1}: expected a JSON object, got {got}", path=self.path)
            if len(self.text) - self.pos < CHUNK_CHARS // 4:
                self.refill()  # keep a whole record in the window, so a failed decode means bad JSON
            while True:
                try:
                    record, self.pos = self.decoder.raw_decode(self.text, self.pos)
                    break
                except json.JSONDecodeError as err:
                    if not self.refill(at_least=len(self.text)):  # a record bigger than the window
                        self.fail(err.msg, err.pos)
                except RecursionError:  # json's decoder recurses once per level of nesting
                    self.fail("a value nested too deeply", self.pos)
            yield record
            index += 1
            following = self.next_record.match(self.text, self.pos)
            if following:
                self.pos, end = following.end(), "{"
                continue
            end = self.peek()
            if end == ",":
                self.pos += 1
                end = self.peek()
                if end == "]":
                    self.fail("trailing comma before ']'", self.pos)
            elif end != "]":
                self.fail("expected ',' or ']' after a record", self.pos)
        self.pos += 1
        if self.peek():
            self.fail("extra data after the array", self.pos)


@dataclass
class Batch:
    path: Path
    first: int  # index of records[0] in the file
    records: list[dict]
    ids: list | None = None  # once read: shown next to record numbers

    def where(self, i: int) -> str:
        shown = "" if self.ids is None else f" (id {self.ids[i]})"
        return f"record {self.first + i + 1}{shown}"

    def column(self, key: str, types: tuple, expected: str) -> list:
        """records[i][key] for every record; each value's exact type in `types` (bool is no int here)."""
        values = list(map(methodcaller("get", key, MISSING), self.records))
        if not set(map(type, values)) <= set(types):  # MISSING's type is never allowed
            i = _first_not_of(values, types)
            if values[i] is MISSING:
                raise DataError(f"{self.where(i)}: missing key '{key}'", path=self.path)
            raise DataError(
                f"{self.where(i)}, key '{key}': expected {expected}, got {_show(values[i])}", path=self.path
            )
        return values

    def ragged(self, key: str, item_types: tuple, expected: str, encode) -> tuple[np.ndarray, np.ndarray]:
        """A key holding lists, as (encode(flat values, count, key, rows), lengths)."""
        values = self.column(key, (list,), f"a list of {expected}")
        if not set(map(type, chain.from_iterable(values))) <= set(item_types):
            i = next(i for i, v in enumerate(values) if _first_not_of(v, item_types) is not None)
            bad = values[i][_first_not_of(values[i], item_types)]
            raise DataError(
                f"{self.where(i)}, key '{key}': expected a list of {expected}, got an element {_show(bad)}",
                path=self.path,
            )
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        return encode(chain.from_iterable(values), int(lengths.sum()), key, values), lengths

    def int64(self, flat, count: int, key: str, rows: list) -> np.ndarray:
        """Python ints (or their lists, flattened) as int64; ids beyond 64 bits are refused."""
        try:
            return np.fromiter(flat, dtype=np.int64, count=count)
        except OverflowError:
            fits = lambda v: all(map(_fits_int64, v)) if type(v) is list else _fits_int64(v)  # noqa: E731
            i = next(i for i, v in enumerate(rows) if not fits(v))
            raise DataError(f"{self.where(i)}, key '{key}': an id beyond 64 bits", path=self.path) from None


def _fits_int64(value: int | None) -> bool:
    return value is None or -(2**63) <= value < 2**63


def _first_not_of(values: list, types: tuple) -> int | None:
    return next((i for i, v in enumerate(values) if type(v) not in types), None)


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
