"""Raw columns to the float32 matrix a network sees, and targets to the values a loss expects.

Both are fitted on the training rows only and written to JSON, so that prediction, evaluation
and the ONNX export prepare data exactly as training did.

Numeric columns (integers, floats, booleans as 0/1) are scaled as ``data.scaling`` says
(``growml.data.scaling``: standardised by default) and a missing value becomes 0, the scaled
centre (the training mean when standardised); a ``<name>_missing`` indicator follows when
the training column had missing values. Non-finite numbers count as missing.
Other columns are categorical: one-hot over the most frequent training categories, all zeros
for a category not kept or never seen, and a ``<name>_missing`` indicator as above (the
empty text and the other missing marks, ``?``, ``NA``..., count as missing, as in a CSV file).
How each column is read before this (numbers written as text, dates and identifiers dropped)
is ``growml.data.columns``'s decision, kept here as ``Preprocessor.readings``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from growml.data import numbers
from growml.data.columns import (
    ColumnReading,
    as_chunked,
    column_convention,
    is_numeric_type,
    is_text_type,
)
from growml.data.scaling import SCALINGS, Scaling, StandardScaling, mean_and_std
from growml.errors import DataError, GrowmlWarning

_FORMAT_VERSION = 1
# The words of booleans as pyarrow's CSV reader (pyarrow.csv.ConvertOptions defaults) reads
# them. Numbers given as text (records from csv.DictReader) are read the same way, so that
# they mean what the same file would.
TRUE_WORDS = ("1", "True", "TRUE", "true")
FALSE_WORDS = ("0", "False", "FALSE", "false")


def numeric_values(column: pa.ChunkedArray, name: str, decimal_comma: bool = False) -> np.ndarray:
    """The column as float64, with NaN wherever a value is missing or not finite.

    Text is read as numbers in the convention its values show, else with a decimal point
    (``decimal_comma``: a decimal comma), thousands separators allowed, the missing marks and
    boolean words as a CSV file means them (``growml.data.numbers``); other text counts as
    missing with a warning, and a column with text but no number at all is refused.
    """
    column = as_chunked(column)
    if is_text_type(column.type):
        return _numbers_from_text(column, name, decimal_comma)
    try:
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _not_numbers(name, column.type) from None
    return _finite(np.array(values, dtype=np.float64), name)


def _finite(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` with NaN for every infinite number, which a warning counts: training refuses
    them (or reads them as missing, ``data.infinite``), so rows to predict on should not hold
    them unremarked."""
    infinite = int(np.isinf(values).sum())
    if infinite:
        warnings.warn(
            f"column {name!r} holds {infinite} infinite numbers; they count as missing.",
            GrowmlWarning,
            stacklevel=4,
        )
    values[~np.isfinite(values)] = np.nan
    return values


def _numbers_from_text(column: pa.ChunkedArray, name: str, decimal_comma: bool) -> np.ndarray:
    text = numbers.without_missing_marks(column)
    text = pc.if_else(pc.is_in(text, pa.array(TRUE_WORDS[1:], pa.string())), "1", text)
    text = pc.if_else(pc.is_in(text, pa.array(FALSE_WORDS[1:], pa.string())), "0", text)
    # As in training: values that read one way only decide, the recorded convention the rest
    # (``2.000`` is 2000 in a decimal-comma column, ``0.25`` a quarter in any column).
    recorded = numbers.COMMA if decimal_comma else numbers.POINT
    values = numbers.parse(text, column_convention(numbers.evidence(text), recorded))
    stray = pc.is_valid(text).to_numpy(zero_copy_only=False) & np.isnan(values)
    if stray.any():
        if stray.sum() == len(text) - text.null_count:
            raise _not_numbers(name, column.type)
        shown = ", ".join(map(repr, list(numbers.value_counts(text.filter(pa.array(stray))))[:3]))
        warnings.warn(
            f"column {name!r} holds {int(stray.sum())} values that are not numbers ({shown}); "
            "they count as missing.",
            GrowmlWarning,
            stacklevel=4,
        )
    return _finite(values, name)


