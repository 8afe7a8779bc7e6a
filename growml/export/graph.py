"""The ONNX graph of a run: raw columns in, the fitted preprocessing, the network, the answer out.

The graph is built node by node with the ``onnx`` helper API rather than traced with
``torch.onnx.export``. Measured on a grown digits network (64 → 23 → 10, onnxruntime 1.32,
one thread, medians):

* torch has no string tensors, so its exporter cannot take categories or booleans as text;
  the preprocessing has to be built by hand in any case, and the traced network grafted on.
* The network alone: ``torch.onnx.export(dynamo=True)`` at opset 18 gives the same three
  nodes after its optimiser (``Gemm``, ``Relu``, ``Gemm``) in 10.0 KiB and 5.7 µs per row;
  built here, 6.9 KiB and 5.5 µs — equal within noise, so speed does not decide it.
* Tracing took 2.6 s and imports torch's exporter stack; building the graph takes
  milliseconds and needs no torch at all, which keeps ``growml export`` within its 2 s.
* Building by hand also lets the preprocessing's column order fold into the first weight
  matrix (below), so joining the two parts costs no node.

Whole models are measured by ``benchmarks/onnx_latency.py``.

What is in the graph:

* the numeric columns as one input ``numbers``, ``[N, k]`` ``tensor(float)``: the convention
  of scikit-learn's converters, which serving code feeds. The layout with one ``[N, 1]`` input
  per column (``grouped=False``) computes the same, but a single row took 72 µs against 9.6 µs
  on digits' 64 columns, whatever the graph did with its inputs: a graph that only concatenates
  64 inputs takes 58 µs, one ``[1, 64]`` input 4 µs — the cost is onnxruntime's Python binding,
  about 0.9 µs per input and call, not a node;
* the float32 numbers are cast to float64 inside the graph and standardised there, so no
  rounding is added to the input's own. Measured on 10^5 values with two decimals, largest
  error in standard deviations: age (40 ± 12) 3.1e-7 this way against 3.9e-7 standardised in
  float32, income (35,000 ± 30,000) 2.5e-7 against 4.7e-7, a year (2010 ± 3) 2.0e-5 either
  way, a price (2.5e6 ± 40) 3.0e-3 either way: beyond the input's own rounding, float32
  arithmetic doubles the error, and for the last two the input's rounding alone breaks the
  1e-5 parity. So a model whose column values need more digits than float32 holds
  (``FLOAT32_MEAN_TO_STD``) takes ``tensor(double)`` numbers;
* ``tensor(string)`` for categories and booleans, one input each, the empty string standing
  for a missing value as it does in a CSV;
* numbers: non-finite values are missing (``IsNaN(x - x)`` catches NaN and ±inf in one
  test), standardised ``(x - mean) / std``, cast to float and set to 0 (the mean) where
  missing; booleans are read by ``ai.onnx.ml.LabelEncoder`` from the words pyarrow's CSV reader
  accepts (``true``/``True``/``TRUE``/``1`` and the false ones), anything else missing;
* categories: ``ai.onnx.ml.OneHotEncoder`` with ``zeros=1``, so a category that was not kept
  or never seen is all zeros, as in training; the missing indicator is one more category, ``""``;
* the preprocessing writes its columns grouped by kind; the permutation back to the order of
  ``preprocess.json`` is folded into the rows of the first weight matrix, so it costs nothing;
* the network as ``Gemm`` + activation per layer, at its final widths (pruned weights are the
  zeros the run saved); GELU is the ``Gelu`` operator from opset 20, its erf form before;
* outputs: ``label`` (the class labels, binary decisions at the stored threshold) and
  ``probabilities`` for classification, ``value`` in the target's units for regression.

References: ONNX operators, https://onnx.ai/onnx/operators/ ; ``ai.onnx.ml`` operators,
https://onnx.ai/onnx/operators/index_ml.html .
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from growml.data.preprocess import (
    FALSE_WORDS,
    TRUE_WORDS,
    CategoricalColumn,
    NumericColumn,
    Preprocessor,
    TargetEncoder,
)
from growml.errors import ExportError
from growml.export.metadata import DEFAULT_OPSET, MIN_OPSET, NUMBER, NUMBERS_INPUT, TEXT

MAX_OPSET = onnx.defs.onnx_opset_version()
__all__ = ["DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET", "build_model", "input_types", "number_type"]
_ML_OPSET = 2  # LabelEncoder with default_float
_GELU_OPSET = 20


OUTPUTS = {"classification": ("label", "probabilities"), "regression": ("value",)}

# float32 rounds a value by up to 2^-24 of itself: |mean| / std · 6e-8 standard deviations.
# Past 64 (a year spread over a few years, a price in millions spread over tens) that is 4e-6,
# which a trained network amplifies past the 1e-5 parity (measured: a price of 2.5e6 with a
# spread of 40 moved probabilities by 8e-3); such models take their numbers as float64.
FLOAT32_MEAN_TO_STD = 64.0


@dataclass(frozen=True)
class NetworkWeights:
    """The network as arrays: ``layers`` are ``(weight (out, in), bias (out,))`` pairs."""

    layers: Sequence[tuple[np.ndarray, np.ndarray]]
    activation: str


def input_types(preprocessor: Preprocessor) -> dict[str, str]:
    """Each source column's input kind: ``number`` (float32) or ``text`` (string)."""
    return {
        column.name: NUMBER if isinstance(column, NumericColumn) and not column.boolean else TEXT
        for column in preprocessor.columns
    }


