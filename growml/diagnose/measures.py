"""The measurements behind ``growml diagnose``, as functions of a network and a probe batch.

Every measurement here reads the dense layers of an MLP (hidden layers and the output layer):
the rows a probe batch gives its first hidden layer (embedded and gated, when the network has
an embedding or a feature gate) are fixed inputs, and the parameters are the dense layers'
weights and biases, in float64. The theory each follows is in ``docs/theory.md``.

* ``width_bound``: the width above which a one-hidden-layer network has a global minimiser of
  zero training loss on n rows of d inputs (Zhang et al., NeurIPS 2021): m ≥ 2n/d, with the
  bias as one more input, ⌈2n/(d + 1)⌉.
* ``per_example_gradients`` and ``gradient_confusion``: the gradient gᵢ of each probe row's
  loss, and how much they point against each other (Sankararaman et al., ICML 2020): the
  confusion η̂ = max(0, −minᵢ≠ⱼ ⟨gᵢ, gⱼ⟩), and the minimum and 5th-percentile cosine.
* ``relative_change``, ``empirical_ntk`` and ``kernel_drift``: how lazily a network trained
  (Woodworth et al., COLT 2020): ‖W_T − W_0‖_F / ‖W_0‖_F per layer, and the drift
  1 − ⟨K_0, K_T⟩ / (‖K_0‖ ‖K_T‖) of the kernel K = J Jᵀ of the outputs' Jacobian J on the probe
  rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from growml.losses import Loss
from growml.nn.mlp import GrowingMLP

Layers = list[tuple[Tensor, Tensor]]


def width_bound(rows: int, inputs: int) -> int:
    """⌈2n/(d + 1)⌉: the hidden width from which a one-hidden-layer network on ``rows``
    examples of ``inputs`` columns (and a bias) has a zero-loss global minimiser."""
    if rows < 1 or inputs < 1:
        raise ValueError(f"need at least one row and one input, got {rows} and {inputs}")
    return math.ceil(2 * rows / (inputs + 1))


def dense_parameters(model: GrowingMLP) -> tuple[Layers, Callable[[Tensor], Tensor]]:
    """The dense layers' (weight, bias) in float64, detached, the feature gate folded into the
    first weight; and the function giving, for raw rows, what the first hidden layer reads
    without the gate (the embedding's outputs, or the rows themselves), in float64."""
    if getattr(model, "conv_layers", 0):
        raise ValueError("the diagnostics read the dense layers of an MLP")
    layers = [(weight.double(), bias.double()) for weight, bias in model.folded_layers()]

    def inputs(x: Tensor) -> Tensor:
        with torch.no_grad():
            h = x if model.embedding is None else model.embedding(x)
        return h.double()

    return layers, inputs


def _forward(layers: Layers, x: Tensor, activation: Callable[[Tensor], Tensor]) -> Tensor:
    h = x
    for index, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        if index < len(layers) - 1:
            h = activation(h)
    return h


class _Dense(torch.nn.Module):
    """The dense layers as a module of named parameters, for ``torch.func``."""

    def __init__(self, layers: Layers, activation: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.activation = activation
        for index, (weight, bias) in enumerate(layers):
            self.register_parameter(f"weight{index}", torch.nn.Parameter(weight.clone()))
            self.register_parameter(f"bias{index}", torch.nn.Parameter(bias.clone()))
        self.count = len(layers)

    def forward(self, x: Tensor) -> Tensor:
        layers = [
            (getattr(self, f"weight{index}"), getattr(self, f"bias{index}"))
            for index in range(self.count)
        ]
        return _forward(layers, x, self.activation)


def per_example_gradients(model: GrowingMLP, loss: Loss, x: Tensor, target: Tensor) -> Tensor:
    """(B, P): row i is the gradient of the loss of probe row i alone (its target row
    ``target[i]``, as ``loss.prepare_target`` gives it) with respect to the dense layers'
    parameters, flattened layer by layer (weight, then bias). A loss that is not a mean over
    rows (the soft-set losses) has no per-row gradient: use the task's standard loss."""
    layers, inputs = dense_parameters(model)
    dense = _Dense(layers, model.activation.fn)
    params = {name: param.detach() for name, param in dense.named_parameters()}
    rows = inputs(x)
    targets = target.double() if target.is_floating_point() else target

    def row_loss(values: dict[str, Tensor], row: Tensor, row_target: Tensor) -> Tensor:
        output = functional_call(dense, values, (row[None],))
        return loss(output, row_target[None])

    grads = vmap(grad(row_loss), in_dims=(None, 0, 0))(params, rows, targets)
    return torch.cat([grads[name].reshape(len(rows), -1) for name in params], 1)


@dataclass(frozen=True)
class Confusion:
    """How much a probe batch's per-example gradients point against each other.

    Attributes:
        probe: B, the rows measured (the smallest cosine falls as B grows: report it beside).
        eta: η̂ = max(0, −min over pairs i ≠ j of ⟨gᵢ, gⱼ⟩), the confusion bound.
        min_cosine: the smallest cosine between two rows' gradients.
        cosine_5th: the 5th percentile of those cosines.
        mean_cosine: their mean.
    """

    probe: int
    eta: float
    min_cosine: float
    cosine_5th: float
    mean_cosine: float


def gradient_confusion(gradients: Tensor) -> Confusion:
    """The ``Confusion`` of per-example gradients (B, P), over the B(B − 1)/2 pairs; a row
    whose gradient is zero has cosine 0 with every other."""
    count = gradients.shape[0]
    if count < 2:
        raise ValueError("gradient confusion needs a probe of at least two rows")
    gram = gradients @ gradients.T
    norms = gram.diagonal().clamp_min(0).sqrt()
    pairs = torch.triu_indices(count, count, offset=1, device=gradients.device)
    inner = gram[pairs[0], pairs[1]]
    scale = norms[pairs[0]] * norms[pairs[1]]
    cosine = torch.where(scale > 0, inner / scale.clamp_min(1e-300), torch.zeros_like(inner))
    return Confusion(
        probe=count,
        eta=max(0.0, -float(inner.min())),
        min_cosine=float(cosine.min()),
        cosine_5th=float(torch.quantile(cosine, 0.05)),
        mean_cosine=float(cosine.mean()),
    )


def relative_change(before: Sequence[Tensor], after: Sequence[Tensor]) -> list[float]:
    """‖after − before‖_F / ‖before‖_F for each pair of same-shaped tensors (a layer's weights
    at initialisation and at the kept epoch); inf where ``before`` is zero and they differ."""
    changes = []
    for start, end in zip(before, after, strict=True):
        if start.shape != end.shape:
            raise ValueError(f"shapes differ: {tuple(start.shape)} and {tuple(end.shape)}")
        moved = float(torch.linalg.norm((end - start).detach().double()))
        size = float(torch.linalg.norm(start.detach().double()))
        changes.append(moved / size if size > 0 else (0.0 if moved == 0 else math.inf))
    return changes


def empirical_ntk(model: GrowingMLP, x: Tensor) -> Tensor:
    """K = J Jᵀ, (B·K, B·K), of the Jacobian J of the probe rows' K outputs with respect to the
    dense layers' parameters (row-major: row b's outputs together), in float64.

    Without forming J (B·K rows of one entry per parameter): layer l's weight enters output k
    of row b through gₗ(b, k) ⊗ hₗ(b), with hₗ(b) what the layer reads and gₗ(b, k) = ∂f_k(b) /
    ∂zₗ(b) its pre-activation's gradient, and its bias through gₗ(b, k) alone, so

        K[(b, k), (b', k')] = Σₗ ⟨gₗ(b, k), gₗ(b', k')⟩ · (⟨hₗ(b), hₗ(b')⟩ + 1),

    the g's back-propagated from the identity at the output (a B·K × width matrix per layer).
    """
    layers, inputs = dense_parameters(model)
    activation = model.activation.fn
    h = inputs(x)
    reads, slopes = [], []
    for weight, bias in layers[:-1]:
        reads.append(h)
        z = h @ weight.T + bias
        # The activation acts entry by entry: its derivative is the JVP along ones.
        h, slope = torch.func.jvp(activation, (z,), (torch.ones_like(z),))
        slopes.append(slope)
    reads.append(h)
    rows, outputs = h.shape[0], layers[-1][0].shape[0]
    # g at the output: row (b, k) is e_k.
    gradient = torch.eye(outputs, dtype=h.dtype).repeat(rows, 1)
    kernel = torch.zeros(rows * outputs, rows * outputs, dtype=h.dtype)
    for index in range(len(layers) - 1, -1, -1):
        read = reads[index].repeat_interleave(outputs, 0)
        kernel += (gradient @ gradient.T) * (read @ read.T + 1)
        if index:
            slope = slopes[index - 1].repeat_interleave(outputs, 0)
            gradient = (gradient @ layers[index][0]) * slope
    return kernel


def kernel_drift(before: Tensor, after: Tensor) -> float:
    """1 − ⟨K_0, K_T⟩ / (‖K_0‖_F ‖K_T‖_F): 0 when the kernel kept its direction (lazy
    training), up to 2 when it turned around."""
    inner = float((before * after).sum())
    norms = float(torch.linalg.norm(before)) * float(torch.linalg.norm(after))
    if norms == 0:
        raise ValueError("a kernel of zeros has no direction")
    return 1.0 - inner / norms
