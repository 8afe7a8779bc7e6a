"""Importance scores of weights and of whole neurons: SynFlow, magnitude, random.

SynFlow (Tanaka et al., NeurIPS 2020) scores the linearised network: every weight replaced by
its absolute value, the activations by the identity, one all-ones input, and
``R = 1ᵀ(Π|W_l|)1`` summed over the outputs. A weight's score is ``|∂R/∂θ ⊙ θ|``; a hidden
neuron's is ``∂R/∂g_j`` for a gate ``g_j = 1`` on its output, which equals its forward flow times
its backward flow and the summed score of its incoming (or outgoing) weights.

Scores are computed in float64 on a detached copy, so the model's weights, signs and gradients
are never touched. Masked weights score exactly zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

from growml.nn.mlp import GrowingMLP


def _linearised(
    model: GrowingMLP, masks: list[Tensor] | None, include_biases: bool
) -> tuple[list[Tensor], list[Tensor]]:
    # The feature gate folded into the first layer (the same function): with W₀' = W₀ diag g,
    # ∂R/∂W₀ ⊙ W₀ = ∂R/∂W₀' ⊙ W₀', so the first layer's scores are those of its weights.
    weights, biases = [], []
    for index, (weight, bias) in enumerate(model.folded_layers()):
        absolute = weight.to(torch.float64).abs()
        if masks is not None:
            absolute = absolute * masks[index].to(torch.float64)
        weights.append(absolute.requires_grad_(True))
        biases.append(
            bias.to(torch.float64).abs()
            if include_biases
            else bias.new_zeros(bias.shape, dtype=torch.float64)
        )
    return weights, biases


def _synaptic_flow(
    weights: list[Tensor], biases: list[Tensor], gates: list[Tensor] | None = None
) -> Tensor:
    """R of the linearised network on one all-ones input (gates multiply hidden outputs)."""
    flow = weights[0].new_ones(1, weights[0].shape[1])
    for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        flow = flow @ weight.T + bias
        if gates is not None and index < len(gates):
            flow = flow * gates[index]
    return flow.sum()


def synflow_weight_scores(
    model: GrowingMLP, masks: list[Tensor] | None = None, include_biases: bool = False
) -> list[Tensor]:
    """``|∂R/∂W ⊙ W|`` for every layer's weight (float64, same shapes as the weights).

    Biases are left out of the flow by default: |b| injects flow at every layer, so R would stay
    positive with a whole layer's weights pruned, and the iteration would empty that layer (a
    784-100×5-10 MLP at 1000× loses its first layer with biases in, none without).
    """
    weights, biases = _linearised(model, masks, include_biases)
    total = _synaptic_flow(weights, biases)
    if not torch.isfinite(total):
        # R overflowed: divide each layer by its mean |w| (every path crosses each layer once,
        # so without biases the ranking is unchanged) and score again.
        weights, biases = _linearised(model, masks, include_biases=False)
        with torch.no_grad():
            for weight in weights:
                weight /= weight.mean().clamp_min(1e-300)
        total = _synaptic_flow(weights, biases)
    grads = torch.autograd.grad(total, weights)
    scores = [(grad * weight).detach().abs() for grad, weight in zip(grads, weights, strict=True)]
    if not all(bool(torch.isfinite(score).all()) for score in scores):
        raise FloatingPointError("SynFlow scores are not finite even after rescaling")
    return scores


def synflow_neuron_scores(model: GrowingMLP, include_biases: bool = False) -> list[Tensor]:
    """``∂R/∂g_j`` for a unit gate on every hidden neuron (one backward pass; float64)."""
    weights, biases = _linearised(model, None, include_biases)
    for weight in weights:
        weight.requires_grad_(False)
    gates = [
        torch.ones(width, dtype=torch.float64, device=weights[0].device, requires_grad=True)
        for width in model.hidden_widths
    ]
    total = _synaptic_flow(weights, biases, gates)
    if not torch.isfinite(total):
        weights = [w / w.mean().clamp_min(1e-300) for w in weights]
        biases = [torch.zeros_like(b) for b in biases]
        total = _synaptic_flow(weights, biases, gates)
    return [grad.detach() for grad in torch.autograd.grad(total, gates)]


def magnitude_weight_scores(model: GrowingMLP, masks: list[Tensor] | None = None) -> list[Tensor]:
    """|W| (masked entries 0), the feature gate folded into the first layer's."""
    scores = [weight.to(torch.float64).abs() for weight, _ in model.folded_layers()]
    if masks is not None:
        scores = [score * mask for score, mask in zip(scores, masks, strict=True)]
    return scores


def magnitude_neuron_scores(model: GrowingMLP) -> list[Tensor]:
    """A neuron's summed |incoming| × summed |outgoing| weights (its linear gain)."""
    scores = []
    weights = [weight.to(torch.float64) for weight, _ in model.folded_layers()]
    for layer in range(model.n_hidden_layers):
        incoming = weights[layer].abs().sum(1)
        outgoing = weights[layer + 1].abs().sum(0)
        scores.append(incoming * outgoing)
    return scores


def random_weight_scores(
    model: GrowingMLP, generator: torch.Generator, masks: list[Tensor] | None = None
) -> list[Tensor]:
    # Drawn on the CPU, whose generator pruning keeps: the same scores on every device.
    scores = [
        torch.rand(w.shape, generator=generator, dtype=torch.float64, device="cpu").to(w.device)
        for w in model.weights
    ]
    if masks is not None:
        scores = [score * mask for score, mask in zip(scores, masks, strict=True)]
    return scores


def random_neuron_scores(model: GrowingMLP, generator: torch.Generator) -> list[Tensor]:
    device = model.weights[0].device
    return [
        torch.rand(w, generator=generator, dtype=torch.float64, device="cpu").to(device)
        for w in model.hidden_widths
    ]