def number_type(preprocessor: Preprocessor) -> int:
    """The numeric inputs' element type: float32, the convention of scikit-learn's converters,
    unless a column's values carry more digits than float32 holds (``FLOAT32_MEAN_TO_STD``)."""
    wide = any(
        abs(column.mean) > FLOAT32_MEAN_TO_STD * column.std
        for column in preprocessor.columns
        if isinstance(column, NumericColumn) and not column.boolean
    )
    return TensorProto.DOUBLE if wide else TensorProto.FLOAT


def grouped_numbers(preprocessor: Preprocessor) -> list[str]:
    """The columns the grouped layout's ``numbers`` input holds, in its column order."""
    return [name for name, kind in input_types(preprocessor).items() if kind == NUMBER]


def build_model(
    preprocessor: Preprocessor,
    network: NetworkWeights,
    target: TargetEncoder,
    threshold: float | None,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
    grouped: bool = True,
) -> onnx.ModelProto:
    """The whole prediction path as one ONNX model; ``metadata`` becomes its properties.

    ``grouped`` (the default) takes the numeric columns (``grouped_numbers``) as one
    ``[N, k]`` float32 input named ``numbers``; without it each numeric column is an input of
    its own. onnxruntime's Python binding costs about 0.9 µs per input and run whatever the
    graph does with it, which dominates a single row of a wide numeric table.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"opset {opset} is not supported; choose one from {MIN_OPSET} to {MAX_OPSET}."
        )
    numbers = grouped_numbers(preprocessor) if grouped else []
    reserved = [*OUTPUTS[target.task], *([NUMBERS_INPUT] if numbers else [])]
    clash = sorted(set(reserved) & set(preprocessor.feature_names))
    if clash:
        raise ExportError(
            f"column {clash[0]!r} has the name of an input or output of the ONNX model; "
            "rename the column and train again."
        )
    graph = _Graph(opset, taken=[*preprocessor.feature_names, *reserved])
    number = number_type(preprocessor)
    features = _preprocessing(graph, preprocessor, bool(numbers), number)
    logits = _network(graph, features, network, opset)
    if target.task == "regression":
        _regression_output(graph, logits, target)
    else:
        _classification_outputs(graph, logits, target, threshold)
    inputs = [
        helper.make_tensor_value_info(
            name, number if kind == NUMBER else TensorProto.STRING, ["N", 1]
        )
        for name, kind in input_types(preprocessor).items()
        if name not in numbers
    ]
    if numbers:
        shape = ["N", len(numbers)]
        inputs.insert(0, helper.make_tensor_value_info(NUMBERS_INPUT, number, shape))
    model = helper.make_model(
        helper.make_graph(graph.nodes, "growml", inputs, graph.outputs, graph.initializers),
        opset_imports=[
            helper.make_opsetid("", opset),
            helper.make_opsetid("ai.onnx.ml", _ML_OPSET),
        ],
        producer_name="growml",
        producer_version=(metadata or {}).get("growml_version", ""),
    )
    # The IR version onnxruntime releases of the last years all read; newer adds nothing used.
    model.ir_version = 8
    helper.set_model_props(model, metadata or {})
    return model


class _Graph:
    """Nodes and initializers under construction, with names that never clash with inputs."""

    def __init__(self, opset: int, taken: Sequence[str]) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._taken = set(taken)

    def name(self, hint: str) -> str:
        name, number = hint, 1
        while name in self._taken:
            number += 1
            name = f"{hint}_{number}"
        self._taken.add(name)
        return name

    def constant(self, hint: str, values: Any, dtype: Any = None) -> str:
        name = self.name(hint)
        array = np.asarray(values, dtype=dtype)
        if array.dtype.kind in "OU":
            tensor = helper.make_tensor(
                name, TensorProto.STRING, array.shape, [str(v).encode() for v in array.flat]
            )
        else:
            tensor = numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def node(
        self, op: str, inputs: Sequence[str], hint: str, domain: str = "", **attributes: Any
    ) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [out], domain=domain, **attributes))
        return out

    def output(
        self,
        op: str,
        inputs: Sequence[str],
        name: str,
        dtype: int,
        shape: list,
        **attributes: Any,
    ) -> None:
        self.nodes.append(helper.make_node(op, list(inputs), [name], **attributes))
        self.outputs.append(helper.make_tensor_value_info(name, dtype, shape))

    def concat(self, parts: Sequence[str], hint: str, axis: int) -> str:
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, hint, axis=axis)


def _preprocessing(
    graph: _Graph, preprocessor: Preprocessor, grouped: bool, number: int
) -> tuple[str, list[int]]:
    """The float feature matrix, and for each of its columns the ``preprocess.json`` column
    it is (the matrix groups numbers, their missing indicators, then categories)."""
    starts = np.cumsum([0] + [len(c.output_names) for c in preprocessor.columns])
    numeric = [
        (column, int(start))
        for column, start in zip(preprocessor.columns, starts, strict=False)
        if isinstance(column, NumericColumn)
    ]
    categorical = [
        (column, int(start))
        for column, start in zip(preprocessor.columns, starts, strict=False)
        if isinstance(column, CategoricalColumn)
    ]
    if grouped:  # the grouped input first, then the booleans, which come as text
        numeric.sort(key=lambda pair: pair[0].boolean)
    blocks: list[str] = []
    order: list[int] = []
    if numeric:
        blocks += _numbers(graph, [column for column, _ in numeric], grouped, number)
        order += [start for _, start in numeric]
        order += [start + 1 for column, start in numeric if column.missing_indicator]
    if categorical:
        blocks.append(_categories(graph, [column for column, _ in categorical]))
        for column, start in categorical:
            order += range(start, start + len(column.output_names))
    return graph.concat(blocks, "features", axis=1), order


def _numbers(graph: _Graph, columns: list[NumericColumn], grouped: bool, number: int) -> list[str]:
    """Standardised numbers as float, then (when any has one) the missing indicators;
    ``number``: the numeric inputs' element type."""
    parts = [NUMBERS_INPUT] if grouped and not columns[0].boolean else []
    for column in columns:
        if column.boolean:
            words = [*TRUE_WORDS, *FALSE_WORDS]
            read = graph.node(
                "LabelEncoder",
                [column.name],
                f"{column.name}_read",
                domain="ai.onnx.ml",
                keys_strings=words,
                values_floats=[1.0] * len(TRUE_WORDS) + [0.0] * len(FALSE_WORDS),
                default_float=math.nan,
            )
            same = number == TensorProto.FLOAT
            parts.append(
                read if same else graph.node("Cast", [read], f"{column.name}_wide", to=number)
            )
        elif not grouped:
            parts.append(column.name)
    numbers = graph.concat(parts, "numbers", axis=1)
    if number == TensorProto.FLOAT:
        # Standardised in float64, so that no rounding is added to the input's own.
        numbers = graph.node("Cast", [numbers], "numbers_double", to=TensorProto.DOUBLE)
    # x - x is NaN exactly where x is NaN or ±inf: the values training counts as missing.
    missing = graph.node("IsNaN", [graph.node("Sub", [numbers, numbers], "spread")], "missing")
    mean = graph.constant("mean", [[c.mean for c in columns]], np.float64)
    std = graph.constant("std", [[c.std for c in columns]], np.float64)
    centred = graph.node("Sub", [numbers, mean], "centred")
    scaled = graph.node("Div", [centred, std], "scaled")
    # Imputed after the cast: Where on float32 halves the memory it streams.
    narrow = graph.node("Cast", [scaled], "scaled_float", to=TensorProto.FLOAT)
    zero = graph.constant("zero", 0.0, np.float32)
    blocks = [graph.node("Where", [missing, zero, narrow], "standardised")]
    flagged = [index for index, column in enumerate(columns) if column.missing_indicator]
    if flagged:
        if len(flagged) < len(columns):
            picked = graph.constant("flagged", flagged, np.int64)
            missing = graph.node("Gather", [missing, picked], "missing_flagged", axis=1)
        blocks.append(graph.node("Cast", [missing], "indicators", to=TensorProto.FLOAT))
    return blocks


