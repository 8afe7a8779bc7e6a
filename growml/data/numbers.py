"""Numbers and missing values as people write them in text: thousands separators, decimal
commas, and the marks spreadsheets and statistics packages leave for a missing value.

pyarrow's CSV reader types a column as numbers only when every value is a plain number, so
``"1,234.50"``, ``"1,5"`` (a decimal comma) or a ``?`` among numbers leaves the whole column as
text. The functions here read such text the way its writer meant, with every step vectorised
in pyarrow (a column of a million values is parsed without a Python loop).

A value is read in one of two conventions:

* decimal point: ``1234.5``, ``1,234.5``, ``1 234.5``, ``1'234.5``;
* decimal comma: ``1234,5``, ``1.234,5``, ``1 234,5``, ``1'234,5``.

Thousands separators must group exactly three digits, so ``1,5`` is never a thousands number.
A currency symbol (``$1,234.50``, ``12,50 €``) is left out, and a percentage is read as the
fraction a spreadsheet holds (``12%`` is 0.12).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# pyarrow's CSV null values (pyarrow.csv.ConvertOptions defaults), and the marks people type
# for "unknown" (R's NA, SAS's ".", the "?" of the UCI files, a dash); compared ignoring case.
MISSING_MARKS = tuple(
    sorted(
        {
            *("", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan"),
            *("n/a", "na", "<na>", "null", "nan", "none", "nil", "missing", "?", "-", "--", "."),
        }
    )
)
# Spaces that spreadsheets put between groups of thousands: a space, a no-break space and a
# narrow no-break space (the French and Swiss conventions), and the Swiss apostrophe.
_SPACES = "'\u00a0\u202f "
_INFINITY = r"^[+-]?(?i:inf|infinity)$"
# Currency symbols a spreadsheet writes before or after a formatted amount.
CURRENCIES = "$€£¥"


@dataclass(frozen=True)
class Convention:
    """How one column writes its numbers: its decimal mark and its thousands separators."""

    decimal_comma: bool

    @property
    def decimal(self) -> str:
        return "," if self.decimal_comma else "."

    @property
    def separators(self) -> str:
        return ("." if self.decimal_comma else ",") + _SPACES

    @property
    def pattern(self) -> str:
        """A regular expression (RE2) that matches a whole number in this convention."""
        decimal = "," if self.decimal_comma else r"\."
        separator = self.separator_class
        thousands = rf"\d{{1,3}}(?:{separator}\d{{3}})+"
        lakhs = rf"\d{{1,2}}(?:{separator}\d{{2}})+{separator}\d{{3}}"  # India: 12,34,567
        digits = rf"(?:\d+|{thousands}|{lakhs})"
        number = rf"(?:{digits}(?:{decimal}\d*)?|{decimal}\d+)(?:[eE][+-]?\d+)?"
        symbol = f"[{CURRENCIES}]"
        space = "[ \u00a0\u202f]?"
        before = f"(?:{symbol}{space})?"
        after = f"(?:{space}[{CURRENCIES}%])?"
        return f"^{before}[+-]?{before}{number}{after}$"

    @property
    def separator_class(self) -> str:
        return "[" + self.separators.replace(".", r"\.") + "]"


POINT, COMMA = Convention(decimal_comma=False), Convention(decimal_comma=True)


def without_missing_marks(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """``text`` trimmed of surrounding spaces, with every missing mark made null."""
    trimmed = pc.utf8_trim_whitespace(text)
    marks = pc.is_in(pc.utf8_lower(trimmed), pa.array(MISSING_MARKS, pa.string()))
    return pc.if_else(marks, pa.scalar(None, pa.string()), trimmed)


def missing_marks_found(text: pa.ChunkedArray) -> dict[str, int]:
    """Each missing mark in ``text`` (as written, trimmed) with how often it occurs."""
    trimmed = pc.utf8_trim_whitespace(text.drop_null())
    marks = pc.filter(trimmed, pc.is_in(pc.utf8_lower(trimmed), pa.array(MISSING_MARKS)))
    return value_counts(marks)


def is_number(text: pa.ChunkedArray, convention: Convention) -> pa.ChunkedArray:
    """Per value: whether it is a number (or an infinity) written in ``convention``; null
    values are not numbers."""
    number = pc.match_substring_regex(text, convention.pattern)
    infinite = pc.match_substring_regex(text, _INFINITY)
    return pc.fill_null(pc.or_(number, infinite), False)


def numbers_only(text: pa.ChunkedArray, convention: Convention) -> pa.ChunkedArray:
    """``text`` with every value that is not a number in ``convention`` made null."""
    return pc.if_else(is_number(text, convention), text, pa.scalar(None, pa.string()))


def parse(text: pa.ChunkedArray, convention: Convention) -> np.ndarray:
    """float64 values of ``text`` (trimmed, missing marks already null) in ``convention``;
    NaN where a value is missing or not a number. Infinities stay infinite."""
    return to_floats(numbers_only(text, convention), convention)


def to_floats(numbers: pa.ChunkedArray, convention: Convention) -> np.ndarray:
    """float64 values of ``numbers`` (as ``numbers_only`` leaves them), NaN where null."""
    percent = pc.fill_null(pc.ends_with(numbers, "%"), False).to_numpy(zero_copy_only=False)
    # Plain replacements of the characters present: a regular expression costs ten times more.
    plain = _without(numbers, CURRENCIES + "%" + convention.separators)
    if convention.decimal_comma:
        plain = pc.replace_substring(plain, ",", ".")
    values = pc.cast(pc.utf8_lower(plain), pa.float64()).to_numpy(zero_copy_only=False)
    values = np.array(values, dtype=np.float64)
    # A spreadsheet shows 0.12 formatted as a percentage as 12 %, and writes that to CSV.
    values[percent] /= 100
    return values


def symbols_used(numbers: pa.ChunkedArray) -> str:
    """The currency symbols and ``%`` that ``numbers`` (``numbers_only``'s) carry."""
    return _present(numbers, CURRENCIES + "%")


def separators_used(numbers: pa.ChunkedArray, convention: Convention) -> str:
    """The thousands separators that ``numbers`` (``numbers_only``'s) use, in
    ``convention``'s order; a space beside a currency symbol or ``%`` is not one."""
    amounts = pc.utf8_trim(_without(numbers, CURRENCIES + "%"), " \u00a0\u202f")
    return _present(amounts, convention.separators)


def _present(text: pa.ChunkedArray, characters: str) -> str:
    """The ``characters`` some value of ``text`` holds."""
    # A byte search of the values' buffer rules most characters out in microseconds (the
    # buffer may hold bytes of no value, so a hit is confirmed by pyarrow's scan, 10x slower).
    data = b"".join(
        chunk.buffers()[2].to_pybytes() for chunk in text.chunks if chunk.buffers()[2] is not None
    )
    return "".join(
        c for c in characters if c.encode() in data and pc.any(pc.match_substring(text, c)).as_py()
    )


def _without(text: pa.ChunkedArray, characters: str) -> pa.ChunkedArray:
    for character in _present(text, characters):
        text = pc.replace_substring(text, character, "")
    return text


def evidence(text: pa.ChunkedArray) -> tuple[int, int]:
    """How many values of ``text`` are numbers only with a decimal point, and how many only
    with a decimal comma; values such as ``1,234`` or ``12`` read in both and count for neither.
    """
    point, comma = is_number(text, POINT), is_number(text, COMMA)
    only_point = pc.sum(pc.and_(point, pc.invert(comma))).as_py() or 0
    only_comma = pc.sum(pc.and_(comma, pc.invert(point))).as_py() or 0
    return int(only_point), int(only_comma)


def value_counts(values: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """Each distinct value with how often it occurs, most frequent first (ties by value)."""
    counts = pc.value_counts(values)
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    return dict(sorted(pairs, key=lambda pair: (-pair[1], pair[0])))
