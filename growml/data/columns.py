"""How each raw feature column is read: decided once, the same way for a file and for a table
in memory, recorded in the run, and reused for the rows a model predicts on.

``read_columns`` looks at every column and decides:

* numbers (typed, or text written as a spreadsheet writes them: ``1,234.50``, ``1.234,50``,
  ``1 234,5``), with the missing marks (``?``, ``NA``, ``-``...) made missing; a column that
  is numbers but for a few values (at least ``NUMBER_SHARE`` of its present values and
  ``MIN_NUMBERS`` of them) is read as numbers with those values missing, and a warning shows
  them;
* infinite numbers: refused in a sentence naming the column and the row, or with
  ``data.infinite=missing`` read as missing;
* booleans; categories (any other text, and every dictionary column: a pandas ``category``
  or a dictionary-encoded Parquet column is categories however its values read);
* dropped with a warning: dates and times (typed, or text such as ``2024-01-31``), nested
  values, columns without any value, and identifiers: text whose values all differ (a category
  seen once teaches nothing). Integer columns whose values all differ are kept: counts,
  amounts and years often are.

Whether a comma is a decimal mark is decided per column from the values that read only one
way (``1,5`` or ``1.234,5`` versus ``1.5`` or ``1,234.5``); a column whose every value reads
both ways (``1,234``) follows the other columns of its table, then the file's delimiter (a
``;`` file is written where the comma is the decimal mark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from growml.data import numbers
from growml.data.numbers import COMMA, POINT, Convention
from growml.errors import DataError

# A text column is numbers with a few stray values when at least this share of its present
# values, and at least MIN_NUMBERS of them, are numbers; fewer and the stray values may be the
# point (codes such as 101, 102, 'A7'), so it stays categories.
NUMBER_SHARE = 0.95
MIN_NUMBERS = 20
# Text whose values all differ is an identifier only past a handful of rows.
MIN_IDENTIFIER_VALUES = 20
SHOWN_VALUES = 5
# Schema metadata key under which the file reader leaves the CSV delimiter it used.
DELIMITER_KEY = b"growml.delimiter"
_DATE = (
    r"^(?:\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?"
    r"|\d{1,2}[ -][A-Za-z]{3,9}\.?[ -]\d{2,4}|[A-Za-z]{3,9}\.? \d{1,2},? \d{4})$"
)

_DATES_REASON = "its values are dates or times"
_DATES_ADVICE = "; convert them to numbers to use them"
# The words pyarrow's CSV reader reads as booleans, so text in memory reads as a file would.
BOOLEAN_WORDS = ("True", "TRUE", "true", "False", "FALSE", "false")

# string_view arrived in pyarrow 16; growml reads with 15 too.
_is_string_view = getattr(pa.types, "is_string_view", lambda dtype: False)

ReadAs = Literal["number", "boolean", "category", "dropped"]


class ColumnReading(BaseModel):
    """How one input column was read; written to ``preprocess.json`` and shown by ``report``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    read_as: ReadAs
    from_text: bool = Field(False, description="numbers read from text")
    decimal_comma: bool = False
    thousands: str = Field("", description="the thousands separators the numbers used")
    symbols: str = Field("", description="currency symbols and % the numbers carried")
    missing: int = Field(0, description="values missing once read")
    missing_marks: dict[str, int] = Field(default_factory=dict)
    not_numbers: dict[str, int] = Field(
        default_factory=dict, description="values read as missing because they are not numbers"
    )
    infinite: int = Field(0, description="infinite values read as missing")
    categories: int = 0
    reason: str = Field("", description="why the column was dropped")

    def description(self) -> str:
        """A few words: ``number (text, decimal comma, thousands '.')``, ``dropped: ...``."""
        if self.read_as == "dropped":
            return f"dropped: {self.reason}"
        if self.read_as == "category":
            return f"category ({self.categories} values)"
        if not self.from_text:
            return self.read_as
        details = ["text", "decimal comma" if self.decimal_comma else "decimal point"]
        if self.thousands:
            shown = ", ".join(repr(separator) for separator in self.thousands)
            details.append(f"thousands {shown}")
        if self.symbols.strip("%"):
            details.append(f"currency {', '.join(map(repr, self.symbols.strip('%')))}")
        if "%" in self.symbols:
            details.append("percentages as fractions")
        return f"number ({', '.join(details)})"

    def made_missing(self) -> str:
        """What was read as missing besides empty values: marks, stray text, infinities."""
        parts = [_shown(self.missing_marks), _shown(self.not_numbers)]
        if self.infinite:
            parts.append(f"{self.infinite} infinite")
        return "; ".join(part for part in parts if part)


