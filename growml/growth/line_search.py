"""The amplitude of new neurons: the loss of the extended network, and Armijo's search on γ².

The extended network (current network + proposal at amplitude γ) is evaluated without touching
the model: the layers below the candidate are cached once, and only the candidate's output layer
and the layers above it are recomputed for each γ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from growml.losses import Loss
from growml.nn.mlp import ForwardCache, GrowingMLP

# The effect of new neurons grows like γ², and useful amplitudes reach γ ≈ 64 (γ² ≈ 4096).
MAX_STEP = 1e4
ARMIJO_FRACTION = 0.1


@dataclass(frozen=True)
class Candidate:
    """Neurons to add to hidden layer ``layer``: at amplitude γ their incoming weights are
    γ·α (or α itself when ``scale_incoming`` is false), their outgoing weights γ·ω, and the
    next layer moves by γ²·ΔW*."""

    layer: int
    alpha: Tensor  # (K, fan_in + 1), bias last
    omega: Tensor  # (fan_out, K)
    weight_update: Tensor | None = None  # ΔW* of the next layer
    scale_incoming: bool = True

    @property
    def neurons(self) -> int:
        return self.alpha.shape[0]


def extended_loss(
    model: GrowingMLP, cache: ForwardCache, loss: Loss, target: Tensor, candidate: Candidate
) -> Callable[[float], float]:
    """``γ ↦`` training loss of the network with ``candidate`` added at amplitude γ."""
    layer = candidate.layer
    activation = model.activation.fn
    below, current = cache.inputs[layer], cache.inputs[layer + 1]
    following = (
        cache.preactivations[layer + 1] if layer + 1 < model.n_hidden_layers else cache.output
    )
    dtype = following.dtype
    alpha, omega = candidate.alpha.to(dtype), candidate.omega.to(dtype)
    new_preactivation = torch.addmm(alpha[:, -1], below, alpha[:, :-1].T)
    weight_shift = None
    if candidate.weight_update is not None:
        update = candidate.weight_update.to(dtype)
        weight_shift = torch.addmm(update[:, -1], current, update[:, :-1].T)
    upper_layers = list(zip(model.weights, model.biases, strict=True))[layer + 2 :]

    @torch.no_grad()
    def loss_at(gamma: float) -> float:
        incoming = gamma if candidate.scale_incoming else 1.0
        a = following + (gamma * activation(incoming * new_preactivation)) @ omega.T
        if weight_shift is not None:
            a = a + gamma**2 * weight_shift
        for weight, bias in upper_layers:
            a = torch.addmm(bias, activation(a), weight.T)
        return float(loss(a, target))

    return loss_at


def armijo(
    loss_at: Callable[[float], float],
    base: float,
    first_order: float,
    max_evaluations: int = 20,
    max_amplitude: float | None = None,
) -> tuple[float, float]:
    """``(γ, loss)`` by backtracking on ``t = γ²`` from ``2·L0/FO``: accept the first ``t`` with
    ``L(t) < L0 − 0.1·t·FO``, then keep doubling while the loss goes down; γ stays at most
    ``max_amplitude``. ``(0, L0)`` when no step is accepted."""
    if not (first_order > 0 and math.isfinite(first_order)):
        return 0.0, base
    largest = MAX_STEP if max_amplitude is None else min(max_amplitude**2, MAX_STEP)
    step = min(2.0 * base / first_order, largest)
    evaluations, accepted = 0, None
    while evaluations < max_evaluations:
        value = loss_at(math.sqrt(step))
        evaluations += 1
        if value < base - ARMIJO_FRACTION * step * first_order:
            accepted = (step, value)
            break
        step *= 0.5
    if accepted is None:
        return 0.0, base
    while evaluations < max_evaluations and accepted[0] < largest:
        step = min(accepted[0] * 2, largest)
        value = loss_at(math.sqrt(step))
        evaluations += 1
        if not value < accepted[1]:
            break
        accepted = (step, value)
    return math.sqrt(accepted[0]), accepted[1]


def best_on_grid(
    loss_at: Callable[[float], float], base: float, gammas: tuple[float, ...]
) -> tuple[float, float]:
    """``(γ, loss)`` with the lowest loss among ``gammas`` and γ = 0 (for neurons without a
    first-order prediction)."""
    best = (0.0, base)
    for gamma in gammas:
        value = loss_at(gamma)
        if value < best[1]:
            best = (gamma, value)
    return best
