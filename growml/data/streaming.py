"""Data larger than memory: a CSV or Parquet file read in record batches, never whole.

``growml fit`` streams a file when ``data.stream`` says so (``streams``), in three passes:

1. ``scan``: every row is read once; the first batch decides how each column is read
   (``read_columns``, as for a file in memory), and only the target column is kept: it settles
   the task, and the split is drawn from it exactly as ``prepare`` draws it (the same seeded,
   stratified ``split_rows``), so a file gives the same parts streamed or not.
2. ``prepare_streamed``, statistics: the training rows of each batch feed ``BatchStatistics``,
   the streaming ``Preprocessor.fit``.
3. encoding: each batch is transformed by that ``Preprocessor`` and its rows written to their
   part's float32 matrix in a memory-mapped cache (``growml.data.cache``).

Memory holds one batch, the target (8 bytes a row) and the part of each row (1 byte); the
matrices are pages of the cache. docs/large-data.md tells the whole story.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from growml.data.batch_fit import BatchStatistics
from growml.data.batches import BatchFile, ColumnTypesChanged, read_batch
from growml.data.builtin import builtin_names
from growml.data.cache import mapped_matrices, release_pages
from growml.data.columns import read_columns
from growml.data.files import FILE_SUFFIXES, check_column_names
from growml.data.preprocess import TargetEncoder
from growml.data.table import (
    PreparedData,
    Table,
    check_features,
    check_target,
    delimiter_of,
    split_rows,
    target_column,
    target_from_text,
)
from growml.errors import ConfigError, DataError, GrowmlWarning
from growml.events import DataProgress, Event, Observer

if TYPE_CHECKING:
    from growml.config import DataConfig

TRAIN, VALIDATION, TEST = 0, 1, 2
_MEGABYTE = 10**6


def streams(data: DataConfig, arch: str = "mlp") -> bool:
    """Whether ``data.source`` is read in batches (``data.stream``): ``on`` always (an error
    where it cannot be), ``off`` never, ``auto`` for a CSV/Parquet file larger than
    ``data.stream_above_mb`` whose settings allow it; other data is read whole, as before."""
    if data.stream == "off":
        return False
    reason = _not_streamable(data, arch)
    if data.stream == "on":
        if reason:
            raise ConfigError(f"data.stream=on cannot be followed: {reason}; use data.stream=auto.")
        return True
    if reason:
        return False
    return Path(str(data.source)).stat().st_size > data.stream_above_mb * _MEGABYTE


def _not_streamable(data: DataConfig, arch: str) -> str:
    source = str(data.source or "")
    if source in builtin_names() or Path(source).suffix.lower() not in FILE_SUFFIXES:
        return "only CSV and Parquet files are read in batches"
    if not Path(source).is_file():
        return f"file {source!r} does not exist"
    if data.scaling != "standard":
        return f"data.scaling={data.scaling} needs every value at once; streaming scales standard"
    if arch != "mlp":
        return "model.arch=conv reads signals and images, which are read whole"
    return ""


@dataclass(frozen=True)
class Scan:
    """What the first pass learnt: the ``file``, a ``table`` whose features have the columns as
    read but no rows and whose target holds every row's with a target, the part of each row
    of the file (``TRAIN``, ``VALIDATION``, ``TEST``; -1: no target), and the warnings."""

    file: BatchFile
    table: Table
    parts: np.ndarray
    notes: tuple[str, ...]


def scan(data: DataConfig, seed: int, observer: Observer | None = None) -> Scan:
    """Read ``data.source`` once (see the module's docstring) and split its rows by ``seed``."""
    file = BatchFile.open(str(data.source))
    while True:
        try:
            scanned = _scan(file, data, seed, observer or _ignore)
            break
        except ColumnTypesChanged as change:
            file = BatchFile(file.path, file.shown, file.delimiter, change.column_types)
    for note in scanned.notes:
        warnings.warn(note, GrowmlWarning, stacklevel=2)
    return scanned


def load_streamed(
    data: DataConfig, seed: int, observer: Observer | None = None
) -> tuple[Table, PreparedData]:
    """``load_table`` and ``prepare`` for a file read in batches: the ``scan``'s table (its
    features without rows) and the prepared data, whose matrices are memory-mapped."""
    scanned = scan(data, seed, observer)
    return scanned.table, prepare_streamed(scanned, data, observer)


def _scan(file: BatchFile, data: DataConfig, seed: int, observer: Observer) -> Scan:
    source = str(data.source)
    chunks: list[pa.Array] = []
    first: pa.Table | None = None
    for batch in _reported(file, "reading", observer):
        if first is None:
            check_column_names(batch.column_names, source)
            target_name = target_column(batch.column_names, data.target, source)
            first = batch
        chunks.extend(batch.column(target_name).chunks)
    if first is None:
        raise DataError(f"file {source!r} has column names but no rows of data.")
    features = first.drop_columns([target_name])
    read = read_columns(features, source, data.infinite, delimiter_of(first))
    target = pa.chunked_array(chunks, type=first.schema.field(target_name).type)
    checked = check_target(target_from_text(target, first), target_name, data.task, source)
    check_features(read.features.num_columns, target_name, source)
    table = Table(
        Path(source).stem,
        read.features.slice(0, 0),
        checked.values,
        target_name,
        checked.task,
        read.readings,
    )
    parts = np.full(len(checked.missing), -1, dtype=np.int8)
    kept = np.flatnonzero(~checked.missing)
    for part, rows in enumerate(split_rows(table, data, seed)):
        parts[kept[rows]] = part
    return Scan(file, table, parts, (*read.notes, *checked.notes))


def prepare_streamed(
    scan: Scan, data: DataConfig, observer: Observer | None = None
) -> PreparedData:
    """``prepare`` for a scanned file: the preprocessing fitted on the training rows in one
    pass, every row encoded into the memory-mapped cache in another."""
    observer = observer or _ignore
    table, parts = scan.table, scan.parts
    readings = table.readings
    statistics = BatchStatistics(readings, data.max_categories)
    for batch, first_row in _read(scan, "statistics", data, observer):
        train = np.flatnonzero(parts[first_row : first_row + batch.num_rows] == TRAIN)
        if train.size:
            statistics.update(batch.take(train))
    preprocessor = statistics.preprocessor()
    counts = [int(np.count_nonzero(parts == part)) for part in (TRAIN, VALIDATION, TEST)]
    shapes = [(count, preprocessor.n_outputs) for count in counts]
    matrices = mapped_matrices(shapes, data.cache_dir)
    filled = [0, 0, 0]
    for batch, first_row in _read(scan, "encoding", data, observer):
        encoded = preprocessor.transform(batch)
        batch_parts = parts[first_row : first_row + batch.num_rows]
        for part, matrix in enumerate(matrices):
            rows = batch_parts == part
            count = int(np.count_nonzero(rows))
            matrix[filled[part] : filled[part] + count] = encoded[rows]
            filled[part] += count
            release_pages(matrix)
    kept_parts = parts[parts >= 0]
    target = table.target
    classification = table.task == "classification"
    train_rows = np.flatnonzero(kept_parts == TRAIN)
    encoder = TargetEncoder.fit(
        target if classification else target.take(train_rows), table.task, table.target_name
    )
    labels = [encoder.encode(target.take(np.flatnonzero(kept_parts == part))) for part in range(3)]
    return PreparedData(
        table_name=table.name,
        task=table.task,
        target_name=table.target_name,
        preprocessor=preprocessor,
        target_encoder=encoder,
        x_train=matrices[TRAIN],
        y_train=labels[TRAIN],
        x_val=matrices[VALIDATION],
        y_val=labels[VALIDATION],
        x_test=matrices[TEST],
        y_test=labels[TEST],
        raw_test=table.features,
    )


def _read(
    scan: Scan, step: str, data: DataConfig, observer: Observer
) -> Iterator[tuple[pa.Table, int]]:
    """Each batch of the file as ``read_batch`` reads it, with the number of its first row."""
    first_row = 0
    for batch in _reported(scan.file, step, observer):
        yield (
            read_batch(batch, scan.table.readings, scan.file.shown, data.infinite, first_row),
            (first_row),
        )
        first_row += batch.num_rows


def _reported(file: BatchFile, step: str, observer: Observer) -> Iterator[pa.Table]:
    """``file.batches()``, each followed by a ``DataProgress`` of ``step``."""
    rows = file.rows()
    total, unit = (file.size, "bytes") if rows is None else (rows, "rows")
    observer(DataProgress(step, 0, total, unit))
    for batch, done in file.batches():
        yield batch
        observer(DataProgress(step, done, total, unit))
    # pyarrow's allocator keeps freed batches' memory for reuse: a hundred megabytes or more
    # that the training would otherwise carry.
    pa.default_memory_pool().release_unused()


def _ignore(event: Event) -> None:
    """No one watches the progress."""
