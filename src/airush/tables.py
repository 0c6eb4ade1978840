"""Reading user files (CSV, TSV, Parquet) with one-line errors that name the file, row and column.

Rows are counted as a user sees them: in a text file the header is line 1, so the first data row is row 2;
in Parquet the first row is row 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from airush.errors import DataError

PARQUET = (".parquet", ".pq")


def resolve_path(path: str | Path) -> Path:
    """A relative path means relative to where airush was started (Hydra jobs keep that as original cwd)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    return Path(to_absolute_path(str(path)) if HydraConfig.initialized() else Path(path).absolute())


def read_table(
    path: Path,
    required: Iterable[str],
    optional: Iterable[str] = (),
    sep: str | None = None,
    exact: bool = True,
) -> pd.DataFrame:
    """Text files are read as strings (typed per column later, so errors can name the row).

    `exact`: columns other than required + optional are an error (a typo in a header must not pass).
    The frame's `attrs["first_row"]` is the row number of its first data row.
    """
    required, optional = list(required), list(optional)
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        if path.suffix.lower() in PARQUET:
            frame = pd.read_parquet(path)
            first_row = 1
        else:
            delimiter = sep or ("\t" if path.suffix.lower() in (".tsv", ".dat", ".tab") else ",")
            # blank lines are kept (as blank cells, refused later) so row numbers match the file's lines
            frame = pd.read_csv(
                path,
                sep=delimiter,
                dtype=str,
                keep_default_na=False,
                encoding="utf-8",
                skip_blank_lines=False,
            )
            first_row = 2
    except (pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as err:
        reason = "is empty" if isinstance(err, pd.errors.EmptyDataError) else f"cannot be read: {err}"
        raise DataError(reason.splitlines()[0], path=path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    expected = ", ".join(required + [f"[{c}]" for c in optional])
    missing = [c for c in required if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in required + optional]
    if missing or (exact and unexpected):
        problem = (
            f"missing column(s) {', '.join(missing)}"
            if missing
            else f"unexpected column(s) {', '.join(unexpected)}"
        )
        raise DataError(
            f"{problem}; expected columns: {expected}", path=path, row=1 if first_row == 2 else None
        )
    if frame.empty:
        raise DataError("has a header but no data rows", path=path)
    frame.attrs["first_row"] = first_row
    return frame


def _fail(frame: pd.DataFrame, bad: np.ndarray, column: str, path: Path, expected: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = frame[column].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(
            f"expected {expected}, got {value!r}", path=path, row=i + frame.attrs["first_row"], column=column
        )


def integer_column(
    frame: pd.DataFrame, column: str, path: Path, min_value: int | None = None, missing: int | None = None
) -> np.ndarray:
    """int64 values; blank cells become `missing` when given, else they are an error."""
    raw = frame[column]
    blank = raw.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(raw):  # text cells: pandas 3 reads them as its own str dtype
        blank = blank | raw.astype(str).str.strip().isin(["", "nan", "NaN", "None"]).to_numpy()
    numbers = pd.to_numeric(raw.where(~blank), errors="coerce").to_numpy(np.float64)
    bad = (~blank & ~np.isfinite(numbers)) | (np.isfinite(numbers) & (numbers != np.round(numbers)))
    if missing is None:
        bad = bad | blank
    if min_value is not None:
        bad = bad | (np.isfinite(numbers) & (numbers < min_value))
    _fail(frame, bad, column, path, "an integer" + (f" >= {min_value}" if min_value is not None else ""))
    return np.where(blank, missing if missing is not None else 0, np.nan_to_num(numbers)).astype(np.int64)


def number_column(frame: pd.DataFrame, column: str, path: Path, positive: bool = False) -> np.ndarray:
    """float64 finite values (no blanks, NaN or inf); `positive`: strictly above 0."""
    numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(numbers)
    if positive:
        bad = bad | (np.isfinite(numbers) & (numbers <= 0))
    _fail(frame, bad, column, path, "a finite number" + (" > 0" if positive else ""))
    return numbers
