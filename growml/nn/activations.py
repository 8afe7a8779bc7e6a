"""Activations with their derivatives, for the hand-derived backward pass of ``GrowingMLP``.

Each derivative is written in terms of the pre-activation ``a`` and the output ``h = σ(a)``,
whichever is cheaper, so the backward pass reuses what the forward pass already computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


@dataclass(frozen=True)
class Activation:
    """An elementwise activation σ.

    Attributes:
        name: the setting value (``model.activation``).
        fn: σ itself.
        derivative: ``(a, h) -> σ'(a)``; may return a boolean mask when σ' is 0/1 valued.
        slope_at_zero: σ'(0⁺), the factor of TINY's first-order improvement.
        paired_slope: σ'(0⁺) + σ'(0⁻), the slope of a neuron pair (α, ω), (−α, −ω), whose
            output ω(σ(z) − σ(−z)) is exactly ω·z for ReLU and GELU.
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor, Tensor], Tensor]
    slope_at_zero: float
    paired_slope: float

    def backprop(self, grad: Tensor, a: Tensor, h: Tensor) -> Tensor:
        """``grad ⊙ σ'(a)``: the gradient at the pre-activation from the one at the output
        (``grad`` may be overwritten)."""
        if self.name == "relu":
            return _relu_backprop(grad, a)
        return grad.mul_(self.derivative(a, h))


def _gelu_derivative(a: Tensor, h: Tensor) -> Tensor:
    # GELU(a) = a Φ(a)  ⇒  GELU'(a) = Φ(a) + a φ(a)
    cdf = 0.5 * (1.0 + torch.erf(a * (1.0 / math.sqrt(2.0))))
    pdf = torch.exp(-0.5 * a * a) * (1.0 / math.sqrt(2.0 * math.pi))
    return cdf + a * pdf


def _selu_derivative(a: Tensor, h: Tensor) -> Tensor:
    # For a ≤ 0, h = s·α·(eᵃ − 1), so σ'(a) = s·α·eᵃ = h + s·α.
    return torch.where(a > 0, _SELU_SCALE, h + _SELU_SCALE * _SELU_ALPHA)


def _relu_backprop(grad: Tensor, a: Tensor) -> Tensor:
    # grad where a ≥ 0, else 0, in one kernel (a mask and a product take four times as long on
    # a small batch): torch's threshold_backward keeps grad where a > t, and with t the
    # negative float of least magnitude, a > t is a ≥ 0 (−0 included), since no float lies
    # strictly between them.
    least = torch.finfo(a.dtype).smallest_normal * torch.finfo(a.dtype).eps
    return torch.ops.aten.threshold_backward(grad, a, -least)


ACTIVATIONS: dict[str, Activation] = {
    # relu'(0) = 1 (torch's autograd says 0): a neuron whose incoming weights are all zero, as
    # GradMax adds them, must still receive a gradient. Elsewhere a pre-activation is almost
    # never exactly zero, so nothing else changes.
    "relu": Activation("relu", torch.relu, lambda a, h: a >= 0, 1.0, 1.0),
    "tanh": Activation("tanh", torch.tanh, lambda a, h: 1.0 - h * h, 1.0, 2.0),
    "gelu": Activation("gelu", F.gelu, _gelu_derivative, 0.5, 1.0),
    "selu": Activation(
        "selu", F.selu, _selu_derivative, _SELU_SCALE, _SELU_SCALE * (1 + _SELU_ALPHA)
    ),
}


def get_activation(name: str) -> Activation:
    """The activation called ``name`` (one of ``ACTIVATIONS``)."""
    return ACTIVATIONS[name]