def _categories(graph: _Graph, columns: list[CategoricalColumn]) -> str:
    """One-hot columns of every categorical input, ``[N, total]``."""
    parts = []
    for column in columns:
        categories = list(column.categories) + ([""] if column.missing_indicator else [])
        parts.append(
            graph.node(
                "OneHotEncoder",
                [column.name],
                f"{column.name}_onehot",
                domain="ai.onnx.ml",
                cats_strings=categories,
                zeros=1,
            )
        )
    joined = graph.concat(parts, "onehot", axis=2)  # [N, 1, total]
    return graph.node("Squeeze", [joined, graph.constant("axis1", [1], np.int64)], "categories")


def _network(
    graph: _Graph, features: tuple[str, list[int]], network: NetworkWeights, opset: int
) -> str:
    hidden, order = features
    last = len(network.layers) - 1
    for index, (weight, bias) in enumerate(network.layers):
        transposed = np.ascontiguousarray(np.asarray(weight, np.float32).T)
        if index == 0:
            transposed = transposed[order]
        layer = f"layer{index + 1}"
        hidden = graph.node(
            "Gemm",
            [
                hidden,
                graph.constant(f"{layer}.weight", transposed),
                graph.constant(f"{layer}.bias", np.asarray(bias, np.float32)),
            ],
            "logits" if index == last else f"{layer}.linear",
        )
        if index < last:
            hidden = _activation(graph, network.activation, hidden, layer, opset)
    return hidden


