"""A CSV or Parquet file read in record batches, for data larger than memory
(``growml.data.streaming``); ``growml.data.files`` reads a file whole.

A batch is read as ``read_columns`` read the first rows of the file (the *sample*): each
column's decision (numbers, numbers written as text, booleans, categories, dropped) is taken
once there and applied to every later batch by ``read_batch``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from growml.data import numbers
from growml.data.columns import (
    BOOLEAN_WORDS,
    DELIMITER_KEY,
    ColumnReading,
    as_chunked,
    finite,
    is_text_type,
)
from growml.data.files import (
    CSV_DELIMITERS,
    PARQUET_SUFFIXES,
    checked_path,
    choose_delimiter,
    error_reason,
    text_sample,
    widen_types,
    wrong_field_count,
)
from growml.errors import DataError

# Bytes of CSV text per batch: large enough that the work per batch outweighs Python's, small
# enough that a batch of a wide file stays a few hundred megabytes once typed. pyarrow infers
# the column types from the first block; read_columns decides how columns read from it too.
CSV_BLOCK_BYTES = 4 << 20
PARQUET_BATCH_ROWS = 1 << 17


class ColumnTypesChanged(Exception):
    """A later block of a CSV file does not fit the types inferred from the first: the file
    must be read again from the start with ``column_types``."""

    def __init__(self, column_types: dict[str, pa.DataType]) -> None:
        super().__init__("column types changed")
        self.column_types = column_types


@dataclass(frozen=True)
class BatchFile:
    """A CSV or Parquet file to read in batches: ``shown`` is its name as the user wrote it;
    ``column_types`` the CSV columns typed otherwise than pyarrow infers."""

    path: Path
    shown: str
    delimiter: str | None
    column_types: dict[str, pa.DataType] = field(default_factory=dict)

    @classmethod
    def open(cls, source: str) -> BatchFile:
        path = checked_path(source)
        suffix = path.suffix.lower()
        if suffix in PARQUET_SUFFIXES:
            return cls(path, source, None)
        return cls(
            path, source, choose_delimiter(text_sample(path, source), CSV_DELIMITERS[suffix])
        )

    @property
    def parquet(self) -> bool:
        return self.delimiter is None

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self.path.stat().st_size

    def rows(self) -> int | None:
        """The number of rows when the file says so without being read (Parquet)."""
        return self._parquet().metadata.num_rows if self.parquet else None

    def batches(self) -> Iterator[tuple[pa.Table, int]]:
        """Each batch of rows as a table, with how far the file is read: bytes for a CSV file
        (of ``size``), rows for a Parquet file."""
        return self._parquet_batches() if self.parquet else self._csv_batches()

    def _parquet(self) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError):
            raise self._invalid_parquet() from None

    def _invalid_parquet(self) -> DataError:
        return DataError(
            f"file {self.shown!r} is not a valid Parquet file; check that it was written "
            "completely."
        )

    def _parquet_batches(self) -> Iterator[tuple[pa.Table, int]]:
        done = 0
        try:
            for batch in self._parquet().iter_batches(batch_size=PARQUET_BATCH_ROWS):
                done += batch.num_rows
                yield pa.Table.from_batches([batch]), done
        except (pa.ArrowException, OSError):
            raise self._invalid_parquet() from None

    def _csv_batches(self) -> Iterator[tuple[pa.Table, int]]:
        assert self.delimiter is not None
        bad_rows: list[Any] = []

        def stop_at_bad_row(row: Any) -> str:
            bad_rows.append(row)
            return "error"

        names: list[str] = []
        metadata = {DELIMITER_KEY: self.delimiter}
        try:
            # Closed on every path: a streaming reader left open can keep a pyarrow thread
            # alive past interpreter shutdown and abort the process at exit.
            with (
                pa.OSFile(str(self.path)) as raw,
                pacsv.open_csv(
                    raw,
                    # One thread keeps row numbers known, so a bad row is named by its line.
                    read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
                    parse_options=pacsv.ParseOptions(
                        delimiter=self.delimiter,
                        newlines_in_values=True,
                        invalid_row_handler=stop_at_bad_row,
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types=self.column_types,
                        strings_can_be_null=True,
                        decimal_point="," if self.delimiter == ";" else ".",
                    ),
                ) as reader,
            ):
                names = reader.schema.names
                for batch in reader:
                    table = pa.Table.from_batches([batch]).replace_schema_metadata(metadata)
                    yield table, raw.tell()
        except pa.ArrowException as exc:
            if bad_rows:
                raise wrong_field_count(self.shown, bad_rows[0]) from None
            widened = widen_types(str(exc), names, self.column_types)
            if widened is None:
                raise DataError(
                    f"file {self.shown!r} cannot be read as CSV ({error_reason(exc)})."
                ) from None
            raise ColumnTypesChanged(widened) from None
        except OSError as exc:
            raise DataError(f"file {self.shown!r} cannot be read ({exc.strerror}).") from None


def read_batch(
    batch: pa.Table,
    readings: Sequence[ColumnReading],
    source: str,
    infinite: str,
    first_row: int,
) -> pa.Table:
    """The feature columns of ``batch`` (rows ``first_row`` onwards of ``source``) as
    ``readings`` say, as ``read_columns`` turns them: numbers as float64 (text parsed in the
    column's convention, an infinite number refused or missing as ``infinite`` says),
    booleans, and categories as they are (``Preprocessor`` reads them as text)."""
    columns: dict[str, pa.ChunkedArray] = {}
    for reading in readings:
        if reading.read_as == "dropped":
            continue
        column = as_chunked(batch.column(reading.name))
        if reading.read_as == "boolean" and is_text_type(column.type):
            text = numbers.without_missing_marks(column)
            true = pc.is_in(text, pa.array(BOOLEAN_WORDS[:3]))
            column = pc.if_else(pc.is_valid(text), true, pa.scalar(None, pa.bool_()))
        elif reading.read_as == "number":
            if is_text_type(column.type):
                convention = numbers.COMMA if reading.decimal_comma else numbers.POINT
                values = numbers.parse(numbers.without_missing_marks(column), convention)
                column = pa.chunked_array([pa.array(values)])
            column = finite(reading, column, source, infinite, first_row)[1]
        columns[reading.name] = column
    return pa.table(columns)
