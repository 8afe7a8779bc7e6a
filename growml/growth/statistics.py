"""The statistics pass: TINY's five matrices for every candidate layer, from one forward and
one backward pass per batch.

Per-sample gradients come for free: the network's backward pass returns ∂L/∂a for the batch-mean
loss, so multiplying by the batch size gives each row's own gradient ``g``. Every matrix is a
batched matmul (``B1ᵀB1``, ``B1ᵀG``...) accumulated in float64: at these widths it costs nothing
and keeps the pseudo-inverses honest.

Weighted rows (a weight column in the prepared target, ``losses/base.py``) make every average a
weighted one, ``E[·] = Σ wᵢ (·)ᵢ / Σ wᵢ``, with ``g`` each row's own, unweighted gradient
(the batch loss's gradient × Σ w / wᵢ): these are exactly the averages over the rows repeated
``wᵢ`` times, so TINY's formulas apply to them unchanged (docs/growth.md).

A convolution read by a convolution has a statistics row per (example, position): each
example's weight goes to each of its rows, and the sums are divided by the rows' total over
the positions, so that every average is per example, in the loss's units, like a dense
layer's. One read through global average pooling has a row per example, whose input is the
mean of its patches (docs/conv-growth.md). The candidate pool scores a block on at most
``ROW_BUDGET`` rows: the first examples', whole batches.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from growml.growth.pool import LayerRows
from growml.growth.tiny import LayerStatistics
from growml.losses import Loss
from growml.losses.base import split_weights
from growml.nn.growable import GrowableLayer, LayerSample
from growml.nn.mlp import GrowingMLP

# The most (example, position) rows or patches a convolution block's candidates are scored on:
# the candidate pool's cost grows with them, and blocks at full resolution on 2,048 examples
# (digits at stride 1: 64 positions each) spent most of the run scoring them
# (docs/conv-growth.md). Every average stays per example, over fewer examples.
ROW_BUDGET = 32_768


def _with_ones(h: Tensor) -> Tensor:
    return torch.cat([h, h.new_ones(h.shape[0], 1)], 1).double()


_NAMES = ("S1", "M", "S2", "M2", "P")


class _Sums:
    """Running sums over some of the rows, for every candidate layer; ``rows`` holds what each
    layer's averages divide by (``_total``)."""

    def __init__(self, n_candidates: int) -> None:
        self.layers: list[dict[str, Tensor | float]] = [
            dict.fromkeys(_NAMES, 0.0) for _ in range(n_candidates)
        ]
        self.gradient_norms = [0.0] * n_candidates
        self.rows: list[float] = [0.0] * n_candidates

    def add(self, samples: list[LayerSample], weights: Tensor | None) -> None:
        for k, (sums, sample) in enumerate(zip(self.layers, samples, strict=True)):
            row_weights = _row_weights(weights, sample)
            self.rows[k] += _total(sample.current.shape[0], row_weights, sample.positions)
            b2, b1 = _with_ones(sample.mean_below), _with_ones(sample.current)
            g = sample.gradient.double()
            # Σ wᵢ xᵢ yᵢᵀ = (w ⊙ x)ᵀ y: the weights go on the left factor of every product.
            b2w, b1w, gw = (b2, b1, g) if row_weights is None else _weighted(row_weights, b2, b1, g)
            sums["S1"] = sums["S1"] + b1w.T @ b1
            sums["M"] = sums["M"] + b1w.T @ g
            sums["S2"] = sums["S2"] + b2w.T @ b2
            sums["M2"] = sums["M2"] + b2w.T @ g
            sums["P"] = sums["P"] + b2w.T @ b1
            self.gradient_norms[k] += float((gw * g).sum())


def _row_weights(weights: Tensor | None, sample: LayerSample) -> Tensor | None:
    """Each statistics row's weight: its example's (None when unweighted)."""
    if weights is None or sample.positions == 1:
        return weights
    return weights.repeat_interleave(sample.positions)


def _total(rows: int, weights: Tensor | None, positions: int) -> float:
    """What an average over rows divides by: the examples (their weight) they stand for."""
    return (rows if weights is None else float(weights.sum())) / positions


def _weighted(weights: Tensor, *rows: Tensor) -> tuple[Tensor, ...]:
    column = weights.double()[:, None]
    return tuple(column * matrix for matrix in rows)