@dataclass(frozen=True)
class ReadColumns:
    """The feature columns as read (numbers as float64, text cleaned, dropped ones left out),
    one ``ColumnReading`` per input column, and the warnings to show."""

    features: pa.Table
    readings: tuple[ColumnReading, ...]
    notes: tuple[str, ...]


def is_numeric_type(dtype: pa.DataType) -> bool:
    """Whether a column of this arrow type is preprocessed as numbers (booleans included)."""
    return (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_null(dtype)
    )


def is_text_type(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or _is_string_view(dtype)


def as_chunked(values: Any) -> pa.ChunkedArray:
    """An arrow column from a ChunkedArray, Array, numpy array or list, dictionaries decoded
    and text as ``string`` (``large_string`` and ``string_view``, as polars hands text over,
    lack some of the compute kernels the reading needs)."""
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    elif not isinstance(values, pa.ChunkedArray):
        values = pa.chunked_array([pa.array(np.asarray(values))])
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if is_text_type(values.type) and not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values


def read_columns(
    features: pa.Table, source: str, infinite: str = "error", delimiter: str | None = None
) -> ReadColumns:
    """Read every column of ``features`` (rows of ``source``, as messages name it).

    ``infinite`` is ``"error"`` (an infinite number is refused) or ``"missing"``;
    ``delimiter`` is the CSV delimiter the rows came with, if any (see ``DELIMITER_KEY``).
    """
    declared = {
        name: text
        for name in features.column_names
        if (text := _declared_categories(features.column(name))) is not None
    }
    texts = {
        name: numbers.without_missing_marks(as_chunked(features.column(name)))
        for name in features.column_names
        if name not in declared and is_text_type(as_chunked(features.column(name)).type)
    }
    evidences = {name: numbers.evidence(text) for name, text in texts.items()}
    fallback = table_convention(list(evidences.values()), delimiter)
    kept: dict[str, pa.ChunkedArray] = {}
    readings, notes = [], []
    for name in features.column_names:
        column = as_chunked(features.column(name))
        if name in declared:
            reading, values, warning = _read_categories(name, declared[name]), declared[name], ""
        elif name in texts:
            convention = column_convention(evidences[name], fallback)
            reading, values, warning = _read_text(name, column, texts[name], convention, source)
        else:
            reading, values, warning = _read_typed(name, column), None, ""
            if delimiter == ";" and reading.read_as == "number":
                # The CSV reader typed these numbers with a decimal comma (files._read_csv);
                # rows to predict on are read so too.
                reading = reading.model_copy(update={"from_text": True, "decimal_comma": True})
        if reading.read_as == "number":
            values = column if values is None else values
            reading, values = finite(reading, values, source, infinite)
        readings.append(reading)
        if warning:
            notes.append(warning)
        if reading.read_as == "dropped":
            advice = _DATES_ADVICE if reading.reason == _DATES_REASON else ""
            notes.append(f"dropped column {name!r} of {source!r}: {reading.reason}{advice}.")
        else:
            kept[name] = values if values is not None else column
    return ReadColumns(pa.table(kept), tuple(readings), tuple(notes))


def read_numbers_from_text(
    text: pa.ChunkedArray, delimiter: str | None = None
) -> pa.ChunkedArray | None:
    """``text`` as float64 when every present value is a number (a target such as ``1,5``),
    else None; missing marks become null."""
    text = numbers.without_missing_marks(as_chunked(text))
    evidence = numbers.evidence(text)
    convention = column_convention(evidence, table_convention([evidence], delimiter))
    values = numbers.parse(text, convention)
    if np.isnan(values[pc.is_valid(text).to_numpy(zero_copy_only=False)]).any():
        return None
    return pa.chunked_array([pa.array(values, from_pandas=True)])


def table_convention(evidences: list[tuple[int, int]], delimiter: str | None) -> Convention:
    """The decimal convention of a table's columns that do not show their own, from each text
    column's ``numbers.evidence``."""
    only_point = sum(point for point, _ in evidences)
    only_comma = sum(comma for _, comma in evidences)
    if only_point != only_comma:
        return POINT if only_point > only_comma else COMMA
    return COMMA if delimiter == ";" else POINT


def column_convention(evidence: tuple[int, int], fallback: Convention) -> Convention:
    """The decimal convention a column's own values show (its ``numbers.evidence``), else
    ``fallback``."""
    only_point, only_comma = evidence
    if only_point == only_comma:
        return fallback
    return POINT if only_point > only_comma else COMMA


def _read_text(
    name: str, column: pa.ChunkedArray, text: pa.ChunkedArray, convention: Convention, source: str
) -> tuple[ColumnReading, pa.ChunkedArray | None, str]:
    marks = numbers.missing_marks_found(column)
    marks.pop("", None)  # an empty field is plainly missing; the record lists the other marks
    present = len(text) - text.null_count
    if present == 0:
        return _dropped(name, "every value is missing"), None, ""
    if pc.all(pc.is_in(text.drop_null(), pa.array(BOOLEAN_WORDS))).as_py():
        reading = ColumnReading(name=name, read_as="boolean", missing=len(text) - present)
        true = pc.is_in(text, pa.array(BOOLEAN_WORDS[:3]))
        return reading, pc.if_else(pc.is_valid(text), true, pa.scalar(None, pa.bool_())), ""
    amounts = numbers.numbers_only(text, convention)
    values = numbers.to_floats(amounts, convention)
    is_value = pc.is_valid(text).to_numpy(zero_copy_only=False)
    stray = is_value & np.isnan(values)
    found = present - int(stray.sum())
    not_numbers = numbers.value_counts(pc.filter(text, pa.array(stray)))
    if stray.any() and not (found >= MIN_NUMBERS and found >= NUMBER_SHARE * present):
        reading = _read_words(name, text, marks, present)
        warning = ""
        if reading.read_as == "category" and found >= present / 2:
            # Mostly numbers, yet too few to read as numbers: say so rather than one-hot
            # encode a quantity in silence.
            warning = (
                f"column {name!r} of {source!r} is read as categories although {found} of its "
                f"{present} values are numbers; the others are {_shown(not_numbers)} (write "
                "them as numbers, or leave them empty, to read the column as numbers)."
            )
        return reading, text, warning
    reading = ColumnReading(
        name=name,
        read_as="number",
        from_text=True,
        decimal_comma=convention.decimal_comma,
        thousands=numbers.separators_used(amounts, convention),
        symbols=numbers.symbols_used(amounts),
        missing=int(np.isnan(values).sum()),
        missing_marks=marks,
        not_numbers=not_numbers,
    )
    warning = ""
    if not_numbers:
        warning = (
            f"column {name!r} of {source!r} is read as numbers, and its {int(stray.sum())} "
            f"values that are not numbers as missing: {_shown(not_numbers)}."
        )
    return reading, pa.chunked_array([pa.array(values)]), warning


def _declared_categories(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A dictionary column (a pandas ``category``, a dictionary-encoded Parquet column) as the
    text of its values: its writer declared it categories, so its numbers stay categories.
    None for any other column, and for one whose values have no text form."""
    if not pa.types.is_dictionary(column.type):
        return None
    try:
        return pc.cast(as_chunked(column), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _read_categories(name: str, column: pa.ChunkedArray) -> ColumnReading:
    marks = numbers.missing_marks_found(column)
    marks.pop("", None)
    text = numbers.without_missing_marks(column)
    present = len(text) - text.null_count
    if present == 0:
        return _dropped(name, "every value is missing")
    distinct = pc.count_distinct(text.drop_null()).as_py()
    return ColumnReading(
        name=name,
        read_as="category",
        missing=len(text) - present,
        missing_marks=marks,
        categories=distinct,
    )


def _read_words(
    name: str, text: pa.ChunkedArray, marks: dict[str, int], present: int
) -> ColumnReading:
    """A text column that is not numbers: dates, an identifier, or categories."""
    values = text.drop_null()
    if pc.all(pc.match_substring_regex(values, _DATE)).as_py():
        return _dropped(name, _DATES_REASON)
    distinct = pc.count_distinct(values).as_py()
    if distinct == present and present >= MIN_IDENTIFIER_VALUES:
        reason = f"its {present} values all differ, as an identifier's do"
        return _dropped(name, reason)
    missing = len(text) - present
    return ColumnReading(
        name=name, read_as="category", missing=missing, missing_marks=marks, categories=distinct
    )


def _read_typed(name: str, column: pa.ChunkedArray) -> ColumnReading:
    """A column whose values arrive typed (numbers, booleans, dates...), kept as it is."""
    dtype = column.type
    if pa.types.is_nested(dtype):
        return _dropped(name, f"its {dtype} values cannot be used as features")
    if pa.types.is_temporal(dtype):
        # One-hot encoding dates would treat each day as a category; a number (days since a
        # reference date, hour of day...) is what the user should decide on.
        return _dropped(name, _DATES_REASON)
    if column.null_count == len(column) or pa.types.is_null(dtype):
        return _dropped(name, "every value is missing")
    if pa.types.is_boolean(dtype):
        return ColumnReading(name=name, read_as="boolean", missing=column.null_count)
    if is_numeric_type(dtype):
        values = np.array(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
        if np.isnan(values).all():
            return _dropped(name, "every value is missing")
        return ColumnReading(name=name, read_as="number", missing=int(np.isnan(values).sum()))
    distinct = pc.count_distinct(column).as_py()
    return ColumnReading(
        name=name, read_as="category", missing=column.null_count, categories=distinct
    )


def finite(
    reading: ColumnReading,
    values: pa.ChunkedArray,
    source: str,
    infinite: str,
    first_row: int = 0,
) -> tuple[ColumnReading, pa.ChunkedArray]:
    """Refuse an infinite number, or (``infinite="missing"``) read it as missing;
    ``values`` begin at data row ``first_row`` (from 0) of ``source``."""
    floats = np.array(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    rows = np.flatnonzero(np.isinf(floats))
    if rows.size == 0:
        return reading, values
    if infinite != "missing":
        first = int(rows[0])
        raise DataError(
            f"column {reading.name!r} of {source!r} holds an infinite number ({floats[first]}) "
            f"in data row {first_row + first + 1} (counting from 1, the header not counted); "
            "replace it, or set data.infinite=missing to read infinite numbers as missing."
        )
    floats[rows] = np.nan
    update = {"infinite": int(rows.size), "missing": int(np.isnan(floats).sum())}
    return reading.model_copy(update=update), pa.chunked_array([pa.array(floats)])


def _dropped(name: str, reason: str) -> ColumnReading:
    return ColumnReading(name=name, read_as="dropped", reason=reason)


def _shown(counts: dict[str, int]) -> str:
    first = list(counts.items())[:SHOWN_VALUES]
    shown = ", ".join(f"{value!r} ({count})" for value, count in first)
    more = len(counts) - SHOWN_VALUES
    return shown + (f" and {more} more" if more > 0 else "")
