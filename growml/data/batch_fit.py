"""``Preprocessor.fit`` in one pass over batches of training rows, for data larger than memory.

The statistics are those ``Preprocessor.fit`` computes on every training row at once: a numeric
column's mean and standard deviation (merged batch by batch with Chan, Golub and LeVeque's
update of the count, mean and sum of squared deviations, "Algorithms for computing the sample
variance", 1983: equal to numpy's to a few ulps), whether it has a missing value; a categorical
column's count of each category and of missing values, from which the most frequent
``max_categories`` are kept exactly as ``CategoricalColumn.fit`` keeps them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from growml.data.columns import ColumnReading
from growml.data.preprocess import (
    CategoricalColumn,
    InputColumn,
    NumericColumn,
    Preprocessor,
    category_counts,
    numeric_values,
    string_values,
)
from growml.data.scaling import StandardScaling


@dataclass
class Moments:
    """Count, mean and sum of squared deviations of a numeric column's present values, and
    whether any value was missing."""

    count: int = 0
    mean: float = 0.0
    squares: float = 0.0
    missing: bool = False

    def update(self, values: np.ndarray) -> None:
        """Take in ``values`` (float64, NaN where missing)."""
        present = values[~np.isnan(values)]
        self.missing = self.missing or present.size < values.size
        if not present.size:
            return
        mean = float(present.mean())
        squares = float(np.square(present - mean).sum())
        total = self.count + present.size
        delta = mean - self.mean
        self.mean += delta * present.size / total
        self.squares += squares + delta * delta * self.count * present.size / total
        self.count = total

    def scaling(self) -> StandardScaling:
        """The standard scaling of the values taken in (``mean_and_std``'s: std 1 when the
        column is constant or empty)."""
        if not self.count:
            return StandardScaling(0.0, 1.0)
        std = float(np.sqrt(self.squares / self.count))
        return StandardScaling(self.mean, std if std > 0 else 1.0)


class BatchStatistics:
    """The ``Preprocessor`` of the training rows, fed one batch at a time (``update``) with the
    columns ``read_batch`` reads; ``readings`` say which columns there are and how they were
    read, ``max_categories`` as ``Preprocessor.fit``. Only standard scaling is fitted so."""

    def __init__(self, readings: Sequence[ColumnReading], max_categories: int) -> None:
        self.readings = tuple(readings)
        self.max_categories = max_categories
        used = [reading for reading in readings if reading.read_as != "dropped"]
        self._numeric = {r.name: Moments() for r in used if r.read_as in ("number", "boolean")}
        self._categories = {r.name: Counter[str]() for r in used if r.read_as == "category"}
        self._missing = dict.fromkeys(self._categories, 0)
        self._comma = {r.name for r in used if r.decimal_comma}

    def update(self, features: pa.Table) -> None:
        """Take in a batch of training rows (``read_batch``'s columns)."""
        for name, moments in self._numeric.items():
            column = features.column(name)
            moments.update(numeric_values(column, name, name in self._comma))
        for name, counts in self._categories.items():
            strings = string_values(features.column(name), name)
            counts.update(category_counts(strings))
            self._missing[name] += strings.null_count

    def preprocessor(self) -> Preprocessor:
        """The fitted preprocessing: what ``Preprocessor.fit`` gives on all the rows taken in."""
        columns: list[InputColumn] = []
        for reading in self.readings:
            name = reading.name
            if name in self._numeric:
                moments = self._numeric[name]
                boolean = reading.read_as == "boolean"
                columns.append(
                    NumericColumn(
                        name, moments.scaling(), moments.missing, boolean, name in self._comma
                    )
                )
            elif name in self._categories:
                columns.append(
                    CategoricalColumn.from_counts(
                        name, dict(self._categories[name]), self._missing[name], self.max_categories
                    )
                )
        return Preprocessor(columns, self.readings)
