"""The raw columns into the ONNX graph: its inputs and the fitted preprocessing as nodes.

``preprocess.json``'s columns become inputs by kind (``input_types``): numbers as float32 (the
convention of scikit-learn's converters, or float64 when ``number_type`` says float32 cannot
carry them), categories and booleans as text. ``preprocessing`` builds the nodes that turn
them into the network's float feature matrix, exactly as ``Preprocessor.transform`` does.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from growml.data.preprocess import (
    FALSE_WORDS,
    TRUE_WORDS,
    CategoricalColumn,
    NumericColumn,
    Preprocessor,
)
from growml.export.metadata import NUMBER, NUMBERS_INPUT, TEXT
from growml.export.nodes import Graph
from growml.export.scaling import scaled_numbers

# float32 rounds a value by up to 2^-24 of itself: |mean| / std · 6e-8 standard deviations
# (``Scaling.value_to_spread`` gives the like for every scaling).
# Past 64 (a year spread over a few years, a price in millions spread over tens) that is 4e-6,
# which a trained network amplifies past the 1e-5 parity (measured: a price of 2.5e6 with a
# spread of 40 moved probabilities by 8e-3); such models take their numbers as float64.
FLOAT32_MEAN_TO_STD = 64.0


def input_types(preprocessor: Preprocessor) -> dict[str, str]:
    """Each source column's input kind: ``number`` (float32) or ``text`` (string)."""
    return {
        column.name: NUMBER if isinstance(column, NumericColumn) and not column.boolean else TEXT
        for column in preprocessor.columns
    }


def number_type(preprocessor: Preprocessor) -> int:
    """The numeric inputs' element type: float32, the convention of scikit-learn's converters,
    unless a column's values carry more digits than float32 holds for its scaling: a float32
    rounding would move its scaled value by more than ``FLOAT32_MEAN_TO_STD`` · 2^-24, or
    across a jump of its quantile map (``Scaling.float32_exact``)."""
    wide = any(
        column.scaling.value_to_spread > FLOAT32_MEAN_TO_STD or not column.scaling.float32_exact
        for column in preprocessor.columns
        if isinstance(column, NumericColumn) and not column.boolean
    )
    return TensorProto.DOUBLE if wide else TensorProto.FLOAT


def grouped_numbers(preprocessor: Preprocessor) -> list[str]:
    """The columns the grouped layout's ``numbers`` input holds, in its column order."""
    return [name for name, kind in input_types(preprocessor).items() if kind == NUMBER]


def preprocessing(
    graph: Graph, preprocessor: Preprocessor, grouped: bool, number: int
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


def _numbers(graph: Graph, columns: list[NumericColumn], grouped: bool, number: int) -> list[str]:
    """Scaled numbers as float, then (when any has one) the missing indicators;
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
        # Scaled in float64, so that no rounding is added to the input's own.
        numbers = graph.node("Cast", [numbers], "numbers_double", to=TensorProto.DOUBLE)
    # x - x is NaN exactly where x is NaN or ±inf: the values training counts as missing,
    # with those beyond float32's range.
    absent = graph.node("IsNaN", [graph.node("Sub", [numbers, numbers], "spread")], "absent")
    scaled, beyond = scaled_numbers(graph, numbers, [column.scaling for column in columns])
    missing = graph.node("Or", [absent, beyond], "missing")
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


def _categories(graph: Graph, columns: list[CategoricalColumn]) -> str:
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