def _activation(graph: _Graph, name: str, x: str, layer: str, opset: int) -> str:
    hint = f"{layer}.{name}"
    if name == "relu":
        return graph.node("Relu", [x], hint)
    if name == "tanh":
        return graph.node("Tanh", [x], hint)
    if name == "selu":
        # torch.nn.functional.selu's constants (Klambauer et al. 2017), as ONNX's defaults.
        return graph.node("Selu", [x], hint, alpha=1.6732632423543772, gamma=1.0507009873554805)
    if name == "gelu":
        if opset >= _GELU_OPSET:
            return graph.node("Gelu", [x], hint)
        # GELU(x) = x · ½(1 + erf(x / √2)) (Hendrycks & Gimpel 2016), the exact form torch uses.
        erf = graph.node(
            "Erf",
            [
                graph.node(
                    "Mul", [x, graph.constant("inv_sqrt2", 0.5**0.5, np.float32)], f"{hint}.z"
                )
            ],
            f"{hint}.erf",
        )
        half = graph.node(
            "Mul",
            [
                graph.node("Add", [erf, graph.constant("one", 1.0, np.float32)], f"{hint}.cdf2"),
                graph.constant("half", 0.5, np.float32),
            ],
            f"{hint}.cdf",
        )
        return graph.node("Mul", [x, half], hint)
    raise ExportError(f"activation {name!r} has no ONNX form in this growml version.")


def _regression_output(graph: _Graph, logits: str, target: TargetEncoder) -> None:
    # The network predicts the standardised target; undo it in float64 as TargetEncoder does.
    wide = graph.node("Cast", [logits], "logits_double", to=TensorProto.DOUBLE)
    scaled = graph.node(
        "Mul", [wide, graph.constant("target_std", [target.std], np.float64)], "value_scaled"
    )
    shifted = graph.node(
        "Add", [scaled, graph.constant("target_mean", [target.mean], np.float64)], "value_column"
    )
    graph.output(
        "Squeeze",
        [shifted, graph.constant("axis1", [1], np.int64)],
        "value",
        TensorProto.DOUBLE,
        ["N"],
    )


def _classification_outputs(
    graph: _Graph, logits: str, target: TargetEncoder, threshold: float | None
) -> None:
    classes, label_type = _class_tensor(target.classes)
    labels = graph.constant("classes", classes)
    if target.n_outputs == 1:
        positive = graph.node("Sigmoid", [logits], "positive")
        negative = graph.node("Sub", [graph.constant("one", 1.0, np.float32), positive], "negative")
        graph.output(
            "Concat", [negative, positive], "probabilities", TensorProto.FLOAT, ["N", 2], axis=1
        )
        cut = graph.constant("threshold", 0.5 if threshold is None else threshold, np.float32)
        decided = graph.node("GreaterOrEqual", [positive, cut], "decided")
        index = graph.node(
            "Cast",
            [
                graph.node(
                    "Squeeze", [decided, graph.constant("axis1", [1], np.int64)], "decided_row"
                )
            ],
            "index",
            to=TensorProto.INT64,
        )
    else:
        graph.output("Softmax", [logits], "probabilities", TensorProto.FLOAT, ["N", len(classes)])
        index = graph.node("ArgMax", [logits], "index", axis=1, keepdims=0)
    graph.output("Gather", [labels, index], "label", label_type, ["N"])


def _class_tensor(classes: Sequence[Any]) -> tuple[np.ndarray, int]:
    """The class labels as a tensor of their own type: bool, int64, double or string."""
    if all(isinstance(c, bool) for c in classes):
        return np.asarray(classes, np.bool_), TensorProto.BOOL
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, np.int64), TensorProto.INT64
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, np.float64), TensorProto.DOUBLE
    return np.asarray([str(c) for c in classes], object), TensorProto.STRING