def _not_numbers(name: str, dtype: pa.DataType) -> DataError:
    return DataError(
        f"column {name!r} must hold numbers, as it did in training, but holds {dtype} values "
        "that are not numbers."
    )


def string_values(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """The column as text, as categories are matched: trimmed, and the empty text and the
    other missing marks (``?``, ``NA``...) missing (null), as in a CSV file, so every reader of
    the data (the ONNX model too) agrees on them."""
    try:
        strings = pc.cast(as_chunked(column), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"column {name!r} holds {column.type} values, which growml cannot use as "
            "categories; drop the column or convert it to text."
        ) from None
    return numbers.without_missing_marks(strings)


def category_counts(strings: pa.ChunkedArray) -> dict[str, int]:
    """How often each present value of ``strings`` (``string_values``'s) occurs."""
    counts = pc.value_counts(strings)
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    return {value: count for value, count in pairs if value is not None}


@dataclass(frozen=True)
class NumericColumn:
    """A numeric input column, scaled by ``scaling`` (``growml.data.scaling``); a missing value
    becomes 0, the scaled centre of the column.

    ``boolean`` records that the training column held booleans (read as 0/1), so that the
    ONNX export can take them as text the way a CSV writes them; ``decimal_comma`` that its
    numbers were written as text with a decimal comma, so rows to predict on are read so too.
    """

    name: str
    scaling: Scaling
    missing_indicator: bool
    boolean: bool = False
    decimal_comma: bool = False

    @property
    def output_names(self) -> list[str]:
        return [self.name] + ([f"{self.name}_missing"] if self.missing_indicator else [])

    @classmethod
    def fit(
        cls,
        name: str,
        column: pa.ChunkedArray,
        decimal_comma: bool = False,
        scaling: type[Scaling] = StandardScaling,
    ) -> NumericColumn:
        values = numeric_values(column, name, decimal_comma)
        present = values[~np.isnan(values)]
        boolean = pa.types.is_boolean(as_chunked(column).type)
        fitted = scaling.fit(present)
        return cls(name, fitted, bool(present.size < values.size), boolean, decimal_comma)

    def write(self, column: pa.ChunkedArray, out: np.ndarray) -> None:
        scaled = self.scaling.apply(numeric_values(column, self.name, self.decimal_comma))
        missing = np.isnan(scaled)
        scaled[missing] = 0.0
        out[:, 0] = scaled
        if self.missing_indicator:
            out[:, 1] = missing


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical input column: one-hot over ``categories`` (sorted), others all zeros."""

    name: str
    categories: tuple[str, ...]
    missing_indicator: bool

    @property
    def output_names(self) -> list[str]:
        names = [f"{self.name}={category}" for category in self.categories]
        return names + ([f"{self.name}_missing"] if self.missing_indicator else [])

    @classmethod
    def fit(cls, name: str, column: pa.ChunkedArray, max_categories: int) -> CategoricalColumn:
        strings = string_values(column, name)
        return cls.from_counts(name, category_counts(strings), strings.null_count, max_categories)

    @classmethod
    def from_counts(
        cls, name: str, counts: dict[str, int], missing: int, max_categories: int
    ) -> CategoricalColumn:
        """The column whose training rows hold each category ``counts`` times (present values
        only) and ``missing`` missing values."""
        # Most frequent first, ties by value, so the kept set never depends on row order.
        kept = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:max_categories]
        if len(counts) > max_categories:
            warnings.warn(
                f"column {name!r} has {len(counts)} categories; the {max_categories} most "
                "frequent are one-hot encoded and the others count as none (raise "
                "data.max_categories to keep more).",
                GrowmlWarning,
                stacklevel=3,
            )
        return cls(name, tuple(sorted(value for value, _ in kept)), missing > 0)

    def write(self, column: pa.ChunkedArray, out: np.ndarray) -> None:
        strings = string_values(column, self.name)
        value_set = pa.array(self.categories, pa.string())
        index = pc.fill_null(pc.index_in(strings, value_set=value_set), -1).to_numpy()
        rows = np.flatnonzero(index >= 0)
        out[rows, index[rows]] = 1.0
        if self.missing_indicator:
            out[:, len(self.categories)] = pc.is_null(strings).to_numpy()


InputColumn = NumericColumn | CategoricalColumn


# data.scaling for signals and images: one mean and std per channel (Preprocessor.channel_scaled).
CHANNEL_SCALING = "channel"


class Preprocessor:
    """Turns raw feature columns into a float32 matrix; build it with ``Preprocessor.fit``.

    ``readings`` record how each input column was read (``growml.data.columns``), the dropped
    ones too; empty for runs written before they were recorded.
    """

    def __init__(
        self, columns: Sequence[InputColumn], readings: Sequence[ColumnReading] = ()
    ) -> None:
        self.columns = tuple(columns)
        self.readings = tuple(readings)

    @classmethod
    def fit(
        cls,
        features: pa.Table,
        max_categories: int = 50,
        readings: Sequence[ColumnReading] = (),
        scaling: str = "standard",
        signal_shape: Sequence[int] | None = None,
    ) -> Preprocessor:
        """Learn every column's statistics from ``features``, the training rows only.

        ``max_categories`` is how many of the most frequent categories each categorical column
        one-hot encodes; rarer ones become all zeros. ``readings``: how ``read_columns`` read
        the columns (numbers written with a decimal comma are read so at prediction too).
        ``scaling``: how numeric columns are scaled, ``standard``, ``robust`` or ``quantile``
        (``growml.data.scaling``), or ``channel`` for signals and images of ``signal_shape``
        (``channel_scaled``).
        """
        if scaling == CHANNEL_SCALING:
            return cls.channel_scaled(features, readings, signal_shape)
        decimal_comma = {reading.name for reading in readings if reading.decimal_comma}
        columns: list[InputColumn] = []
        for name in features.column_names:
            column = features.column(name)
            if is_numeric_type(column.type):
                columns.append(
                    NumericColumn.fit(name, column, name in decimal_comma, SCALINGS[scaling])
                )
            else:
                columns.append(CategoricalColumn.fit(name, column, max_categories))
        return cls(columns, readings)

    @classmethod
    def channel_scaled(
        cls,
        features: pa.Table,
        readings: Sequence[ColumnReading],
        signal_shape: Sequence[int] | None,
    ) -> Preprocessor:
        """Signals or images of ``signal_shape`` (their columns channel-major) standardised
        with one mean and standard deviation per channel, over every position of it, as
        torchvision's ``Normalize`` does: a pixel that is almost always 0 keeps its scale
        instead of being blown up by its own tiny spread. Each column is then a standard
        column with its channel's constants, so the run files and the ONNX graph are those of
        standard scaling."""
        names = features.column_names
        if signal_shape is None:
            raise DataError(
                "data.scaling=channel scales the channels of signals or images, and these rows "
                f"have no shape: give one, e.g. model.input_shape=[1,{len(names)}] for one "
                "channel, or use data.scaling=standard."
            )
        if math.prod(signal_shape) != len(names):
            raise DataError(
                f"the shape {list(signal_shape)} holds {math.prod(signal_shape)} values but "
                f"each row has {len(names)} columns; give model.input_shape for every column."
            )
        channels = int(signal_shape[0])
        per_channel = len(names) // channels
        columns: list[InputColumn] = []
        for channel in range(channels):
            group = names[channel * per_channel : (channel + 1) * per_channel]
            values = [numeric_values(features.column(name), name) for name in group]
            present = np.concatenate([v[~np.isnan(v)] for v in values])
            scaling = StandardScaling(*mean_and_std(present))
            for name, column in zip(group, values, strict=True):
                missing = bool(np.isnan(column).any())
                columns.append(NumericColumn(name, scaling, missing))
        return cls(columns, readings)

    @property
    def feature_names(self) -> list[str]:
        """The raw input columns ``transform`` needs, in order."""
        return [column.name for column in self.columns]

    @property
    def output_names(self) -> list[str]:
        """One name per output column: ``age``, ``age_missing``, ``color=red``."""
        return [name for column in self.columns for name in column.output_names]

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def numeric_outputs(self) -> list[int]:
        """The output columns that hold a standardised number (booleans, missing indicators
        and one-hot columns excluded): what a numeric embedding embeds."""
        starts = np.cumsum([0] + [len(column.output_names) for column in self.columns])
        return [
            int(start)
            for column, start in zip(self.columns, starts, strict=False)
            if isinstance(column, NumericColumn) and not column.boolean
        ]

    @property
    def dropped(self) -> list[str]:
        """The columns training read and left out (dates, identifiers...): rows to predict on
        may hold them without remark."""
        return [reading.name for reading in self.readings if reading.read_as == "dropped"]

    @property
    def scaling(self) -> str:
        """How the numeric columns are scaled (``standard`` when there are none)."""
        kinds = {c.scaling.kind for c in self.columns if isinstance(c, NumericColumn)}
        return kinds.pop() if len(kinds) == 1 else StandardScaling.kind

    @property
    def decimal_comma(self) -> list[str]:
        """The numeric columns whose numbers, given as text, are written with a decimal comma."""
        return [c.name for c in self.columns if isinstance(c, NumericColumn) and c.decimal_comma]

    @property
    def categories(self) -> dict[str, tuple[str, ...]]:
        """Each categorical column's known values."""
        return {c.name: c.categories for c in self.columns if isinstance(c, CategoricalColumn)}

    def transform(self, features: pa.Table) -> np.ndarray:
        """The float32 matrix, one row per row of ``features``; extra columns are ignored."""
        missing = [name for name in self.feature_names if name not in features.column_names]
        if missing:
            raise DataError(
                f"column {missing[0]!r} is missing from the data; the model needs the columns "
                f"{', '.join(self.feature_names)}."
            )
        out = np.zeros((features.num_rows, self.n_outputs), dtype=np.float32)
        start = 0
        for column in self.columns:
            width = len(column.output_names)
            column.write(features.column(column.name), out[:, start : start + width])
            start += width
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings; ``from_dict`` rebuilds a preprocessor that transforms the same."""
        columns = []
        for column in self.columns:
            if isinstance(column, NumericColumn):
                entry = {
                    "kind": "numeric",
                    **column.scaling.to_dict(),
                    "boolean": column.boolean,
                    "decimal_comma": column.decimal_comma,
                }
            else:
                entry = {"kind": "categorical", "categories": list(column.categories)}
            columns.append(
                {"name": column.name, **entry, "missing_indicator": column.missing_indicator}
            )
        reading = [entry.model_dump() for entry in self.readings]
        return {
            "version": _FORMAT_VERSION,
            "scaling": self.scaling,
            "columns": columns,
            "reading": reading,
        }

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> Preprocessor:
        """The preprocessor that ``to_dict`` described."""
        try:
            if settings["version"] != _FORMAT_VERSION:
                raise KeyError("version")
            # Runs written before data.scaling existed standardised their numbers.
            scaling = SCALINGS[settings.get("scaling", StandardScaling.kind)]
            columns: list[InputColumn] = []
            for entry in settings["columns"]:
                name, indicator = str(entry["name"]), bool(entry["missing_indicator"])
                if entry["kind"] == "numeric":
                    fitted = scaling.from_dict(entry)
                    # Runs written before booleans were recorded read them as numbers.
                    boolean = bool(entry.get("boolean", False))
                    comma = bool(entry.get("decimal_comma", False))
                    columns.append(NumericColumn(name, fitted, indicator, boolean, comma))
                elif entry["kind"] == "categorical":
                    categories = tuple(str(value) for value in entry["categories"])
                    columns.append(CategoricalColumn(name, categories, indicator))
                else:
                    raise KeyError("kind")
            readings = [ColumnReading.model_validate(e) for e in settings.get("reading", [])]
        except (KeyError, TypeError, ValueError):
            raise DataError(
                "the saved preprocessing is incomplete or from another growml version; "
                "train the model again."
            ) from None
        return cls(columns, readings)

    def __repr__(self) -> str:
        return f"Preprocessor({len(self.columns)} columns -> {self.n_outputs} outputs)"


class TargetEncoder:
    """Targets to what the loss expects, and back.

    Classification: labels to int64 indices into ``classes`` (sorted). Regression: values to
    float32 standardised with the training ``mean`` and ``std``.
    """

    def __init__(
        self,
        task: str,
        classes: Sequence[Any] = (),
        mean: float = 0.0,
        std: float = 1.0,
        name: str | None = None,
    ) -> None:
        self.task = task
        self.classes = list(classes)
        self.mean = mean
        self.std = std
        self.name = name  # the target column's name (None in runs written before it was kept)

    @classmethod
    def fit(
        cls, target: pa.ChunkedArray | np.ndarray, task: str, name: str | None = None
    ) -> TargetEncoder:
        """Learn the classes (classification) or the scale (regression) from ``target`` (the
        column ``name``).

        ``task`` is ``"classification"`` or ``"regression"``; for regression pass only the
        training rows.
        """
        if task == "classification":
            labels = pc.unique(as_chunked(target).drop_null()).to_pylist()
            return cls(task, sorted(labels), name=name)
        if task == "regression":
            values = numeric_values(as_chunked(target), "target")
            mean, std = mean_and_std(values[~np.isnan(values)])
            return cls(task, mean=mean, std=std, name=name)
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")

    @property
    def n_outputs(self) -> int:
        """Network outputs: one per class for three or more classes, else one."""
        return len(self.classes) if len(self.classes) > 2 else 1

    def encode(self, target: pa.ChunkedArray | np.ndarray) -> np.ndarray:
        """int64 class indices, or float32 standardised values."""
        values = as_chunked(target)
        if self.task == "regression":
            return ((numeric_values(values, "target") - self.mean) / self.std).astype(np.float32)
        value_set = pa.array(self.classes)
        classes = ", ".join(map(str, self.classes))
        try:
            index = pc.index_in(values.cast(value_set.type), value_set=value_set)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(
                f"target labels of type {values.type} do not match the classes seen in training "
                f"({classes})."
            ) from None
        if index.null_count:
            unknown = values.filter(pc.is_null(index))[0].as_py()
            raise DataError(
                f"target label {unknown!r} was not seen in training; the classes are {classes}."
            )
        return index.to_numpy().astype(np.int64)

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        """Original labels from class indices, or values on the original scale."""
        encoded = np.asarray(encoded)
        if self.task == "regression":
            return encoded.astype(np.float64) * self.std + self.mean
        return np.asarray(self.classes)[encoded.astype(np.int64)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings; ``from_dict`` rebuilds the same encoder."""
        return {
            "task": self.task,
            "classes": self.classes,
            "mean": self.mean,
            "std": self.std,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> TargetEncoder:
        """The encoder that ``to_dict`` described."""
        try:
            return cls(
                settings["task"],
                list(settings["classes"]),
                float(settings["mean"]),
                float(settings["std"]),
                settings.get("name"),
            )
        except (KeyError, TypeError, ValueError):
            raise DataError(
                "the saved target encoding is incomplete; train the model again."
            ) from None

    def __repr__(self) -> str:
        if self.task == "regression":
            return f"TargetEncoder(regression, mean={self.mean:.4g}, std={self.std:.4g})"
        return f"TargetEncoder(classification, classes={self.classes})"
