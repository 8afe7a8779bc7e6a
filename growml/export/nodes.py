"""An ONNX graph under construction: nodes, initializers and outputs, with names that never
clash with the model's inputs (built with the ``onnx`` helper API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Graph:
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
