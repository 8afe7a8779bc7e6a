"""Removing hidden neurons from a trained network, the function kept as far as it can be.

Removing neuron j of hidden layer l takes ``h_j · W_{l+1}[:, j]`` out of the next layer's
pre-activation and changes nothing else. A twin (a neuron computing a positive multiple of
another's activation) goes without changing the function at all (``merge_twins``); any other
removal lets the kept neurons of the layer take over what they can of the removed ones' part
(``Reconstruction``: least squares on training rows, the next layer's weights moved). Trimming
(``growml.growth.trim``) decides which neurons go; the formulas: ``docs/trimming.md``.

A convolution block's channels are its neurons: their activations at every (row, position)
are the regression's rows, and the next block moves each kernel tap alike (a flatten head's
first layer each position's column alike); a block read by the pooling is regressed on its
pooled activations, which is all the head reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from growml.nn.conv import map_rows
from growml.nn.mlp import GrowingMLP

# A neuron: (hidden layer, index in it).
Neuron = tuple[int, int]
# Incoming weights (with bias) of two ReLU neurons this close in direction make twins.
_TWIN_COSINE = 1 - 1e-9


class Reconstruction:
    """How the kept neurons of a hidden layer take over the part of those removed.

    With ``Z = [H, 1]`` the layer's activations on some training rows and a bias column, the
    removed neurons ``R`` are regressed on the kept ones ``K`` by least squares,
    ``β = (Z_Kᵀ Z_K + εI)⁻¹ Z_Kᵀ Z_R``, and the next layer's weights move by
    ``W_K += W_R β_Kᵀ`` (its bias by ``W_R β_1``) while ``W_R`` goes: the next pre-activation
    changes by ``W_R (Z_K β − H_R)ᵀ``, only the part of the removed neurons the kept ones cannot
    express (zero for a twin or a dead neuron). Computed in float64 from each layer's Gram
    matrix ``ZᵀZ`` of the network before trimming; ``ε`` is a ridge of ``ridge`` × the mean
    diagonal, which keeps the solve defined when neurons are collinear or silent on the rows.
    """

    def __init__(self, model: GrowingMLP, x: Tensor, ridge: float = 1e-8) -> None:
        with torch.no_grad():
            cache = model.forward_cached(x.to(model.weights[0].dtype))
        self.grams = []
        for layer in model.growable_layers():
            h = model.unit_activations(cache, layer.index).double()
            if h.dim() == 4:  # a block's maps: one row per (row, position)
                h = map_rows(h)
            z = torch.cat([h, h.new_ones(len(h), 1)], 1)
            self.grams.append(z.T @ z / len(z))
        self.ridge = ridge

    def outgoing_update(self, layer: int, removed: Sequence[int], outgoing: Tensor) -> Tensor:
        """The change (fan_out, width + 1) of the next layer's weights (and bias, last column)
        that removes ``removed`` from hidden ``layer`` and lets the kept neurons take over;
        (fan_out, width + 1, kh, kw) when the next layer is a block, one change per tap (the
        bias's taps add up), and (fan_out, width + 1, positions) for a flatten head."""
        gram = self.grams[layer]
        size = len(gram)
        gone = torch.as_tensor(sorted(removed), dtype=torch.long, device=gram.device)
        mask = torch.ones(size, dtype=torch.bool, device=gram.device)
        mask[gone] = False
        kept = mask.nonzero().flatten()  # the bias column (last) is always kept
        inner = gram[kept][:, kept]
        epsilon = self.ridge * float(inner.diagonal().mean()) + 1e-300
        beta = torch.linalg.solve(
            inner + epsilon * torch.eye(len(kept), dtype=gram.dtype, device=gram.device),
            gram[kept][:, gone],
        )
        weights = outgoing.detach().double()
        taps = weights.reshape(weights.shape[0], weights.shape[1], -1)
        update = weights.new_zeros(weights.shape[0], size, taps.shape[2])
        update[:, kept] = torch.einsum("ort,kr->okt", taps[:, gone], beta)
        update[:, gone] = -taps[:, gone]
        return update.reshape(weights.shape[0], size, *weights.shape[2:])


@contextlib.contextmanager
def trimmed(
    model: GrowingMLP, neurons: Sequence[Neuron], reconstruction: Reconstruction
) -> Iterator[None]:
    """Within the block, ``model`` computes the network without ``neurons``, the kept neurons
    taking over their part (``Reconstruction``); restored afterwards."""
    saved = []
    with torch.no_grad():
        for layer, indices in _by_layer(neurons).items():
            weight, bias = model.weights[layer + 1], model.biases[layer + 1]
            saved.append((weight, weight.detach().clone(), bias, bias.detach().clone()))
            _apply(weight, bias, reconstruction.outgoing_update(layer, indices, weight), indices)
    try:
        yield
    finally:
        with torch.no_grad():
            for weight, weight_saved, bias, bias_saved in saved:
                weight.copy_(weight_saved)
                bias.copy_(bias_saved)


def remove(
    model: GrowingMLP,
    neurons: Sequence[Neuron],
    reconstruction: Reconstruction,
    optimizer: torch.optim.Optimizer | None,
) -> None:
    """Remove ``neurons`` from ``model`` for good, as ``trimmed`` computes the network without
    them; ``optimizer`` forgets their state."""
    for layer, indices in _by_layer(neurons).items():
        weight, bias = model.weights[layer + 1], model.biases[layer + 1]
        with torch.no_grad():
            _apply(weight, bias, reconstruction.outgoing_update(layer, indices, weight), indices)
        model.remove_neurons(layer, indices, optimizer)


def _apply(weight: Tensor, bias: Tensor, update: Tensor, removed: Sequence[int]) -> None:
    weight.add_(update[:, :-1].to(weight.dtype))
    bias.add_(update[:, -1].reshape(len(bias), -1).sum(1).to(bias.dtype))
    weight[:, list(removed)] = 0  # exactly, whatever the rounding of the update


def _by_layer(neurons: Sequence[Neuron]) -> dict[int, list[int]]:
    layers: dict[int, list[int]] = {}
    for layer, index in neurons:
        layers.setdefault(layer, []).append(index)
    return {layer: sorted(indices) for layer, indices in sorted(layers.items())}


def merge_twins(model: GrowingMLP, optimizer: torch.optim.Optimizer | None) -> list[int]:
    """Fold every neuron that computes a positive multiple of another one's activation into
    it (its outgoing column, scaled, added to the twin's), leaving the function unchanged;
    returns the neurons merged per layer. ReLU is positively homogeneous
    (relu(c·a) = c·relu(a) for c > 0), so any positive multiple of incoming weights and bias
    makes a twin; for other activations only equal ones do."""
    homogeneous = model.activation.name == "relu"
    merged = []
    for layer in model.growable_layers():
        index = layer.index
        incoming = model.weights[index].detach()
        rows = torch.cat(
            [incoming.reshape(len(incoming), -1), model.biases[index].detach()[:, None]], 1
        ).double()
        twins = _twins(rows, homogeneous)
        if twins:
            outgoing = model.weights[index + 1]
            with torch.no_grad():
                for duplicate, (kept, scale) in twins.items():
                    outgoing[:, kept] += scale * outgoing[:, duplicate]
            model.remove_neurons(index, sorted(twins), optimizer)
        merged.append(len(twins))
    return merged


def _twins(rows: Tensor, homogeneous: bool) -> dict[int, tuple[int, float]]:
    """duplicate → (the earlier neuron it copies, scale of its activation relative to it)."""
    norms = rows.norm(dim=1)
    twins: dict[int, tuple[int, float]] = {}
    for k in range(1, len(rows)):
        if norms[k] == 0 or len(twins) == len(rows) - 1:
            continue
        for j in range(k):
            if j in twins or norms[j] == 0:
                continue
            if homogeneous:
                cosine = float(rows[j] @ rows[k] / (norms[j] * norms[k]))
                if cosine > _TWIN_COSINE:
                    twins[k] = (j, float(norms[k] / norms[j]))
                    break
            elif torch.equal(rows[j], rows[k]):
                twins[k] = (j, 1.0)
                break
    return twins
