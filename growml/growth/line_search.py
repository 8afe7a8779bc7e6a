"""The step of new neurons: the loss of the extended network, and Armijo's search on the step.

The extended network (current network + candidate at step t) is evaluated without touching
the model: the layers below the candidate are cached once, and only the candidate's output layer
and the layers above it are recomputed for each t (``GrowableLayer.extended_output``). A TINY
candidate's step is t = γ² (its neurons at amplitude γ on both sides, the next layer's move by
γ²); a *linear* candidate (the pool's fitted update, random neurons) keeps its incoming weights
and scales its outgoing weights and the move by t, so the network's output changes linearly in
t at that layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from growml.losses import Loss
from growml.nn.growable import Candidate, ForwardCache
from growml.nn.mlp import GrowingMLP

# The effect of TINY's neurons grows like γ², and useful amplitudes reach γ ≈ 64 (γ² ≈ 4096).
MAX_STEP = 1e4
ARMIJO_FRACTION = 0.1


def extended_loss(
    model: GrowingMLP, cache: ForwardCache, loss: Loss, target: Tensor, candidate: Candidate
) -> Callable[[float], float]:
    """``t ↦`` training loss of the network with ``candidate`` added at step t (the growable
    layer ``candidate.layer`` computes the extended network's output)."""
    output_at = model.growable_layers()[candidate.layer].extended_output(cache, candidate)

    @torch.no_grad()
    def loss_at(step: float) -> float:
        return float(loss(output_at(step), target))

    return loss_at


def armijo(
    loss_at: Callable[[float], float],
    base: float,
    first_order: float,
    max_evaluations: int = 20,
    largest: float = MAX_STEP,
    start: float | None = None,
) -> tuple[float, float]:
    """``(t, loss)`` by backtracking on the step ``t`` from ``start`` (default ``2·L0/FO``):
    accept the first ``t`` with ``L(t) < L0 − 0.1·t·FO`` (``FO`` = −dL/dt at 0), then keep
    doubling while the loss goes down, up to ``largest``. ``(0, L0)`` when no step is
    accepted."""
    if not (first_order > 0 and math.isfinite(first_order)):
        return 0.0, base
    step = min(start if start is not None else 2.0 * base / first_order, largest)
    evaluations, accepted = 0, None
    while evaluations < max_evaluations:
        value = loss_at(step)
        evaluations += 1
        if value < base - ARMIJO_FRACTION * step * first_order:
            accepted = (step, value)
            break
        step *= 0.5
    if accepted is None:
        return 0.0, base
    while evaluations < max_evaluations and accepted[0] < largest:
        step = min(accepted[0] * 2, largest)
        value = loss_at(step)
        evaluations += 1
        if not value < accepted[1]:
            break
        accepted = (step, value)
    return accepted


def best_on_grid(
    loss_at: Callable[[float], float], base: float, steps: tuple[float, ...]
) -> tuple[float, float]:
    """``(t, loss)`` with the lowest loss among ``steps`` and t = 0 (for neurons without a
    first-order prediction)."""
    best = (0.0, base)
    for step in steps:
        value = loss_at(step)
        if value < best[1]:
            best = (step, value)
    return best
