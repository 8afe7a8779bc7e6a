"""Tabular input as arrow tables: CSV and Parquet files, and rows handed over in memory.

Every problem a user can cause (a missing file, a row with a stray comma, bytes that are not
text) comes out as a ``DataError`` with one sentence, never as a pyarrow traceback.
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from growml.data.columns import DELIMITER_KEY
from growml.errors import DataError

CSV_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}
PARQUET_SUFFIXES = (".parquet", ".pq")
FILE_SUFFIXES = (*CSV_DELIMITERS, *PARQUET_SUFFIXES)

# Delimiters a sniffed file may use; a space is left out because runs of spaces would read as
# empty fields.
_SNIFFED_DELIMITERS = ",\t;|"
_SAMPLE_BYTES = 64 * 1024
# pyarrow infers column types from the first block only; later blocks that disagree are read
# again with a wider type (see widen_types).
_BLOCK_SIZE = 1 << 20
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+):.*?CSV conversion error to (\w+)")


def read_file(source: str, text_columns: Collection[str] = ()) -> pa.Table:
    """Every column of the CSV or Parquet file at ``source`` (a path as the user wrote it).

    ``text_columns`` of a CSV file are read as text, untyped, so that the reader of the rows
    decides what their numbers mean (a run's decimal-comma columns: ``2.000`` is 2000 there).
    """
    path = checked_path(source)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        table = _read_parquet(path, source)
    else:
        table = _read_csv(path, source, CSV_DELIMITERS[suffix], text_columns)
    check_column_names(table.column_names, source)
    if table.num_rows == 0:
        raise DataError(f"file {source!r} has column names but no rows of data.")
    return table


def check_column_names(names: list[str], source: str) -> None:
    """Refuse a file with two columns of one name."""
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(
            f"file {source!r} has more than one column named {duplicates[0]!r}; "
            "give every column its own name."
        )


def checked_path(source: str) -> Path:
    """The path of ``source``, a CSV or Parquet file that exists and is not empty."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"file {source!r} does not exist.")
    if path.is_dir():
        raise DataError(f"{source!r} is a directory; give a CSV or Parquet file.")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"file {source!r} has the unsupported extension {suffix or '(none)'!r}; growml reads "
            "CSV (.csv, .tsv, .txt) and Parquet (.parquet, .pq) files."
        )
    try:
        empty = path.stat().st_size == 0
    except OSError as exc:
        raise DataError(f"file {source!r} cannot be read ({exc.strerror}).") from None
    if empty:
        raise DataError(f"file {source!r} is empty.")
    return path


def _read_parquet(path: Path, shown: str) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError):
        raise DataError(
            f"file {shown!r} is not a valid Parquet file; check that it was written completely."
        ) from None


def _read_csv(
    path: Path, shown: str, default_delimiter: str | None, text_columns: Collection[str]
) -> pa.Table:
    delimiter = choose_delimiter(text_sample(path, shown), default_delimiter)
    column_types: dict[str, pa.DataType] = dict.fromkeys(text_columns, pa.string())
    # A ';' file is written where the comma is the decimal mark (growml.data.columns): pyarrow
    # types its numbers so too, and leaves '1.234' as text for read_columns to decide.
    decimal_point = "," if delimiter == ";" else "."
    bad_rows: list[Any] = []

    def stop_at_bad_row(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    while True:
        names: list[str] = []
        try:
            # Closed on every path: a streaming reader left open can keep a pyarrow thread alive
            # past interpreter shutdown and abort the process at exit.
            with pacsv.open_csv(
                path,
                # One thread keeps row numbers known, so a bad row can be named by its line.
                read_options=pacsv.ReadOptions(block_size=_BLOCK_SIZE, use_threads=False),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter,
                    newlines_in_values=True,
                    invalid_row_handler=stop_at_bad_row,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=column_types,
                    strings_can_be_null=True,
                    decimal_point=decimal_point,
                ),
            ) as reader:
                names = reader.schema.names
                table = pa.Table.from_batches(list(reader), schema=reader.schema)
                # How the file was written tells how its numbers were (a ';' file is written
                # where the comma is the decimal mark); see growml.data.columns.
                return table.replace_schema_metadata({DELIMITER_KEY: delimiter})
        except pa.ArrowException as exc:
            if bad_rows:
                raise wrong_field_count(shown, bad_rows[0]) from None
            widened = widen_types(str(exc), names, column_types)
            if widened is None:
                raise DataError(
                    f"file {shown!r} cannot be read as CSV ({error_reason(exc)})."
                ) from None
            column_types = widened
        except OSError as exc:
            raise DataError(f"file {shown!r} cannot be read ({exc.strerror}).") from None


