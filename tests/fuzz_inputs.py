"""A seeded generator of malformed input files, for tests/test_fuzz.py.

Each case starts from a small valid input of one loader and applies one mutation to one of its files: a
column dropped, added, renamed or repeated; a cell NaN, inf, negative, huge, text, blank or fractional; an
unknown name; an empty, header-only, binary, UTF-16 or cut-off file; a short, long, repeated or blank row;
rows shuffled; a wrong separator, BOM, CRLF or stray quote; a wrong suffix; Parquet with the wrong types;
malformed JSON. `Case.kind` names the mutation: the fuzz table counts tried / held per kind. The same seed
gives the same cases (`random.Random` seeded with text is stable across runs and machines).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Table:
    """A delimited text file as its cells: what the mutations edit."""

    header: list[str] | None  # None: a file without a header line
    rows: list[list[str]]
    sep: str = ","
    encoding: str = "utf-8"
    categorical: tuple[str, ...] = ()  # columns holding names from a fixed set
    ids: tuple[str, ...] = ()  # columns whose values must be unique
    numeric: tuple[str, ...] = ()  # columns holding numbers

    def columns(self) -> list[str]:
        return self.header if self.header is not None else [str(i) for i in range(len(self.rows[0]))]

    def column_index(self, rng: random.Random, among: tuple[str, ...] = ()) -> int:
        names = self.columns()
        candidates = [i for i, name in enumerate(names) if name in among] or list(range(len(names)))
        return rng.choice(candidates)

    def text(self) -> str:
        lines = ([self.header] if self.header is not None else []) + self.rows
        if len(self.sep) > 1:  # MovieLens' "::" is no csv dialect
            return "".join(self.sep.join(line) + "\n" for line in lines)
        out = io.StringIO()
        csv.writer(out, delimiter=self.sep, lineterminator="\n").writerows(lines)
        return out.getvalue()

    def frame(self) -> pd.DataFrame:
        """Typed as a user's Parquet would be: numbers as numbers, the rest as text."""
        frame = pd.DataFrame(self.rows, columns=self.columns())
        for column in frame:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            if numbers.notna().all():
                frame[column] = numbers
        return frame


@dataclass
class Source:
    """A loader and its valid input: file name -> Table (text) or bytes; `load(paths)` runs the loader on the
    written files (file name -> path, a file's path may change with a wrong-suffix mutation)."""

    name: str
    files: dict[str, Table | bytes]
    load: Callable[[dict[str, Path], Path], object]
    parquet: tuple[str, ...] = ()  # files the loader also reads as Parquet
    folder_kinds: tuple[str, ...] = ()  # extra mutations of the folder (Balabit's layout)


@dataclass
class Case:
    """One malformed input: `write(folder)` writes the loader's files there and returns file name -> path."""

    source: str
    kind: str
    file: str  # the file the mutation edits
    write: Callable[[Path], dict[str, Path]] = field(repr=False)


# Cell values by what is wrong with them
CELLS = {
    "NaN cell": ["nan", "NaN", "NULL", "NA", "None", "<NA>", "n/a"],
    "inf cell": ["inf", "-inf", "Infinity", "1e309", "-1e309", "+inf"],
    "negative number": ["-1", "-7", "-0.5", "-9223372036854775809", "-1e300", "-0"],
    "huge number": [
        "1e30",
        "99999999999999999999999",
        "9223372036854775808",
        "9223372036854775807",
        "18446744073709551616",
        "2147483648",
        "1e308",
        "32768",
        "65536",
    ],
    "text in a number column": [
        "abc",
        "12ms",
        "ü",
        "1,5",
        "0x1F",
        "1_000",
        "true",
        "[1, 2]",
        "1e",
        "--1",
        "١٢",
    ],
    "blank cell": ["", " ", "\t"],
    "fraction for an integer": ["1.5", "0.1", "2.000000001", "1e-320", "3.0000"],
    "unknown name": ["hover", "LEFT", "Move ", "key-down", "0", "", "x y", "ünknown", "None", "human\u200b"],
    "very long cell": ["9" * 5000, "a" * 100_000],
}


