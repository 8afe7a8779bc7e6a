"""The one place data enters growml: a source becomes a checked ``Table``, then arrays.

``load_table`` turns a built-in name or a file into a ``Table`` whose target is usable and whose
task is settled; ``prepare`` splits it, fits the preprocessing on the training rows and returns
the arrays a trainer needs.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from growml.data.arrays import is_signal_source, read_signals, signal_shape
from growml.data.builtin import (
    TARGET_NAME,
    builtin_names,
    builtin_signal_shape,
    builtin_task,
    load_builtin,
)
from growml.data.columns import (
    DELIMITER_KEY,
    ColumnReading,
    as_chunked,
    is_numeric_type,
    is_text_type,
    read_columns,
    read_numbers_from_text,
)
from growml.data.files import read_file
from growml.data.preprocess import Preprocessor, TargetEncoder, numeric_values
from growml.data.split import split_indices
from growml.errors import DataError, GrowmlWarning

if TYPE_CHECKING:
    from growml.config import DataConfig

Task = Literal["classification", "regression"]
TASKS = ("classification", "regression")
MIN_ROWS = 10
# An integer target with more distinct values than this is read as a quantity, not as classes.
MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True)
class Table:
    """A dataset ready to split: feature columns as read (``readings``: how each was read,
    see ``growml.data.columns``) and a target without missing values."""

    name: str
    features: pa.Table
    target: pa.ChunkedArray
    target_name: str
    task: Task
    readings: tuple[ColumnReading, ...] = ()
    # Each row as a signal (C, L) or an image (C, H, W), for model.arch=conv; None: a table.
    signal_shape: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        return (
            f"Table({self.name!r}, {self.features.num_rows} rows x {self.features.num_columns} "
            f"features, target {self.target_name!r}, {self.task})"
        )


def infer_task(target: pa.ChunkedArray) -> Task:
    """Classification for text, booleans and integers with few distinct values; else regression.

    Integer-valued floats (``1.0, 2.0``) count as integers; missing values are ignored.
    """
    target = as_chunked(target)
    if not is_numeric_type(target.type) or pa.types.is_boolean(target.type):
        return "classification"
    values = numeric_values(target, "target")
    values = values[~np.isnan(values)]
    if not np.array_equal(values, np.round(values)):
        return "regression"
    return "classification" if np.unique(values).size <= MAX_INFERRED_CLASSES else "regression"


def load_data_table(data: DataConfig, input_shape: list[int] | None = None) -> Table:
    """The table the ``data`` settings name, loaded and checked (no torch needed: the command
    line answers a wrong file or column before it imports the training code). ``input_shape``
    (``model.input_shape``) is each row's shape, over the data's own."""
    if not data.source:
        from growml.errors import ConfigError

        raise ConfigError("no data given: name a built-in dataset or a CSV/Parquet file.")
    table = load_table(data.source, data.target, data.task, data.infinite, data.image_size)
    return replace(table, signal_shape=tuple(input_shape)) if input_shape else table


def load_table(
    source: str,
    target: str | None = None,
    task: str = "auto",
    infinite: str = "error",
    image_size: list[int] | None = None,
) -> Table:
    """Load and check a dataset.

    ``source`` is a built-in dataset name (see ``list_datasets``) or the path of a CSV or
    Parquet file; a built-in name wins over a file of the same name. ``target`` is the column to
    predict (required for files; built-in datasets know theirs). ``task`` is ``"auto"`` to infer
    it from the target, or ``"classification"`` or ``"regression"``. ``infinite`` is
    ``"error"`` to refuse an infinite number in a feature column, or ``"missing"``.

    Columns are read as ``growml.data.columns.read_columns`` decides (numbers written as text,
    missing marks, dates and identifiers dropped). Rows without a target and columns without
    any value are dropped with a ``GrowmlWarning``; anything that makes the data unusable
    raises a ``DataError``.
    """
    if not source:
        raise DataError(
            f"no dataset was given; name a built-in dataset ({', '.join(builtin_names())}) "
            "or a CSV/Parquet file."
        )
    source = str(source)
    if task != "auto" and task not in TASKS:
        raise DataError(f"task {task!r} is unknown; use auto, classification or regression.")
    if source in builtin_names():
        if target is not None and target != TARGET_NAME:
            raise DataError(
                f"dataset {source!r} has its own target {TARGET_NAME!r}, so it has no column "
                f"{target!r}; leave --target out for built-in datasets."
            )
        features, target_values = load_builtin(source)
        resolved = builtin_task(source) if task == "auto" else task
        table, notes = _checked(
            source, features, target_values, TARGET_NAME, resolved, source, infinite
        )
        table = replace(table, signal_shape=builtin_signal_shape(source))
    elif is_signal_source(source):
        columns, target_name = read_signals(source, target, image_size)
        features = columns.drop_columns([target_name])
        table, notes = _checked(
            Path(source).stem,
            features,
            columns.column(target_name),
            target_name,
            task,
            source,
            infinite,
        )
        table = replace(table, signal_shape=signal_shape(columns))
    else:
        if not Path(source).exists() and not _looks_like_path(source):
            raise DataError(
                f"unknown dataset {source!r}; built-in datasets are "
                f"{', '.join(builtin_names())} (or give a CSV/Parquet file path)."
            )
        columns = read_file(source)
        target_name = target_column(columns.column_names, target, source)
        features = columns.drop_columns([target_name])
        target_values = target_from_text(columns.column(target_name), features)
        table, notes = _checked(
            Path(source).stem, features, target_values, target_name, task, source, infinite
        )
    for note in notes:
        warnings.warn(note, GrowmlWarning, stacklevel=2)
    return table


def table_from_columns(
    name: str,
    features: pa.Table,
    target: pa.ChunkedArray,
    target_name: str,
    task: str,
    infinite: str = "error",
) -> Table:
    """A checked ``Table`` from columns already in memory (an estimator's ``X`` and ``y``),
    with the column reading, checks and warnings of ``load_table``; ``task`` and ``infinite``
    as there. The labels of ``target`` are kept as they are given."""
    table, notes = _checked(name, features, target, target_name, task, name, infinite)
    for note in notes:
        warnings.warn(note, GrowmlWarning, stacklevel=2)
    return table


def read_rows(
    source: str,
    decimal_comma: Collection[str] = (),
    image_size: list[int] | None = None,
    channels: int | None = None,
) -> pa.Table:
    """Rows to predict on: a built-in dataset's feature columns, or every column of a file
    (extra columns, the target among them, are ignored by the preprocessing).

    ``decimal_comma`` names the columns a run read as numbers written with a decimal comma
    (``Preprocessor.decimal_comma``); a file's are read as text, so that ``2.000`` is read as
    2000 as in training, not typed 2.0 by the CSV reader. Arrays and image folders
    (``growml.data.arrays``) give their value columns; an image folder's images are read with
    the run's ``image_size`` and ``channels``."""
    source = str(source)
    if source in builtin_names():
        features, _ = load_builtin(source)
        return features
    if is_signal_source(source):
        return read_signals(source, image_size=image_size, labelled=False, channels=channels)[0]
    if not Path(source).exists() and not _looks_like_path(source):
        raise DataError(
            f"unknown dataset {source!r}; built-in datasets are "
            f"{', '.join(builtin_names())} (or give a CSV/Parquet file path)."
        )
    return read_file(source, decimal_comma)


def _looks_like_path(source: str) -> bool:
    return bool(Path(source).suffix) or "/" in source or "\\" in source


def target_column(names: list[str], target: str | None, source: str) -> str:
    shown = ", ".join(repr(name) for name in names[:5]) + (", ..." if len(names) > 5 else "")
    if target is None:
        raise DataError(
            f"file {source!r} needs a target column; pass --target with one of its columns "
            f"({shown})."
        )
    if target not in names:
        close = difflib.get_close_matches(target, names, n=3, cutoff=0.6)
        if not close:
            close = [name for name in names if name.lower() == target.lower()]
        hint = f"did you mean {' or '.join(map(repr, close))}" if close else f"its columns: {shown}"
        raise DataError(f"file {source!r} has no column {target!r} ({hint}); fix --target.")
    return target


def _checked(
    name: str,
    features: pa.Table,
    target: pa.ChunkedArray,
    target_name: str,
    task: str,
    source: str,
    infinite: str,
) -> tuple[Table, list[str]]:
    """The usable table and the warnings to show about what was changed to make it usable."""
    # Read before rows are dropped, so that a message names the row as the user counts it.
    read = read_columns(features, source, infinite, delimiter_of(features))
    features = read.features
    checked = check_target(target, target_name, task, source)
    if checked.missing.any():
        features = features.filter(pa.array(~checked.missing))
    check_features(features.num_columns, target_name, source)
    table = Table(name, features, checked.values, target_name, checked.task, read.readings)
    return table, [*read.notes, *checked.notes]


@dataclass(frozen=True)
class CheckedTarget:
    """A target column made usable: its ``values`` without the rows whose target is
    ``missing`` (one flag per row as read), the settled ``task``, and what to warn about."""

    values: pa.ChunkedArray
    task: Task
    missing: np.ndarray
    notes: tuple[str, ...]


def check_target(
    target: pa.ChunkedArray, target_name: str, task: str, source: str
) -> CheckedTarget:
    """Check a target column as read from ``source``: rows without a target are left out (with
    a note), too few rows or a single class are refused, and ``task`` (``auto``,
    ``classification`` or ``regression``) is settled."""
    notes = []
    target = _plain_target(target, target_name)
    missing = _missing(target, target_name)
    if missing.all():
        raise DataError(
            f"target column {target_name!r} of {source!r} is empty; choose another --target."
        )
    if missing.any():
        target = target.filter(pa.array(~missing))
        notes.append(
            f"dropped {int(missing.sum())} of {missing.size} rows of {source!r} whose target "
            f"{target_name!r} is missing."
        )
    if len(target) < MIN_ROWS:
        raise DataError(
            f"{source!r} has only {len(target)} rows with a target, fewer than the {MIN_ROWS} "
            "growml needs; use more data."
        )
    resolved = infer_task(target) if task == "auto" else task
    if task == "auto" and resolved == "regression" and _integer_valued(target):
        notes.append(
            f"target {target_name!r} has {len(pc.unique(target))} distinct whole numbers, more "
            f"than {MAX_INFERRED_CLASSES}, so it is treated as a quantity (regression); pass "
            "--task classification if they are classes."
        )
    if resolved == "regression" and (
        not is_numeric_type(target.type) or pa.types.is_boolean(target.type)
    ):
        raise DataError(
            f"target column {target_name!r} holds {target.type} values, which cannot be "
            "predicted by regression; set the task to classification or choose a numeric target."
        )
    if resolved == "classification":
        target = _integer_labels(target)
        labels = pc.unique(target)
        if len(labels) == 1:
            raise DataError(
                f"target column {target_name!r} has a single class ({labels[0].as_py()!r}); "
                "classification needs at least two."
            )
    return CheckedTarget(target, resolved, missing, tuple(notes))


def check_features(columns: int, target_name: str, source: str) -> None:
    """Refuse data with no usable feature column (``columns`` of them once read)."""
    if columns == 0:
        raise DataError(
            f"{source!r} has no usable feature columns besides the target {target_name!r}; "
            "give it columns with values."
        )


def target_from_text(target: pa.ChunkedArray, features: pa.Table) -> pa.ChunkedArray:
    """A file's target written as text numbers (``1,5``, ``1,234``, ``?`` for missing) as
    numbers, so that a quantity is not taken for classes; other targets as they are: their
    labels are the classes, ``None`` and ``-`` among them (only an empty value is missing)."""
    target = as_chunked(target)
    if not is_text_type(target.type):
        return target
    values = read_numbers_from_text(target, delimiter_of(features))
    return target if values is None else values


def delimiter_of(features: pa.Table) -> str | None:
    """The CSV delimiter ``read_file`` left in the table's metadata, if any."""
    return (features.schema.metadata or {}).get(DELIMITER_KEY, b"").decode() or None


def _plain_target(target: pa.ChunkedArray, target_name: str) -> pa.ChunkedArray:
    """Labels as text, booleans or numbers, so that class labels stay JSON-serialisable."""
    target = as_chunked(target)
    if pa.types.is_decimal(target.type):
        return target.cast(pa.float64())
    if is_numeric_type(target.type) or pa.types.is_string(target.type):
        return target
    try:
        return target.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"target column {target_name!r} holds {target.type} values, which growml cannot "
            "predict; choose another --target."
        ) from None