def _averaged(
    parts: list[_Sums], k: int, groups: tuple[LayerStatistics, ...] = ()
) -> LayerStatistics:
    rows = sum(part.rows[k] for part in parts)
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
    """TINY's statistics of every growable layer over the rows ``x`` (with prepared
    ``target``).

    The rows are cut into up to ``GROUPS`` contiguous groups whose separate averages travel
    along (``groups``), so that the engine can tell signal from sampling noise; shuffle the rows
    beforehand.
    """
    layers = model.growable_layers()
    n_groups = max(min(GROUPS, len(x) // 2), 1)
    bounds = [round(i * len(x) / n_groups) for i in range(n_groups + 1)]
    parts = [_Sums(len(layers)) for _ in range(n_groups)]
    for part, start, stop in zip(parts, bounds[:-1], bounds[1:], strict=True):
        for batch in range(start, stop, batch_size):
            rows = slice(batch, min(batch + batch_size, stop))
            part.add(*_samples(model, layers, loss, x[rows], target[rows]))
    result = []
    for k in range(len(layers)):
        groups = tuple(_averaged([part], k) for part in parts) if n_groups > 1 else ()
        result.append(_averaged(parts, k, groups))
    return result


@torch.no_grad()
def collect_rows(
    model: GrowingMLP, loss: Loss, x: Tensor, target: Tensor, batch_size: int = 512
) -> list[LayerRows]:
    """Every growable layer's statistics rows (B2, B1, G in float64, and the rows' weights
    when they are weighted) over the rows ``x``: what the candidate-pool step scores its
    candidates on."""
    layers = model.growable_layers()
    batches = [
        _samples(
            model, layers, loss, x[start : start + batch_size], target[start : start + batch_size]
        )
        for start in range(0, len(x), batch_size)
    ]
    weighted = batches[0][1] is not None
    rows = []
    for k in range(len(layers)):
        positions, pooled = batches[0][0][k].positions, batches[0][0][k].pooled
        # A block has a row per (example, position), or a patch per (example, position) under
        # the pooling: it is scored on the first examples', whole batches, up to ROW_BUDGET.
        examples = math.ceil(ROW_BUDGET / (positions * pooled))
        kept = batches[: max(1, math.ceil(examples / batch_size))]
        rows.append(
            LayerRows(
                below=torch.cat([_with_ones(samples[k].below) for samples, _ in kept]),
                current=torch.cat([_with_ones(samples[k].current) for samples, _ in kept]),
                gradient=torch.cat([samples[k].gradient.double() for samples, _ in kept]),
                weights=(
                    torch.cat([_row_weights(w, samples[k]).double() for samples, w in kept])
                    if weighted
                    else None
                ),
                positions=positions,
                pooled=pooled,
            )
        )
    return rows


def _samples(
    model: GrowingMLP, layers: list[GrowableLayer], loss: Loss, x: Tensor, target: Tensor
) -> tuple[list[LayerSample], Tensor | None]:
    """Every growable layer's sample of one batch (a forward and a backward pass), and the
    rows' weights (None when unweighted)."""
    cache = model.forward_cached(x)
    _, output_grad = loss.value_and_grad(cache.output, target)
    _, weights = split_weights(cache.output, target)
    if weights is None:
        # The batch-mean loss's gradient × batch rows = each row's own gradient.
        per_row = output_grad * x.shape[0]
    else:
        # Row i's share of the weighted mean is wᵢ / Σ w; a row of weight 0 has no gradient
        # to recover and counts for nothing in the averages.
        positive = weights > 0
        scale = torch.where(positive, weights.sum() / weights.where(positive, 1.0), 0.0)
        per_row = output_grad * scale.to(output_grad.dtype)[:, None]
    gradients = model.backward(cache, per_row, parameter_grads=False)
    return [layer.sample(cache, gradients) for layer in layers], weights


def statistics_of(rows: LayerRows) -> LayerStatistics:
    """TINY's five averages computed from a layer's rows (no noise groups), weighted by the
    rows' weights when they have them."""
    b2, b1, g = rows.mean_below, rows.current, rows.gradient
    b2w, b1w, gw = (b2, b1, g) if rows.weights is None else _weighted(rows.weights, b2, b1, g)
    n = rows.total_weight / rows.positions
    return LayerStatistics(
        S1=b1w.T @ b1 / n,
        M=b1w.T @ g / n,
        S2=b2w.T @ b2 / n,
        M2=b2w.T @ g / n,
        P=b2w.T @ b1 / n,
        gradient_norm=float((gw * g).sum()) / n,
        rows=n,
    )