def _set_cell(kind: str, rng: random.Random, t: Table) -> Table:
    among = t.categorical if kind == "unknown name" else t.numeric if kind in NUMERIC_KINDS else ()
    j = t.column_index(rng, among)
    rows = [list(r) for r in t.rows]
    value = rng.choice(CELLS[kind])
    rows[rng.randrange(len(rows))][j] = value
    return replace(t, rows=rows)


NUMERIC_KINDS = (
    "NaN cell",
    "inf cell",
    "negative number",
    "huge number",
    "text in a number column",
    "fraction for an integer",
)


def _drop_column(rng, t):
    j = t.column_index(rng)
    header = None if t.header is None else [c for i, c in enumerate(t.header) if i != j]
    return replace(t, header=header, rows=[[c for i, c in enumerate(r) if i != j] for r in t.rows])


def _extra_column(rng, t):
    name = rng.choice(["extra", "comment", "", "Unnamed: 0", t.columns()[0] + "2"])
    header = None if t.header is None else [*t.header, name]
    return replace(t, header=header, rows=[[*r, str(rng.randrange(9))] for r in t.rows])


def _rename_column(rng, t):
    if t.header is None:
        return _drop_column(rng, t)
    j = t.column_index(rng)
    old = t.header[j]
    typos = [old.upper(), old + "_", old.replace("_", ""), " " + old + "x", old[:-1] or "?", "ü" + old]
    new = rng.choice([typo for typo in typos if typo != old])
    return replace(t, header=[new if i == j else c for i, c in enumerate(t.header)])


def _repeat_column_name(rng, t):
    if t.header is None or len(t.header) < 2:
        return _extra_column(rng, t)
    i, j = rng.sample(range(len(t.header)), 2)
    return replace(t, header=[t.header[i] if k == j else c for k, c in enumerate(t.header)])


def _reorder_columns(rng, t):
    order = list(range(len(t.columns())))
    rng.shuffle(order)
    header = None if t.header is None else [t.header[i] for i in order]
    return replace(t, header=header, rows=[[r[i] for i in order] for r in t.rows])


def _mixed_types(rng, t):
    j = t.column_index(rng, t.numeric)
    rows = [list(r) for r in t.rows]
    for r in rng.sample(rows, min(len(rows), 3)):
        r[j] = rng.choice(["True", "1.0", "x", "[]", "{}", "1+2j", "0b1", "2e0"])
    return replace(t, rows=rows)


def _short_row(rng, t):
    rows = [list(r) for r in t.rows]
    i = rng.randrange(len(rows))
    rows[i] = rows[i][: rng.randrange(len(rows[i]))]
    return replace(t, rows=rows)


def _long_row(rng, t):
    rows = [list(r) for r in t.rows]
    rows[rng.randrange(len(rows))].append(rng.choice(["1", "", "extra"]))
    return replace(t, rows=rows)


def _repeat_row(rng, t):
    rows = [list(r) for r in t.rows]
    i = rng.randrange(len(rows))
    rows.insert(rng.randrange(len(rows) + 1), list(rows[i]))
    return replace(t, rows=rows)


def _repeat_id(rng, t):
    if not t.ids or len(t.rows) < 2:
        return _repeat_row(rng, t)
    j = t.column_index(rng, t.ids)
    rows = [list(r) for r in t.rows]
    a, b = rng.sample(range(len(rows)), 2)
    rows[b][j] = rows[a][j]
    return replace(t, rows=rows)


def _shuffle_rows(rng, t):
    rows = [list(r) for r in t.rows]
    rng.shuffle(rows)
    return replace(t, rows=rows)


def _blank_lines(rng, t):
    rows = [list(r) for r in t.rows]
    for _ in range(rng.randint(1, 3)):
        rows.insert(rng.randrange(len(rows) + 1), [])
    return replace(t, rows=rows)


def _one_row(rng, t):
    return replace(t, rows=[list(rng.choice(t.rows))])


def _unbalanced_quote(rng, t):
    """A quote opening a field that never closes (the csv writer would have escaped it)."""
    lines = t.text().split("\n")
    k = rng.randrange(1 if t.header is not None else 0, len(lines) - 1)
    fields = lines[k].split(t.sep)
    fields[rng.randrange(len(fields))] = '"' + fields[rng.randrange(len(fields))]
    lines[k] = t.sep.join(fields)
    return "\n".join(lines).encode(t.encoding, "replace")


