"""Predictions written chunk by chunk to CSV or Parquet (by the file's suffix), with bounded memory.

The file appears only when complete: chunks go to a hidden temporary file beside the target, renamed into
place at the end; on any error or interrupt the temporary file is removed, so a file at the target path is
always a whole answer. An existing file is never replaced unless asked (`--overwrite`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from airush.errors import DataError, UserError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def check_output(path: Path, overwrite: bool) -> str:
    """The format `path` asks for; one line, before any work, when it cannot be written as asked."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"--out {path}: write .csv or .parquet (the suffix chooses the format)")
    check_writable(path, overwrite)
    return fmt


def check_writable(path: Path, overwrite: bool, named: str | None = None) -> None:
    """A file airush may write at `path` (named `named` in messages, default `--out PATH`): not a folder, not
    an existing file unless `overwrite`, in a folder that exists; one line otherwise."""
    named = named or f"--out {path}"
    if path.is_dir():
        raise UserError(f"{named} is a folder; name a file")
    if path.exists() and not overwrite:
        raise UserError(f"{named} exists; airush does not replace it unless you add --overwrite")
    if not path.parent.is_dir():
        raise UserError(f"{named}: folder {path.parent} does not exist")


def write_predictions(path: Path, chunks: Iterable[pd.DataFrame], overwrite: bool = False) -> int:
    """Write every chunk (same columns each) to `path`; the number of rows written."""
    fmt = check_output(path, overwrite)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    rows = 0
    writer = None
    try:
        with open(partial, "wb") as stream:
            for chunk in chunks:
                if fmt == "csv":
                    chunk.to_csv(stream, header=writer is None, index=False)
                    writer = True
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(stream, table.schema)
                    writer.write_table(table.cast(writer.schema))
                rows += len(chunk)
            if writer is None:
                raise DataError("the data holds nothing to predict for (no users or sessions)")
            if fmt == "parquet":
                writer.close()
        if path.exists() and not overwrite:  # appeared while we worked: still not replaced
            raise UserError(f"--out {path} appeared while predicting; not replacing it")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return rows
