"""``X`` and ``y`` as scikit-learn hands them over, checked once and turned into the arrow
columns growml reads.

Arrays and DataFrames are checked by scikit-learn's ``validate_data`` (its messages, its
``n_features_in_`` and ``feature_names_in_`` bookkeeping); pyarrow Tables by the same rules
here. Numbers, categories, text and missing values all pass: growml's preprocessing handles
them.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from growml.data.table import MIN_ROWS

# Categorical and text columns pass through (dtype=None); missing values are imputed.
_X_CHECKS = {"dtype": None, "accept_sparse": False}


def _x_checks(infinite: str) -> dict[str, Any]:
    """``validate_data``'s checks of ``X`` under the setting ``data.infinite``: with
    ``missing`` an infinite number passes, to be read as missing as a file's is; else
    scikit-learn refuses it in its own words."""
    return {**_X_CHECKS, "ensure_all_finite": False if infinite == "missing" else "allow-nan"}


def training_columns(
    estimator: BaseEstimator, X: Any, y: Any, task: str, infinite: str = "error"
) -> tuple[pa.Table, pa.ChunkedArray]:
    """The feature columns and the target of ``fit(X, y)``; sets ``n_features_in_`` (and
    ``feature_names_in_`` for named columns) on ``estimator``. ``infinite`` is the setting
    ``data.infinite``."""
    y_checks = {"y_numeric": task == "regression"}
    if isinstance(X, pa.Table):
        # validate_data without X forgets feature names, so the table's come after it.
        y = validate_data(estimator, y=y, **y_checks)
        _check_table(estimator, X, reset=True)
        rows = X.num_rows
    else:
        checked, y = validate_data(
            estimator,
            _checkable(X),
            y,
            reset=True,
            ensure_min_samples=MIN_ROWS,
            **_x_checks(infinite),
            **y_checks,
        )
        rows = len(checked)
    if len(y) != rows:
        raise ValueError(f"X has {rows} rows but y has {len(y)}; give one target per row.")
    if task == "classification":
        check_classification_targets(y)
        if np.unique(y).size < 2:
            raise ValueError("y has a single class; a classifier needs at least two classes.")
    features = X if isinstance(X, pa.Table) else _as_table(estimator, X, checked)
    try:
        target = pa.chunked_array([pa.array(y)])
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        raise ValueError("y mixes values of different types; give labels of one type.") from None
    return features, target


def prediction_rows(estimator: BaseEstimator, X: Any) -> pa.Table:
    """``X`` checked against what ``fit`` saw, as the columns the fitted run reads (a column
    of ``fit`` that growml dropped, one without any value, is left out here too)."""
    check_is_fitted(estimator)
    if isinstance(X, pa.Table):
        _check_table(estimator, X, reset=False)
        table = X
    else:
        infinite = estimator.run_.config.get("data", {}).get("infinite", "error")
        checked = validate_data(estimator, _checkable(X), reset=False, **_x_checks(infinite))
        table = _as_table(estimator, X, checked)
    return table.select(estimator.run_.preprocessor.feature_names)


def column_names(estimator: BaseEstimator) -> list[str]:
    """The names of the columns of ``fit``: ``feature_names_in_``, or ``x0``, ``x1``, ... for
    an array (the names a saved run and its ONNX model then use)."""
    if hasattr(estimator, "feature_names_in_"):
        return [str(name) for name in estimator.feature_names_in_]
    return [f"x{j}" for j in range(estimator.n_features_in_)]


def _check_table(estimator: BaseEstimator, X: pa.Table, reset: bool) -> None:
    """``n_features_in_`` and ``feature_names_in_`` of a pyarrow Table, as ``validate_data``
    keeps them for arrays and DataFrames."""
    if reset:
        if X.num_rows < MIN_ROWS:
            raise ValueError(
                f"Found a table with {X.num_rows} sample(s) while a minimum of {MIN_ROWS} "
                "is required."
            )
        estimator.n_features_in_ = X.num_columns
        estimator.feature_names_in_ = np.asarray(X.column_names, dtype=object)
        return
    missing = [name for name in column_names(estimator) if name not in X.column_names]
    if missing:
        raise ValueError(f"the table lacks the column(s) {missing} seen in fit.")


def _checkable(X: Any) -> Any:
    """``X`` as ``validate_data`` can check it: a DataFrame's date and time columns as objects
    (numpy finds no common type for dates and numbers); ``_as_table`` still reads them typed,
    so that they are dropped as a file's are."""
    pandas = sys.modules.get("pandas")
    if pandas is None or not isinstance(X, pandas.DataFrame):
        return X
    temporal = [name for name, dtype in X.dtypes.items() if dtype.kind in "mM"]
    return X.astype(dict.fromkeys(temporal, object)) if temporal else X


def _as_table(estimator: BaseEstimator, X: Any, checked: np.ndarray) -> pa.Table:
    """``X`` as columns named as in ``fit``; DataFrames keep their column types."""
    names = column_names(estimator)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(X, pandas.DataFrame):
        try:
            table = pa.Table.from_pandas(X, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
            raise ValueError(f"X cannot be read as columns: {error}") from None
        return table.rename_columns(names)
    columns = [checked[:, j] for j in range(checked.shape[1])]
    if checked.dtype == object:
        columns = [
            _object_column(column, name) for column, name in zip(columns, names, strict=True)
        ]
    return pa.table(columns, names=names)


def _object_column(values: np.ndarray, name: str) -> pa.Array:
    try:
        return pa.array(values.tolist(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        raise ValueError(
            f"column {name!r} of X mixes values of different types; give numbers or text."
        ) from None
