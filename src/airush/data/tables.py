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


def read_table(
    path: Path,
    required: Iterable[str],
    optional: Iterable[str] = (),
    sep: str | None = None,
) -> pd.DataFrame:
    """Text files are read as strings (typed per column later, so errors can name the row).

    Columns other than required + optional are an error: a typo in a header must not pass.
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
    if missing or unexpected:
        problem = (
            f"missing column(s) {', '.join(missing)}"
            if missing
            else f"unexpected column(s) {', '.join(unexpected)}"
        )
        raise DataError(
            f"{problem}; expected columns: {expected}", path=path, row=1 if first_row == 2 else None
        )
    if first_row == 1:
        _plain_cells(frame, path)
    if frame.empty:
        raise DataError("has a header but no data rows", path=path)
    frame.attrs["first_row"] = first_row
    return frame


def _plain_cells(frame: pd.DataFrame, path: Path) -> None:
    """Parquet columns hold numbers or text, as every schema's columns do: a list, bytes or a date is refused
    at its first cell here, not passed on to fail deeper with no file named."""
    plain = (str, int, float, bool, np.number, np.bool_, type(None))
    for column in frame.columns:
        raw = frame[column]
        if raw.dtype == object:
            bad = ~raw.map(lambda value: isinstance(value, plain)).to_numpy(bool)
        elif isinstance(raw.dtype, pd.StringDtype | pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(
            raw
        ):
            continue
        else:  # dates, durations, intervals, Arrow nested types
            bad = np.ones(len(raw), bool)
        if bad.any():
            i = int(np.argmax(bad))
            value = raw.iloc[i]
            got = type(value).__name__ if raw.dtype == object else f"a {raw.dtype} column"
            raise DataError(f"expected a number or text, got {got}", path=path, row=i + 1, column=str(column))


BLANK = ("", "nan", "na", "n/a", "null", "none", "<na>")  # lower-cased cell texts that mean "no value"


def blank_cells(raw: pd.Series) -> np.ndarray:
    """Missing cells: NA in a typed column, or empty / "nan" / "NULL"-like text."""
    blank = raw.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(raw):  # text cells: pandas 3 reads them as its own str dtype
        blank = blank | raw.astype(str).str.strip().str.lower().isin(BLANK).to_numpy()
    return blank


def as_float(raw: pd.Series) -> np.ndarray:
    """float64 per cell, NaN where a cell is not a number."""
    return pd.to_numeric(raw, errors="coerce").to_numpy(np.float64, na_value=np.nan)


def fail_where(frame: pd.DataFrame, bad: np.ndarray, column: str, path: Path, expected: str) -> None:
    """One DataError at the first `bad` row, quoting the cell as read."""
    if bad.any():
        i = int(np.argmax(bad))
        value = frame[column].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(
            f"expected {expected}, got {value!r}", path=path, row=i + frame.attrs["first_row"], column=column
        )


def integer_column(
    frame: pd.DataFrame, column: str, path: Path, min_value: int | None = None, missing: int | None = None
) -> np.ndarray:
    """int64 from whole numbers ("7" or "7.0"), exact beyond 2**53 when every cell is a plain integer (so
    64-bit hashed ids stay distinct); blank cells become `missing` when given, else they are refused."""
    expected = "an integer" + (f" >= {min_value}" if min_value is not None else "")
    expected += " or a blank cell" if missing is not None else ""
    raw = frame[column]
    exact = raw if pd.api.types.is_integer_dtype(raw) else pd.to_numeric(raw, errors="coerce")
    if pd.api.types.is_signed_integer_dtype(exact) and not exact.isna().any():
        values = exact.to_numpy(np.int64)
        if min_value is not None:
            fail_where(frame, values < min_value, column, path, expected)
        return values
    value = as_float(raw)
    blank = blank_cells(raw)
    whole = np.isfinite(value) & (value == np.round(value)) & (np.abs(value) < 2.0**63)
    bad = ~blank & ~whole
    if missing is None:
        bad = bad | blank
    if min_value is not None:
        bad = bad | (whole & (value < min_value))
    fail_where(frame, bad, column, path, expected)
    return np.where(blank, 0 if missing is None else missing, value).astype(np.int64)


def number_column(frame: pd.DataFrame, column: str, path: Path, positive: bool = False) -> np.ndarray:
    """float64 finite values (no blanks, NaN or inf); `positive`: strictly above 0."""
    numbers = as_float(frame[column])
    bad = ~np.isfinite(numbers)
    if positive:
        bad = bad | (np.isfinite(numbers) & (numbers <= 0))
    fail_where(frame, bad, column, path, "a finite number" + (" > 0" if positive else ""))
    return numbers
