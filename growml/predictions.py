"""Predictions as a table: the one format ``growml predict`` writes, whichever engine ran, and
the files it writes them to (the format from the extension)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from growml.errors import DataError


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


def _csv_bytes(predictions: pa.Table) -> bytes:
    import pyarrow.csv as pacsv

    buffer = pa.BufferOutputStream()
    pacsv.write_csv(predictions, buffer)
    return buffer.getvalue().to_pybytes()


def _parquet_bytes(predictions: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    buffer = pa.BufferOutputStream()
    pq.write_table(predictions, buffer)
    return buffer.getvalue().to_pybytes()


def _jsonl_bytes(predictions: pa.Table) -> bytes:
    # Strict JSON: a NaN (a value the network could not compute) is written as null, which
    # every reader accepts, where NaN would make the line invalid.
    rows = (
        {key: None if value != value else value for key, value in row.items()}
        for row in predictions.to_pylist()
    )
    lines = (json.dumps(row, allow_nan=False) + "\n" for row in rows)
    return "".join(lines).encode("utf-8")


_ENCODERS: dict[str, Callable[[pa.Table], bytes]] = {
    ".csv": _csv_bytes,
    ".parquet": _parquet_bytes,
    ".jsonl": _jsonl_bytes,
}
PREDICTION_FORMATS = tuple(_ENCODERS)


def prediction_format(path: Path) -> str:
    """The format of a predictions file from its extension (``.csv``, ``.parquet``,
    ``.jsonl``, in any case); DataError for any other, before any work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in _ENCODERS:
        raise DataError(
            f"cannot tell the format of {str(path)!r} from its extension; "
            "name the predictions file .csv, .parquet or .jsonl."
        )
    return suffix


def encode_predictions(predictions: pa.Table, fmt: str = ".csv") -> bytes:
    """``predictions`` as the bytes of a ``fmt`` file (one of ``PREDICTION_FORMATS``)."""
    return _ENCODERS[fmt](predictions)


def write_predictions(predictions: pa.Table, path: Path) -> None:
    """Write ``predictions`` to ``path`` in the format its extension names, atomically: a
    failure leaves no file behind."""
    from growml.atomic import write_bytes

    data = encode_predictions(predictions, prediction_format(path))
    try:
        write_bytes(path, data)
    except OSError as error:
        raise DataError(
            f"cannot write the predictions to {str(path)!r}: {error.strerror or error}."
        ) from None
