"""Prediction from an exported model with onnxruntime alone: no torch, no growml network code.

``load_onnx(path)`` gives an ``OnnxModel`` that takes raw rows as ``growml predict`` does (a
pyarrow Table, a pandas DataFrame, a dict of columns, a list of dicts, a 2-D array) and turns
each source column into the input the graph expects: float32 with NaN for a missing number
(float64 for models exported before growml took float32), text with ``""`` for a missing
category or boolean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from growml.data.checks import check_inputs, unknown_inputs
from growml.data.files import as_arrow
from growml.data.preprocess import numeric_values, string_values
from growml.errors import DataError, ExportError
from growml.export import metadata
from growml.export.metadata import NUMBER, NUMBERS_INPUT
from growml.predictions import prediction_table

# The numpy type of each kind of graph input (onnxruntime's names).
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}

_LOAD_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
)


class OnnxModel:
    """An exported growml model in an onnxruntime session.

    Args:
        model: the ONNX file's bytes.
        source: how to name the model in messages (its path).
        threads: onnxruntime's intra-op threads; one is fastest for networks this small.

    Attributes:
        info: the metadata properties (task, classes, threshold, inputs, widths, metrics).
    """

    def __init__(self, model: bytes, source: str = "the ONNX model", threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except _LOAD_ERRORS:
            raise ExportError(
                f"{source!r} is not a valid ONNX model; export the run again with growml export."
            ) from None
        info = metadata.decode(self.session.get_modelmeta().custom_metadata_map)
        if info is None:
            raise ExportError(f"{source!r} was not written by growml export; export the run again.")
        self.info = info
        self._kinds = {entry["name"]: entry["type"] for entry in info["inputs"]}
        self._numbers = list(info["numbers_input"])
        self._decimal_comma = set(info["decimal_comma"])
        self._outputs = [value.name for value in self.session.get_outputs()]
        self._dtypes = {
            value.name: _INPUT_DTYPES.get(value.type, object) for value in self.session.get_inputs()
        }

    @property
    def task(self) -> str:
        return str(self.info["task"])

    @property
    def classes(self) -> list[Any]:
        return list(self.info["classes"] or [])

    @property
    def feature_names(self) -> list[str]:
        """The raw input columns, in order."""
        return list(self._kinds)

    @property
    def decimal_comma(self) -> list[str]:
        """The numeric columns whose numbers, given as text, are written with a decimal comma."""
        return sorted(self._decimal_comma)

    def feeds(self, rows: Any, strict: bool = False) -> dict[str, np.ndarray]:
        """The graph's inputs for raw ``rows``: one ``[N, 1]`` array per source column.
        Columns the model does not use and category values it has no category for are warned
        about once each (``strict``: refused); a missing column is an error."""
        table = as_arrow(rows, self.feature_names)
        missing = [name for name in self._kinds if name not in table.column_names]
        if missing:
            raise DataError(
                f"column {missing[0]!r} is missing from the data; the model needs the columns "
                f"{', '.join(self.feature_names)}."
            )
        found = unknown_inputs(
            table,
            [*self.feature_names, *self.info["dropped"]],
            self.info["categories"],
            self.info["target"],
        )
        check_inputs(found, strict)
        feeds = {
            name: _as_input(table.column(name), name, kind, self._decimal_comma).reshape(-1, 1)
            for name, kind in self._kinds.items()
            if name not in self._numbers
        }
        if self._numbers:
            columns = [
                numeric_values(table.column(name), name, name in self._decimal_comma)
                for name in self._numbers
            ]
            feeds[NUMBERS_INPUT] = np.column_stack(columns)
        # A number beyond float32's range becomes ±inf, which the graph reads as missing.
        with np.errstate(over="ignore"):
            return {
                name: values.astype(self._dtypes[name], copy=False)
                for name, values in feeds.items()
            }

    def run(self, rows: Any, strict: bool = False) -> dict[str, np.ndarray]:
        """Every output of the graph for raw ``rows``, by name."""
        feeds = self.feeds(rows, strict)
        try:
            values = self.session.run(self._outputs, feeds)
        except _LOAD_ERRORS as error:
            raise ExportError(f"onnxruntime could not run the model: {error}.") from None
        return dict(zip(self._outputs, values, strict=True))

    def predict(self, rows: Any, strict: bool = False) -> np.ndarray:
        """Predicted labels (classification) or values (regression) for raw rows."""
        return self.run(rows, strict)["value" if self.task == "regression" else "label"]

    def predict_proba(self, rows: Any, strict: bool = False) -> np.ndarray:
        """Class probabilities (rows × classes, in ``classes`` order) for raw rows."""
        if self.task != "classification":
            raise ExportError("predict_proba needs a classification model; this one is regression.")
        return self.run(rows, strict)["probabilities"]

    def prediction_table(self, rows: Any, strict: bool = False) -> pa.Table:
        """Predictions as ``Run.prediction_table`` gives them."""
        outputs = self.run(rows, strict)
        if self.task == "regression":
            return prediction_table(outputs["value"], None, [])
        return prediction_table(outputs["label"], outputs["probabilities"], self.classes)

    def __repr__(self) -> str:
        widths = ", ".join(str(w) for w in self.info["hidden_widths"])
        return f"OnnxModel({self.task}, {len(self._kinds)} columns, hidden widths {widths})"


def load_onnx(path: str | Path, threads: int = 1) -> OnnxModel:
    """The model ``growml export`` wrote at ``path``, ready to predict from raw rows."""
    path = Path(path)
    try:
        model = path.read_bytes()
    except FileNotFoundError:
        raise ExportError(
            f"{str(path)!r} does not exist; write it with growml export RUN."
        ) from None
    except OSError as error:
        raise ExportError(f"cannot read {str(path)!r}: {error.strerror}.") from None
    return OnnxModel(model, str(path), threads)


def _as_input(column: pa.ChunkedArray, name: str, kind: str, decimal_comma: set[str]) -> np.ndarray:
    if kind == NUMBER:
        return numeric_values(column, name, name in decimal_comma)
    text = pc.fill_null(string_values(column, name), "")
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