def _wrong_separator(rng, t):
    sep = rng.choice([s for s in (";", "\t", "|", " ", ",") if s != t.sep])
    return replace(t, sep=sep)


def _accented(rng, t):
    rows = [list(r) for r in t.rows]
    rows[rng.randrange(len(rows))][t.column_index(rng)] = rng.choice(["é", "Beyoncé", "Ünïcødé", "naïve 7"])
    return replace(t, rows=rows)


def _bytes(transform):
    return lambda rng, t: transform(rng, t.text().encode(t.encoding))


TABLE_MUTATIONS: dict[str, Callable] = {
    **{kind: partial(_set_cell, kind) for kind in CELLS},
    "missing column": _drop_column,
    "extra column": _extra_column,
    "renamed column": _rename_column,
    "repeated column name": _repeat_column_name,
    "reordered columns (valid)": _reorder_columns,
    "mixed types in a column": _mixed_types,
    "short row": _short_row,
    "long row": _long_row,
    "repeated row": _repeat_row,
    "repeated id": _repeat_id,
    "shuffled rows": _shuffle_rows,
    "blank lines": _blank_lines,
    "a single row": _one_row,
    "unbalanced quote": _unbalanced_quote,
    "wrong separator": _wrong_separator,
    "empty file": lambda rng, t: b"",
    "header only": lambda rng, t: replace(t, rows=[]).text().encode() if t.header else b"\n",
    "binary garbage": lambda rng, t: rng.randbytes(rng.choice([1, 7, 300, 4096])),
    "UTF-16 text": lambda rng, t: t.text().encode("utf-16"),
    "latin-1 text": lambda rng, t: _accented(rng, t).text().encode("latin-1", "replace"),
    "BOM": _bytes(lambda rng, b: b"\xef\xbb\xbf" + b),
    "CRLF line ends": _bytes(lambda rng, b: b.replace(b"\n", b"\r\n")),
    "cut off mid-file": _bytes(lambda rng, b: b[: rng.randrange(1, len(b))]),
    "NUL bytes": _bytes(lambda rng, b: b[: len(b) // 2] + b"\x00\x00" + b[len(b) // 2 :]),
}


def _parquet_wrong_types(rng: random.Random, t: Table) -> bytes:
    """The table as Parquet, one column given a type a user's tool might write instead."""
    frame = t.frame()
    column = frame.columns[t.column_index(rng)]
    n = len(frame)
    variants = {
        "text": lambda: frame[column].astype(str),
        "float with NaN": lambda: pd.to_numeric(frame[column], errors="coerce").where(np.arange(n) % 2 == 0),
        "bool": lambda: pd.Series(np.arange(n) % 2 == 0),
        "datetime": lambda: pd.Series(pd.date_range("2020-01-01", periods=n, freq="s")),
        "list": lambda: pd.Series([[1, 2]] * n),
        "category": lambda: frame[column].astype(str).astype("category"),
        "bytes": lambda: pd.Series([b"\x00\xff"] * n),
        "uint64": lambda: pd.Series(np.full(n, 2**64 - 1, dtype=np.uint64)),
        "int8": lambda: pd.Series(np.full(n, -128, dtype=np.int8)),
        "float inf": lambda: pd.Series(np.full(n, np.inf)),
        "nullable int with NA": lambda: pd.Series([None, *range(n - 1)], dtype="Int64"),
        "struct": lambda: pd.Series([{"a": 1}] * n),
        "all null": lambda: pd.Series([None] * n, dtype=object),
        "zero rows": None,
    }
    name = rng.choice(list(variants))
    if variants[name] is None:
        frame = frame.iloc[:0]
    else:
        frame[column] = variants[name]()  # same RangeIndex: aligned row by row
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def table_cases(source: Source, n: int, seed: int) -> list[Case]:
    """`n` cases for a source whose files are tables: each picks a mutation, then a file."""
    kinds = list(TABLE_MUTATIONS)
    if source.parquet:
        kinds += ["Parquet with wrong types", "wrong suffix"]
    kinds += list(source.folder_kinds)
    random.Random(f"{seed}:{source.name}").shuffle(kinds)  # every kind once, then at random
    cases = []
    for i in range(n):
        rng = random.Random(f"{seed}:{source.name}:{i}")
        kind = kinds[i] if i < len(kinds) else rng.choice(kinds)
        names = [f for f, content in source.files.items() if isinstance(content, Table)]
        if kind in ("Parquet with wrong types",):
            names = list(source.parquet)
        file = rng.choice(names)
        cases.append(_table_case(source, kind, file, rng))
    return cases


def _table_case(source: Source, kind: str, file: str, rng: random.Random) -> Case:
    state = rng.random()  # the mutation's own seed: writing the case again writes the same files

    def write(folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, content in source.files.items():
            if isinstance(content, Table):
                content = content.text().encode(content.encoding, "replace")
            paths[name] = folder / name
            paths[name].parent.mkdir(parents=True, exist_ok=True)
            paths[name].write_bytes(content)
        local = random.Random(state)
        table = source.files[file]
        if kind in source.folder_kinds:
            return FOLDER_MUTATIONS[kind](local, folder, paths)
        if kind == "Parquet with wrong types":
            paths[file].unlink()
            paths[file] = paths[file].with_suffix(".parquet")
            paths[file].write_bytes(_parquet_wrong_types(local, table))
        elif kind == "wrong suffix":
            paths[file] = _wrong_suffix(local, paths[file], table)
        else:
            mutated = TABLE_MUTATIONS[kind](local, table)
            text = mutated if isinstance(mutated, bytes) else mutated.text().encode(table.encoding, "replace")
            paths[file].write_bytes(text)
        return paths

    return Case(source.name, kind, file, write)


def _wrong_suffix(rng: random.Random, path: Path, table: Table) -> Path:
    """The file under another suffix: CSV text named .parquet, Parquet named .csv, or an unknown suffix."""
    choice = rng.choice(["csv as parquet", "parquet as csv", "json", "none", "tsv"])
    target = path.with_suffix({"csv as parquet": ".parquet", "parquet as csv": ".csv", "json": ".json",
                               "none": "", "tsv": ".tsv"}[choice])  # fmt: skip
    if choice == "parquet as csv":
        out = io.BytesIO()
        table.frame().to_parquet(out, index=False)
        path.unlink()
        target.write_bytes(out.getvalue())
    else:
        path.rename(target)
    return target


# Balabit's folder layout
def _user_folder_not_a_number(rng, folder, paths):
    user = next((folder / "training_files").iterdir())
    user.rename(user.with_name(rng.choice(["userX", "user", "user_7", "user-1", "user 7"])))
    return paths


def _session_file_without_number(rng, folder, paths):
    session = next(p for p in (folder / "training_files").rglob("session_*"))
    session.rename(session.with_name(rng.choice(["session_", "session_x", "session_.csv"])))
    return paths


def _same_session_twice(rng, folder, paths):
    users = sorted((folder / "training_files").iterdir())
    session = next(users[0].glob("session_*"))
    (users[-1] / session.name).write_bytes(session.read_bytes())
    return paths


def _part_missing(rng, folder, paths):
    target = rng.choice(["training_files", "test_files", "public_labels.csv"])
    path = folder / target
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            child.unlink() if child.is_file() else child.rmdir()
        if rng.random() < 0.5:
            path.rmdir()
    else:
        path.unlink()
    return paths


def _folder_not_file(rng, folder, paths):
    session = next(p for p in (folder / "test_files").rglob("session_*"))
    session.unlink()
    session.mkdir()
    return paths


FOLDER_MUTATIONS = {
    "user folder name not a number": _user_folder_not_a_number,
    "session file name without a number": _session_file_without_number,
    "a session id in two accounts": _same_session_twice,
    "a part of the layout missing or empty": _part_missing,
    "a folder where a file belongs": _folder_not_file,
}


# JSON (Melon): one array of records
def json_cases(name: str, files: dict[str, list[dict]], n: int, seed: int) -> list[Case]:
    """`n` cases for a loader of JSON arrays of records: each picks a mutation, then a file."""
    kinds = list(JSON_MUTATIONS)
    random.Random(f"{seed}:{name}").shuffle(kinds)  # every kind once, then at random
    cases = []
    for i in range(n):
        rng = random.Random(f"{seed}:{name}:{i}")
        kind = kinds[i] if i < len(kinds) else rng.choice(kinds)
        file = rng.choice(list(files))
        state = rng.random()

        def write(folder: Path, kind=kind, file=file, state=state) -> dict[str, Path]:
            folder.mkdir(parents=True, exist_ok=True)
            paths = {}
            local = random.Random(state)
            for fname, records in files.items():
                paths[fname] = folder / fname
                content = (
                    JSON_MUTATIONS[kind](local, json.loads(json.dumps(records)))
                    if fname == file
                    else json.dumps(records, ensure_ascii=False).encode()
                )
                paths[fname].write_bytes(content)
            return paths

        cases.append(Case(name, kind, file, write))
    return cases


WRONG_VALUES = [
    "7",
    7.5,
    True,
    None,
    [],
    {},
    [[1]],
    "2013-12-19",
    -1,
    2**64,
    10**30,
    -(2**63) - 1,
    [1.5],
    ["a"],
    [None],
]


def _json_set(rng, records, value_choices=None):
    record = rng.choice(records)
    key = rng.choice(sorted(record))
    record[key] = rng.choice(value_choices or WRONG_VALUES)
    return json.dumps(records).encode()


def _json_drop_key(rng, records):
    record = rng.choice(records)
    del record[rng.choice(sorted(record))]
    return json.dumps(records).encode()


def _json_repeat_id(rng, records):
    if len(records) > 1:
        a, b = rng.sample(records, 2)
        b["id"] = a["id"]
    return json.dumps(records).encode()


def _json_nan(rng, records):
    text = json.dumps(records)
    return text.replace(rng.choice(['"id": ', '"album_id": ', '"songs": [']), '"id": NaN, "x": ', 1).encode()


def _json_unknown_reference(rng, records):
    record = rng.choice(records)
    for key in ("songs", "artist_id_basket"):
        if key in record:
            record[key] = [*record[key], 999_999_999]
    return json.dumps(records).encode()


def _json_deep(rng, records):
    depth = rng.choice([100, 5000, 200_000])
    return ('[{"id": 1, "songs": ' + "[" * depth + "]" * depth + "}]").encode()


JSON_MUTATIONS: dict[str, Callable] = {
    "JSON: wrong value type": _json_set,
    "JSON: huge or negative number": lambda rng, r: _json_set(
        rng, r, [2**64, -(2**63) - 1, 10**400, -5, 1e308, -0.0]
    ),
    "JSON: bad date": lambda rng, r: _json_set(
        rng,
        r,
        [
            "",
            "2013-13-45 99:99:99",
            "yesterday",
            "2013-12-19T18:36:19Z",
            "99999999",
            "00000000",
            "2013-12-19 18:36:19.000+09:00",
        ],
    ),
    "JSON: missing key": _json_drop_key,
    "JSON: repeated id": _json_repeat_id,
    "JSON: NaN literal": _json_nan,
    "JSON: unknown reference": _json_unknown_reference,
    "JSON: deep nesting": _json_deep,
    "JSON: empty array": lambda rng, r: b"[]",
    "JSON: not an array": lambda rng, r: rng.choice([b"{}", b"7", b'"text"', b"null", b"[1, 2]", b"[[]]"]),
    "JSON: cut off": lambda rng, r: (t := json.dumps(r).encode())[: rng.randrange(1, len(t))],
    "JSON: trailing comma or extra data": lambda rng, r: rng.choice(
        [json.dumps(r)[:-1] + ",]", json.dumps(r) + "]", json.dumps(r) + " x", "[," + json.dumps(r)[1:]]
    ).encode(),
    "empty file": lambda rng, r: b"",
    "binary garbage": lambda rng, r: rng.randbytes(rng.choice([1, 300, 4096])),
    "UTF-16 text": lambda rng, r: json.dumps(r, ensure_ascii=False).encode("utf-16"),
    "BOM": lambda rng, r: b"\xef\xbb\xbf" + json.dumps(r).encode(),
}


def sample(cases: list[Case], n: int, seed: int) -> list[Case]:
    return random.Random(f"{seed}:sample").sample(cases, min(n, len(cases)))
