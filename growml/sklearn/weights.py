"""``sample_weight`` as scikit-learn users give it, checked once and turned into the weights
growml trains with.

A row of weight 0 counts as absent, and is removed before anything is fitted (the split, the
preprocessing, the class list), so that it is absent exactly; weights that are all alike are
no weights at all (every loss growml has is a weighted mean), so the unweighted fit runs
unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.utils.validation import _check_sample_weight

from growml.data.table import MIN_ROWS


def weighted_rows(
    sample_weight: Any, features: pa.Table, target: pa.ChunkedArray, task: str
) -> tuple[pa.Table, pa.ChunkedArray, np.ndarray | None]:
    """``features`` and ``target`` without the rows of weight 0, and the weights of the rows
    kept (None when they are all alike). scikit-learn's ``_check_sample_weight`` refuses a
    wrong length, negative, missing or infinite weights and weights that are all 0, in its
    own words."""
    if sample_weight is None:
        return features, target, None
    # A placeholder of the right length: the weights are checked against the rows only.
    weights = _check_sample_weight(
        sample_weight, np.empty((features.num_rows, 0)), dtype=np.float64, ensure_non_negative=True
    )
    kept = weights > 0
    if not kept.all():
        mask = pa.array(kept)
        features, target, weights = features.filter(mask), target.filter(mask), weights[kept]
        _check_kept(target, task)
    if np.all(weights == weights[0]):
        return features, target, None
    return features, target, weights


def _check_kept(target: pa.ChunkedArray, task: str) -> None:
    """The rows of weight above 0 must still make a training set."""
    if task == "classification" and len(pc.unique(target)) < 2:
        raise ValueError(
            "sample_weight leaves rows of a single class with a weight above 0; a classifier "
            "needs at least two classes."
        )
    if len(target) < MIN_ROWS:
        raise ValueError(
            f"sample_weight leaves {len(target)} rows with a weight above 0; growml needs at "
            f"least {MIN_ROWS}."
        )
