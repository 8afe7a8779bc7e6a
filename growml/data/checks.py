"""Rows to predict on checked against what a model knows: the columns it was trained on, and
each categorical column's categories. Both engines (torch and onnxruntime) check with these."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from growml.data.preprocess import string_values
from growml.errors import DataError, GrowmlWarning


@dataclass(frozen=True)
class UnknownInput:
    """Something in rows to predict on that the model was not trained on: a ``column`` it
    does not use (``values`` empty), or a categorical column's ``values`` it has no category
    for."""

    column: str
    values: tuple[str, ...] = ()
    count: int = 0

    def sentence(self, strict: bool) -> str:
        if not self.values:
            what = f"column {self.column!r} is not one the model was trained on"
            return f"{what}; drop it." if strict else f"{what}; it is ignored."
        shown = ", ".join(repr(value) for value in self.values)
        more = f" and {self.count - len(self.values)} more" if self.count > len(self.values) else ""
        what = f"column {self.column!r} holds values the model has no category for ({shown}{more})"
        return f"{what}; map them to known ones." if strict else f"{what}; they count as none."


def unknown_inputs(
    features: pa.Table,
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    target: str | None = None,
) -> list[UnknownInput]:
    """Columns of ``features`` outside ``columns`` (the ``target`` column aside: rows to
    predict on often still hold it), and values of each categorical column (``categories``:
    its known values) outside its categories; missing values are known."""
    known = {*columns, target}
    found = [UnknownInput(name) for name in features.column_names if name not in known]
    for name, known in categories.items():
        if name not in features.column_names:
            continue
        strings = string_values(features.column(name), name)
        known_values = pa.array(list(known), pa.string())
        outside = pc.and_(
            pc.is_valid(strings), pc.invert(pc.is_in(strings, value_set=known_values))
        )
        unseen = pc.unique(pc.filter(strings, outside)).to_pylist()
        if unseen:
            found.append(UnknownInput(name, tuple(sorted(unseen)[:3]), len(unseen)))
    return found


def check_inputs(found: Sequence[UnknownInput], strict: bool) -> None:
    """Warn once per unknown input; with ``strict``, refuse the first."""
    if strict and found:
        raise DataError(found[0].sentence(strict=True))
    for unknown in found:
        warnings.warn(unknown.sentence(strict=False), GrowmlWarning, stacklevel=3)
