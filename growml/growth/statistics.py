"""The statistics pass: TINY's five matrices for every candidate layer, from one forward and
one backward pass per batch.

Per-sample gradients come for free: the network's backward pass returns ∂L/∂a for the batch-mean
loss, so multiplying by the batch size gives each row's own gradient ``g``. Every matrix is a
batched matmul (``B1ᵀB1``, ``B1ᵀG``...) accumulated in float64: at these widths it costs nothing
and keeps the pseudo-inverses honest.
"""

from __future__ import annotations

import torch
from torch import Tensor

from growml.growth.pool import LayerRows
from growml.growth.tiny import LayerStatistics
from growml.losses import Loss
from growml.nn.mlp import GrowingMLP


def _with_ones(h: Tensor) -> Tensor:
    return torch.cat([h, h.new_ones(h.shape[0], 1)], 1).double()


_NAMES = ("S1", "M", "S2", "M2", "P")


class _Sums:
    """Running sums over some of the rows, for every candidate layer."""

    def __init__(self, n_candidates: int) -> None:
        self.layers: list[dict[str, Tensor | float]] = [
            dict.fromkeys(_NAMES, 0.0) for _ in range(n_candidates)
        ]
        self.gradient_norms = [0.0] * n_candidates
        self.rows = 0

    def add(self, inputs: list[Tensor], gradients: list[Tensor]) -> None:
        self.rows += inputs[0].shape[0]
        for k, sums in enumerate(self.layers):
            b2, b1 = _with_ones(inputs[k]), _with_ones(inputs[k + 1])
            g = gradients[k + 1].double()
            sums["S1"] = sums["S1"] + b1.T @ b1
            sums["M"] = sums["M"] + b1.T @ g
            sums["S2"] = sums["S2"] + b2.T @ b2
            sums["M2"] = sums["M2"] + b2.T @ g
            sums["P"] = sums["P"] + b2.T @ b1
            self.gradient_norms[k] += float((g * g).sum())


def _averaged(
    parts: list[_Sums], k: int, groups: tuple[LayerStatistics, ...] = ()
) -> LayerStatistics:
    rows = sum(part.rows for part in parts)
    return LayerStatistics(
        **{name: sum(part.layers[k][name] for part in parts) / rows for name in _NAMES},
        gradient_norm=sum(part.gradient_norms[k] for part in parts) / rows,
        rows=rows,
        groups=groups,
    )


# Disjoint groups of rows whose separate averages estimate the sampling noise (tiny.noise_floor).
GROUPS = 8


@torch.no_grad()
def collect_statistics(
    model: GrowingMLP, loss: Loss, x: Tensor, target: Tensor, batch_size: int = 512
) -> list[LayerStatistics]:
    """TINY's statistics of every hidden layer over the rows ``x`` (with prepared ``target``).

    The rows are cut into up to ``GROUPS`` contiguous groups whose separate averages travel
    along (``groups``), so that the engine can tell signal from sampling noise; shuffle the rows
    beforehand.
    """
    n_groups = max(min(GROUPS, len(x) // 2), 1)
    bounds = [round(i * len(x) / n_groups) for i in range(n_groups + 1)]
    parts = [_Sums(model.n_hidden_layers) for _ in range(n_groups)]
    for part, start, stop in zip(parts, bounds[:-1], bounds[1:], strict=True):
        for batch in range(start, stop, batch_size):
            end = min(batch + batch_size, stop)
            batch_x = x[batch:end]
            cache = model.forward_cached(batch_x)
            _, output_grad = loss.value_and_grad(cache.output, target[batch:end])
            # The batch-mean loss's gradient × batch rows = each row's own gradient.
            output_grad = output_grad * batch_x.shape[0]
            part.add(cache.inputs, model.backward(cache, output_grad, parameter_grads=False))
    result = []
    for k in range(model.n_hidden_layers):
        groups = tuple(_averaged([part], k) for part in parts) if n_groups > 1 else ()
        result.append(_averaged(parts, k, groups))
    return result


@torch.no_grad()
def collect_rows(
    model: GrowingMLP, loss: Loss, x: Tensor, target: Tensor, batch_size: int = 512
) -> list[LayerRows]:
    """Every hidden layer's statistics rows (B2, B1, G in float64) over the rows ``x``: what
    the candidate-pool step scores its candidates on."""
    below: list[list[Tensor]] = [[] for _ in range(model.n_hidden_layers + 1)]
    gradients: list[list[Tensor]] = [[] for _ in range(model.n_hidden_layers)]
    for start in range(0, len(x), batch_size):
        batch_x = x[start : start + batch_size]
        cache = model.forward_cached(batch_x)
        _, output_grad = loss.value_and_grad(cache.output, target[start : start + batch_size])
        output_grad = output_grad * batch_x.shape[0]
        grads = model.backward(cache, output_grad, parameter_grads=False)
        for k, layer_input in enumerate(cache.inputs):
            below[k].append(_with_ones(layer_input))
        for k in range(model.n_hidden_layers):
            gradients[k].append(grads[k + 1].double())
    inputs = [torch.cat(parts) for parts in below]
    return [
        LayerRows(below=inputs[k], current=inputs[k + 1], gradient=torch.cat(gradients[k]))
        for k in range(model.n_hidden_layers)
    ]


def statistics_of(rows: LayerRows) -> LayerStatistics:
    """TINY's five averages computed from a layer's rows (no noise groups)."""
    b2, b1, g, n = rows.below, rows.current, rows.gradient, rows.rows
    return LayerStatistics(
        S1=b1.T @ b1 / n,
        M=b1.T @ g / n,
        S2=b2.T @ b2 / n,
        M2=b2.T @ g / n,
        P=b2.T @ b1 / n,
        gradient_norm=float((g * g).sum()) / n,
        rows=n,
    )