def text_sample(path: Path, shown: str) -> str:
    try:
        with path.open("rb") as handle:
            sample = handle.read(_SAMPLE_BYTES)
    except OSError as exc:
        raise DataError(f"file {shown!r} cannot be read ({exc.strerror}).") from None
    try:
        # Incremental decoding tolerates a character cut in half at the end of the sample.
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise DataError(
            f"file {shown!r} is not UTF-8 text; save it as a UTF-8 CSV file or as Parquet."
        )
    return text


def choose_delimiter(sample: str, default: str | None) -> str:
    header = sample.split("\n", 1)[0]
    if default is not None and default in header:
        return default
    complete_lines = sample[: sample.rfind("\n") + 1] or sample
    try:
        return csv.Sniffer().sniff(complete_lines, delimiters=_SNIFFED_DELIMITERS).delimiter
    except csv.Error:
        return default or ","


def widen_types(
    message: str, names: list[str], column_types: dict[str, pa.DataType]
) -> dict[str, pa.DataType] | None:
    """Column types for another try after a later block did not fit the inferred type."""
    match = _CONVERSION_ERROR.search(message)
    if match is None or int(match.group(1)) >= len(names):
        return None
    name, failed = names[int(match.group(1))], match.group(2)
    if failed in ("int64", "null"):
        wider = pa.float64()
    elif failed in ("string", "large_string"):
        return None
    else:
        wider = pa.string()
    return {**column_types, name: wider}


def wrong_field_count(shown: str, row: Any) -> DataError:
    where = f"line {row.number}" if row.number is not None else "a row"
    return DataError(
        f"{where} of file {shown!r} has {row.actual_columns} fields but the header has "
        f"{row.expected_columns}; fix that row or quote values that contain the delimiter."
    )


def error_reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0].rstrip(".")


def as_arrow(rows: Any, feature_names: list[str] | None = None) -> pa.Table:
    """Rows to predict on as an arrow table.

    ``rows`` may be a pyarrow Table or RecordBatch, a pandas DataFrame, a dict of column name to
    values (or to single values, for one row), a list of dicts (one per row), or a 2-D numpy
    array or list of lists whose columns are ``feature_names`` in that order.
    """
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(rows, pandas.DataFrame):
        return _converted(lambda: pa.Table.from_pandas(rows, preserve_index=False))
    if isinstance(rows, Mapping):
        if rows and all(_is_scalar(value) for value in rows.values()):
            return _converted(lambda: pa.Table.from_pylist([dict(rows)]))
        return _converted(lambda: pa.table({str(k): _column(v) for k, v in rows.items()}))
    if _is_row(rows):
        if len(rows) == 0:
            raise DataError("no rows were given; give at least one row to predict on.")
        if not isinstance(rows, np.ndarray) and all(isinstance(row, Mapping) for row in rows):
            return _converted(lambda: pa.Table.from_pylist(list(rows)))
        return _from_matrix(rows, feature_names)
    raise DataError(
        f"rows of type {type(rows).__name__} cannot be read; give a pyarrow Table, a pandas "
        "DataFrame, a dict of columns, a list of dicts, or a 2-D array."
    )


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, pa.Array | pa.ChunkedArray) and np.ndim(value) == 0


def _column(values: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    return pa.array(np.asarray(values) if isinstance(values, np.ndarray) else list(values))


def _from_matrix(rows: Any, feature_names: list[str] | None) -> pa.Table:
    if feature_names is None:
        raise DataError(
            "rows given as a 2-D array need the column names; pass feature_names, or give a "
            "dict of columns or a list of dicts instead."
        )
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2:
            raise DataError(
                f"rows given as an array must be 2-D (rows x columns) but this one has "
                f"{rows.ndim} dimension(s); wrap a single row in a list."
            )
        widths = {rows.shape[1]}
        columns = [rows[:, j] for j in range(rows.shape[1])]
    else:
        if not all(_is_row(row) for row in rows):
            raise DataError("rows given as a list must each be a list of values, one per column.")
        widths = {len(row) for row in rows}
        if len(widths) > 1:
            counts = ", ".join(map(str, sorted(widths)))
            raise DataError(
                f"the rows have different numbers of values ({counts}); "
                "give every row one value per column."
            )
        columns = [list(column) for column in zip(*rows, strict=True)]
    width = widths.pop()
    if width != len(feature_names):
        raise DataError(
            f"each row has {width} values but {len(feature_names)} columns are expected "
            f"({', '.join(feature_names)})."
        )
    return _converted(
        lambda: pa.table(
            {name: _column(column) for name, column in zip(feature_names, columns, strict=True)}
        )
    )


def _is_row(row: Any) -> bool:
    return isinstance(row, np.ndarray) or (
        isinstance(row, Sequence) and not isinstance(row, str | bytes)
    )


def _converted(build: Callable[[], pa.Table]) -> pa.Table:
    try:
        return build()
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DataError(f"the rows cannot be turned into a table ({error_reason(exc)}).") from None
