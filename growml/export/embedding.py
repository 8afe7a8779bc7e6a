"""A numeric embedding (``growml/nn/embeddings.py``) as ONNX nodes, between the preprocessing
and the first ``Gemm``.

The preprocessing's matrix groups its columns by kind (``columns.preprocessing``); the
embedding picks its columns from it by their position there with ``Gather``, so no reordering
node is needed. The operations follow the torch forward one for one, in float32:

* periodic: ``Gather`` → ``Mul`` 2π → ``Unsqueeze`` → ``Mul`` frequencies → ``Cos``, ``Sin``
  → ``Concat`` → ``MatMul`` Wᵀ → ``Add`` b → ``Relu`` → ``Reshape`` (N, columns · d);
* piecewise: ``Gather`` (one column per bin) → ``Sub`` bin starts → ``Div`` bin widths →
  ``Max`` lower → ``Min`` upper, the bounds ±inf where a bin is not clipped;

then ``Concat`` with the columns that pass through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from growml.export.nodes import Graph


@dataclass(frozen=True)
class EmbeddingWeights:
    """An embedding as arrays: its ``kind``, the prepared columns it embeds (``numeric``) and
    passes through (``others``), and its tensors by name (``NumericEmbedding``'s buffers and
    parameters: periodic ``frequencies``, ``weight``, ``bias``; piecewise ``component_index``,
    ``bin_starts``, ``bin_widths``, ``lower``, ``upper``)."""

    kind: str
    numeric: Sequence[int]
    others: Sequence[int]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def embedding_nodes(
    graph: Graph, features: str, order: Sequence[int], embedding: EmbeddingWeights
) -> str:
    """The first hidden layer's input from the preprocessing's matrix ``features``, whose
    column i is ``preprocess.json``'s column ``order[i]``."""
    position = np.empty(len(order), dtype=np.int64)
    position[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    arrays = embedding.arrays
    if embedding.kind == "periodic":
        embedded = _periodic(graph, features, position[list(embedding.numeric)], arrays)
    else:
        columns = position[np.asarray(arrays["component_index"], dtype=np.int64)]
        embedded = _piecewise(graph, features, columns, arrays)
    if not embedding.others:
        return embedded
    passed = _gather(graph, features, position[list(embedding.others)], "embedding.others")
    return graph.node("Concat", [embedded, passed], "embedding.output", axis=1)


def _gather(graph: Graph, features: str, columns: np.ndarray, hint: str) -> str:
    indices = graph.constant(f"{hint}.columns", np.asarray(columns, np.int64))
    return graph.node("Gather", [features, indices], hint, axis=1)


def _periodic(
    graph: Graph, features: str, columns: np.ndarray, arrays: dict[str, np.ndarray]
) -> str:
    frequencies, weight = arrays["frequencies"], arrays["weight"]
    numbers = _gather(graph, features, columns, "periodic.numbers")
    scaled = graph.node(
        "Mul", [numbers, graph.constant("two_pi", 2.0 * math.pi, np.float32)], "periodic.scaled"
    )
    column = graph.node(
        "Unsqueeze", [scaled, graph.constant("axis2", [2], np.int64)], "periodic.column"
    )
    angles = graph.node(
        "Mul",
        [column, graph.constant("periodic.frequencies", frequencies, np.float32)],
        "periodic.angles",
    )
    cos = graph.node("Cos", [angles], "periodic.cos")
    sin = graph.node("Sin", [angles], "periodic.sin")
    periodic = graph.node("Concat", [cos, sin], "periodic.features", axis=2)
    linear = graph.node(
        "MatMul",
        [periodic, graph.constant("periodic.weight", np.ascontiguousarray(weight.T), np.float32)],
        "periodic.product",
    )
    biased = graph.node(
        "Add",
        [linear, graph.constant("periodic.bias", arrays["bias"], np.float32)],
        "periodic.linear",
    )
    relu = graph.node("Relu", [biased], "periodic.relu")
    shape = graph.constant("periodic.shape", [0, len(columns) * weight.shape[0]], np.int64)
    return graph.node("Reshape", [relu, shape], "periodic.output")


def _piecewise(
    graph: Graph, features: str, columns: np.ndarray, arrays: dict[str, np.ndarray]
) -> str:
    numbers = _gather(graph, features, columns, "piecewise.numbers")
    shifted = graph.node(
        "Sub",
        [numbers, graph.constant("piecewise.starts", arrays["bin_starts"], np.float32)],
        "piecewise.shifted",
    )
    position = graph.node(
        "Div",
        [shifted, graph.constant("piecewise.widths", arrays["bin_widths"], np.float32)],
        "piecewise.position",
    )
    above = graph.node(
        "Max",
        [position, graph.constant("piecewise.lower", arrays["lower"], np.float32)],
        "piecewise.above",
    )
    return graph.node(
        "Min",
        [above, graph.constant("piecewise.upper", arrays["upper"], np.float32)],
        "piecewise.output",
    )
