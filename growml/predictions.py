"""Predictions as a table: the one format ``growml predict`` writes, whichever engine ran."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa


def prediction_table(
    predicted: np.ndarray, probabilities: np.ndarray | None, classes: Sequence[Any]
) -> pa.Table:
    """``prediction``, and for classification one ``probability_<class>`` column per class
    (``probabilities`` is rows × classes, in ``classes`` order; None for regression)."""
    columns: dict[str, Any] = {"prediction": np.asarray(predicted).tolist()}
    if probabilities is not None:
        for index, label in enumerate(classes):
            columns[f"probability_{label}"] = probabilities[:, index].astype(np.float64)
    return pa.table(columns)