def _integer_valued(target: pa.ChunkedArray) -> bool:
    values = numeric_values(target, "target")
    values = values[~np.isnan(values)]
    return bool(np.array_equal(values, np.round(values)))


def _integer_labels(target: pa.ChunkedArray) -> pa.ChunkedArray:
    # Labels 0.0 and 1.0 (a float column, as pandas writes integers with gaps) read as 0 and 1.
    if pa.types.is_floating(target.type):
        values = target.to_numpy()
        if np.array_equal(values, np.round(values)) and np.abs(values).max() < 2**53:
            return target.cast(pa.int64())
    return target


def _missing(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Per row: null, or a float that is NaN or infinite."""
    if is_numeric_type(column.type) and not pa.types.is_boolean(column.type):
        return np.isnan(numeric_values(column, name))
    return pc.is_null(column).to_numpy(zero_copy_only=False)


@dataclass(frozen=True, eq=False)
class PreparedData:
    """A table split and turned into arrays, with the fitted preprocessing and encoding.

    ``x_*`` are float32 matrices; ``y_*`` are int64 class indices (classification) or float32
    standardised values (regression). ``raw_test`` holds the test rows before preprocessing
    (none, only the columns, for a file read in batches: ``growml.data.streaming``, whose
    ``x_*`` are memory-mapped).
    ``w_*`` are the rows' weights (float32), or None when every row counts alike.
    """

    table_name: str
    task: Task
    target_name: str
    preprocessor: Preprocessor
    target_encoder: TargetEncoder
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    raw_test: pa.Table
    w_train: np.ndarray | None = None
    w_val: np.ndarray | None = None
    w_test: np.ndarray | None = None
    signal_shape: tuple[int, ...] | None = None  # Table.signal_shape


def split_rows(
    table: Table, config: DataConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of the train, validation and test parts that ``prepare`` uses, so that a
    later command (an export's verification) sees the very rows the run was tested on."""
    labels = table.target.to_numpy() if table.task == "classification" else None
    sizes = (len(table.target), config.test_size, config.validation_size, seed)
    try:
        return split_indices(labels, *sizes)
    except DataError:
        if labels is None or config.stratify != "when-possible":
            raise
        return split_indices(None, *sizes)


def prepare(
    table: Table, config: DataConfig, seed: int, weights: np.ndarray | None = None
) -> PreparedData:
    """Split ``table`` (stratified for classification, by ``seed``) and build the arrays.

    The preprocessing and the regression target's scale are fitted on the training rows only;
    the class list comes from every row so that no validation or test label is unknown.
    ``weights`` (one positive number per row of ``table``) go with their rows into each part,
    scaled to a mean near 1.
    """
    classification = table.task == "classification"
    train, validation, test = split_rows(table, config, seed)
    encoder = TargetEncoder.fit(
        table.target if classification else table.target.take(train),
        table.task,
        table.target_name,
    )
    preprocessor = Preprocessor.fit(
        table.features.take(train),
        config.max_categories,
        table.readings,
        config.scaling,
        table.signal_shape,
    )

    def arrays(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = preprocessor.transform(table.features.take(rows))
        return x, encoder.encode(table.target.take(rows))

    x_train, y_train = arrays(train)
    x_val, y_val = arrays(validation)
    x_test, y_test = arrays(test)
    return PreparedData(
        signal_shape=table.signal_shape,
        table_name=table.name,
        task=table.task,
        target_name=table.target_name,
        preprocessor=preprocessor,
        target_encoder=encoder,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        raw_test=table.features.take(test),
        **_split_weights(weights, train, validation, test),
    )


def _split_weights(weights: np.ndarray | None, *parts: np.ndarray) -> dict[str, np.ndarray | None]:
    """``w_train``, ``w_val`` and ``w_test`` of ``prepare``: the rows' weights by part, scaled
    to a mean between 0.7 and 1.5 over every row.

    Only the weights' ratios mean anything, so weights of any scale train alike: scaled in
    float64, weights of 1e-50 do not vanish in float32 nor 1e39 overflow it. The scale is a
    power of two, so the ratios stay exact (integer weights stay integers times one scale);
    the mean is taken of the weights over the largest, so that a sum near 1e308 cannot overflow.
    """
    if weights is None:
        return {}
    weights = np.asarray(weights, dtype=np.float64)
    largest = weights.max()
    mean = float(np.mean(weights / largest)) * largest
    weights = (weights / 2.0 ** np.round(np.log2(mean))).astype(np.float32)
    return dict(zip(("w_train", "w_val", "w_test"), (weights[rows] for rows in parts), strict=True))
