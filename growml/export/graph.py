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
  (``columns.FLOAT32_MEAN_TO_STD``) takes ``tensor(double)`` numbers;
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
* a numeric embedding, when the network has one, between the two (``export/embedding.py``);
  it picks its columns from the grouped matrix, and the first weight matrix stays as it is;
* the network as ``Gemm`` + activation per layer, at its final widths (pruned weights are the
  zeros the run saved); GELU is the ``Gelu`` operator from opset 20, its erf form before;
* outputs: ``label`` (the class labels, binary decisions at the stored threshold) and
  ``probabilities`` for classification, ``value`` in the target's units for regression.

References: ONNX operators, https://onnx.ai/onnx/operators/ ; ``ai.onnx.ml`` operators,
https://onnx.ai/onnx/operators/index_ml.html .
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from growml.data.preprocess import Preprocessor, TargetEncoder
from growml.errors import ExportError
from growml.export.columns import grouped_numbers, input_types, number_type, preprocessing
from growml.export.embedding import EmbeddingWeights, embedding_nodes
from growml.export.metadata import DEFAULT_OPSET, MIN_OPSET, NUMBER, NUMBERS_INPUT
from growml.export.nodes import Graph

MAX_OPSET = onnx.defs.onnx_opset_version()
__all__ = ["DEFAULT_OPSET", "MAX_OPSET", "MIN_OPSET", "build_model"]
_ML_OPSET = 2  # LabelEncoder with default_float
_GELU_OPSET = 20


OUTPUTS = {"classification": ("label", "probabilities"), "regression": ("value",)}


@dataclass(frozen=True)
class NetworkWeights:
    """The network as arrays: ``layers`` are ``(weight (out, in), bias (out,))`` pairs, and
    the numeric ``embedding`` the first reads, if any."""

    layers: Sequence[tuple[np.ndarray, np.ndarray]]
    activation: str
    embedding: EmbeddingWeights | None = None
    convolution: ConvShape | None = None


@dataclass(frozen=True)
class ConvShape:
    """How a convolutional network reads its row (``growml/nn/conv.py``): the row as an image
    (C, H, W) (H = 1 for a signal), then ``blocks`` convolutions of ``kernel`` (kh, kw) with
    zero ``padding`` (ph, pw) and each block's (sh, sw) of ``strides``, the first ``blocks`` of
    ``layers`` (kernels of shape (out, in, kh, kw)), then global average pooling (``head``
    ``pool``) or flattening (``flatten``) before the dense layers."""

    image: tuple[int, int, int]
    blocks: int
    kernel: tuple[int, int]
    strides: tuple[tuple[int, int], ...]
    padding: tuple[int, int]
    head: str = "pool"


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
    graph = Graph(opset, taken=[*preprocessor.feature_names, *reserved])
    number = number_type(preprocessor)
    features = preprocessing(graph, preprocessor, bool(numbers), number)
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


def _network(
    graph: Graph, features: tuple[str, list[int]], network: NetworkWeights, opset: int
) -> str:
    hidden, order = features
    if network.embedding is not None:
        hidden = embedding_nodes(graph, hidden, order, network.embedding)
    blocks = 0
    if network.convolution is not None:
        hidden = _convolutions(graph, hidden, order, network, opset)
        blocks = network.convolution.blocks
    last = len(network.layers) - 1
    for index, (weight, bias) in enumerate(network.layers):
        if index < blocks:
            continue
        transposed = np.ascontiguousarray(np.asarray(weight, np.float32).T)
        if index == 0 and network.embedding is None:
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


def _convolutions(
    graph: Graph, features: str, order: list[int], network: NetworkWeights, opset: int
) -> str:
    """The blocks of a convolutional network, from the prepared features (graph column j is
    prepared column ``order[j]``) to the vector the dense layers read."""
    shape = network.convolution
    assert shape is not None
    if list(order) != list(range(len(order))):
        inverse = np.argsort(np.asarray(order, np.int64))
        features = graph.node(
            "Gather",
            [features, graph.constant("prepared_order", inverse, np.int64)],
            "prepared",
            axis=1,
        )
    hidden = graph.node(
        "Reshape",
        [features, graph.constant("image_shape", [-1, *shape.image], np.int64)],
        "image",
    )
    for index in range(shape.blocks):
        weight, bias = network.layers[index]
        layer = f"layer{index + 1}"
        hidden = graph.node(
            "Conv",
            [
                hidden,
                graph.constant(f"{layer}.kernel", np.asarray(weight, np.float32)),
                graph.constant(f"{layer}.bias", np.asarray(bias, np.float32)),
            ],
            f"{layer}.conv",
            kernel_shape=list(shape.kernel),
            strides=list(shape.strides[index]),
            pads=[*shape.padding, *shape.padding],
        )
        hidden = _activation(graph, network.activation, hidden, layer, opset)
    if shape.head == "flatten":
        return graph.node("Flatten", [hidden], "flattened", axis=1)
    pooled = graph.node("GlobalAveragePool", [hidden], "pooled_map")
    return graph.node("Flatten", [pooled], "pooled", axis=1)


def _activation(graph: Graph, name: str, x: str, layer: str, opset: int) -> str:
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


def _regression_output(graph: Graph, logits: str, target: TargetEncoder) -> None:
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
    graph: Graph, logits: str, target: TargetEncoder, threshold: float | None
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
