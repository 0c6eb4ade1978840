"""An events file of any size cut into chunks of whole sessions with bounded memory, for scoring.

Sessions may be interleaved anywhere in the file (a real log is in wall-clock order), so the file is read in
batches (pyarrow's streaming CSV reader, or Parquet row groups) and each event is spilled to one of N bucket
files on disk, bucket = hash(session_id) % N: every session lands whole in one bucket. Buckets are then read
back one at a time. Memory is one batch while spilling and one bucket while scoring; the spill takes about
as much disk as the file itself, in a temporary folder removed afterwards.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from airush.abuse.data import BUTTONS, EVENT_KINDS, KEY_EVENTS
from airush.errors import DataError, UserError

EVENT_COLUMNS = ("session_id", "t_ms", "event", "key", "x", "y", "button")
BLOCK_BYTES = 32 << 20  # CSV bytes per batch
PARQUET_BATCH_ROWS = 1 << 20
CSV_BYTES_PER_EVENT = 30  # for the bucket count of a CSV, whose number of rows is unknown until read


def session_chunks(
    path: Path,
    chunk_events: int,
    buckets: int | None = None,
    check: Callable[[np.ndarray], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """Schema events (`airush.abuse.data`) of whole sessions, one bucket at a time, in file order within a
    bucket. `check(counts)` sees the events per EVENT_KINDS of the whole file before the first bucket."""
    n = int(buckets) if buckets else bucket_count(path, chunk_events)
    if n < 1:
        raise UserError(f"buckets={n}: spill the events into at least one bucket")
    with tempfile.TemporaryDirectory(prefix="airush-buckets-") as folder:
        files, counts = spill(path, Path(folder), n)
        if check is not None:
            check(counts)
        for file in files:
            if file.exists():
                yield read_bucket(file)
                file.unlink()


def bucket_count(path: Path, chunk_events: int) -> int:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        events = pq.ParquetFile(path).metadata.num_rows
    else:
        events = path.stat().st_size / CSV_BYTES_PER_EVENT
    return max(1, math.ceil(events / max(int(chunk_events), 1)))


def spill(path: Path, folder: Path, n: int) -> tuple[list[Path], np.ndarray]:
    """Each batch's events into bucket files `folder/bucket_<i>.parquet`; (those paths, events per kind)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [folder / f"bucket_{i}.parquet" for i in range(n)]
    writers: dict[int, pq.ParquetWriter] = {}
    counts = np.zeros(len(EVENT_KINDS), dtype=np.int64)
    try:
        for columns in typed_batches(path):
            counts += np.bincount(columns["event"], minlength=len(EVENT_KINDS))
            bucket = (pd.util.hash_array(columns["session_id"]) % np.uint64(n)).astype(np.int64)
            order = np.argsort(bucket, kind="stable")  # file order kept inside each bucket
            bounds = np.searchsorted(bucket[order], np.arange(n + 1))
            for i in np.flatnonzero(np.diff(bounds)):
                rows = order[bounds[i] : bounds[i + 1]]
                table = pa.table({name: values[rows] for name, values in columns.items()})
                if i not in writers:
                    writers[i] = pq.ParquetWriter(files[i], table.schema, compression="lz4")
                writers[i].write_table(table)
    finally:
        for writer in writers.values():
            writer.close()
    return files, counts


def read_bucket(file: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    frame = pq.read_table(file).to_pandas()
    frame["event"] = pd.Categorical.from_codes(frame["event"].to_numpy(), EVENT_KINDS)
    frame["button"] = pd.Categorical.from_codes(frame["button"].to_numpy(), BUTTONS)
    return frame


def typed_batches(path: Path) -> Iterator[dict[str, np.ndarray]]:
    """The file's events batch by batch as numpy columns in the schema's types (event and button as their
    EVENT_KINDS / BUTTONS index); one line for a missing column, an unreadable cell or an unknown name."""
    import pyarrow as pa

    row = 2 if path.suffix.lower() != ".parquet" else 1  # as a user counts: a CSV's header is line 1
    for batch in _batches(path):
        try:
            yield _typed(batch, path, row)
        except (pa.ArrowException, ValueError) as err:
            raise DataError(f"cannot read the events: {str(err).splitlines()[0]}", path=path) from None
        row += batch.num_rows


def _batches(path: Path):
    import pyarrow as pa

    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            reader = pq.ParquetFile(path)
            _check_header(reader.schema_arrow.names, path)
            yield from reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(EVENT_COLUMNS))
            return
        from pyarrow import csv

        types = {"session_id": pa.int64(), "t_ms": pa.float64(), "event": pa.string(), "key": pa.float64()}
        types |= {"x": pa.float64(), "y": pa.float64(), "button": pa.string()}
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(block_size=BLOCK_BYTES),
            convert_options=csv.ConvertOptions(column_types=types, include_columns=list(EVENT_COLUMNS)),
        )
        yield from reader
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"cannot read the events: {str(err).splitlines()[0]}", path=path) from None


def _check_header(names, path: Path) -> None:
    missing = [c for c in EVENT_COLUMNS if c not in names]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", path=path, row=1)


def _typed(batch, path: Path, first_row: int) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    names = batch.schema.names
    _check_header(names, path)
    column = {name: batch.column(names.index(name)) for name in EVENT_COLUMNS}
    if column["session_id"].null_count:
        row = first_row + int(
            np.flatnonzero(column["session_id"].is_null().to_numpy(zero_copy_only=False))[0]
        )
        raise DataError("expected an integer session id", path=path, row=row, column="session_id")
    codes = {}
    for name, allowed in (("event", EVENT_KINDS), ("button", BUTTONS)):
        text = pc.utf8_trim_whitespace(column[name].cast(pa.string()))
        index = pc.index_in(text, value_set=pa.array(allowed))
        if index.null_count:
            i = int(np.flatnonzero(index.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(
                f"unknown {name} {text[i].as_py()!r}; expected one of {', '.join(allowed)}",
                path=path,
                row=first_row + i,
                column=name,
            )
        codes[name] = index.to_numpy(zero_copy_only=False).astype(np.int8)
    is_key = np.isin(codes["event"], [EVENT_KINDS.index(k) for k in KEY_EVENTS])

    def floats(name: str) -> np.ndarray:
        return column[name].cast(pa.float64()).to_numpy(zero_copy_only=False)

    key = np.nan_to_num(floats("key"), nan=-1.0)
    return {
        "session_id": column["session_id"].cast(pa.int64()).to_numpy(zero_copy_only=False),
        "t_ms": floats("t_ms"),
        "event": codes["event"],
        "key": np.where(is_key, key, -1).astype(np.int16),
        "x": np.where(is_key, np.nan, floats("x")).astype(np.float32),
        "y": np.where(is_key, np.nan, floats("y")).astype(np.float32),
        "button": codes["button"],
    }
