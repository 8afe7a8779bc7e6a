"""Pruning: one interface, algorithms that differ only in their scores.

``prune_weights`` is the paper's Algorithm 1 (iterative, global ranking, exponential schedule)
and leaves masks; ``prune_neurons`` removes whole hidden neurons the same way and slices the
network (and its optimizer state) into a smaller dense one. With ``iterations=1`` either is the
one-shot variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from growml.nn.mlp import GrowingMLP
from growml.prune import scores


class Pruner:
    """An importance criterion for weights and for hidden neurons (higher = keep)."""

    name = "pruner"

    def weight_scores(self, model: GrowingMLP, masks: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def neuron_scores(self, model: GrowingMLP) -> list[Tensor]:
        raise NotImplementedError


class SynFlow(Pruner):
    """Synaptic flow of the linearised network (data-free)."""

    name = "synflow"

    def weight_scores(self, model: GrowingMLP, masks: list[Tensor]) -> list[Tensor]:
        return scores.synflow_weight_scores(model, masks)

    def neuron_scores(self, model: GrowingMLP) -> list[Tensor]:
        return scores.synflow_neuron_scores(model)


class Magnitude(Pruner):
    """Absolute weight (a neuron: summed |in| × summed |out|)."""

    name = "magnitude"

    def weight_scores(self, model: GrowingMLP, masks: list[Tensor]) -> list[Tensor]:
        return scores.magnitude_weight_scores(model, masks)

    def neuron_scores(self, model: GrowingMLP) -> list[Tensor]:
        return scores.magnitude_neuron_scores(model)


class RandomPruner(Pruner):
    """Uniformly random scores: the baseline every criterion must beat."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def weight_scores(self, model: GrowingMLP, masks: list[Tensor]) -> list[Tensor]:
        return scores.random_weight_scores(model, self.generator, masks)

    def neuron_scores(self, model: GrowingMLP) -> list[Tensor]:
        return scores.random_neuron_scores(model, self.generator)


PRUNERS = {"synflow": SynFlow, "magnitude": Magnitude, "random": RandomPruner}


def make_pruner(name: str, seed: int = 0) -> Pruner:
    """The pruner called ``name`` (``synflow``, ``magnitude`` or ``random``)."""
    return RandomPruner(seed) if name == "random" else PRUNERS[name]()


@dataclass(frozen=True)
class PruneRecord:
    """The state after one pruning iteration."""

    iteration: int
    kept_weights: list[int]
    hidden_widths: list[int]
    parameters: int
    synaptic_flow: float


def synaptic_flow(model: GrowingMLP, masks: list[Tensor] | None = None) -> float:
    """R of the (masked) linearised network without biases; 0 means input and output are
    disconnected (layer collapse)."""
    return float(
        scores._synaptic_flow(*scores._linearised(model, masks, include_biases=False)).detach()
    )


def prune_weights(
    model: GrowingMLP,
    pruner: Pruner,
    compression: float,
    iterations: int = 100,
    min_per_layer: int = 1,
) -> tuple[list[Tensor], list[PruneRecord]]:
    """Masks keeping ``round(N / compression)`` of the N weights, by iterative global ranking.

    Iteration k keeps ``N · compression^(−k/iterations)`` weights (the exponential schedule).
    Each layer keeps at least ``min_per_layer`` weights. The model's weights are multiplied by
    the final masks; biases are not pruned.
    """
    masks = [torch.ones_like(w, dtype=torch.float64) for w in model.weights]
    total = sum(mask.numel() for mask in masks)
    records = []
    for iteration in range(1, iterations + 1):
        keep = max(round(total * compression ** (-iteration / iterations)), 1)
        layer_scores = pruner.weight_scores(model, masks)
        masks = _top_weights(layer_scores, masks, keep, min_per_layer)
        records.append(
            PruneRecord(
                iteration=iteration,
                kept_weights=[int(mask.sum()) for mask in masks],
                hidden_widths=model.hidden_widths,
                parameters=model.n_parameters(),
                synaptic_flow=synaptic_flow(model, masks),
            )
        )
    apply_masks(model, masks)
    return masks, records


def _top_weights(
    layer_scores: list[Tensor], masks: list[Tensor], keep: int, min_per_layer: int
) -> list[Tensor]:
    flat = torch.cat([s.flatten() for s in layer_scores])
    alive = torch.cat([m.flatten() for m in masks]) > 0
    # Pruned weights never come back; ties are broken by position, so the result is exact.
    ranking = torch.where(alive, flat, torch.full_like(flat, -1.0))
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    offsets = [0]
    for score in layer_scores:
        offsets.append(offsets[-1] + score.numel())
    for start, stop in zip(offsets[:-1], offsets[1:], strict=True):
        best = torch.argsort(ranking[start:stop], descending=True, stable=True)[:min_per_layer]
        chosen[start + best] = True
    remaining = keep - int(chosen.sum())
    if remaining > 0:
        order = torch.argsort(torch.where(chosen, -2.0, ranking), descending=True, stable=True)
        chosen[order[:remaining]] = True
    return [
        chosen[start:stop].reshape(score.shape).to(torch.float64)
        for start, stop, score in zip(offsets[:-1], offsets[1:], layer_scores, strict=True)
    ]


def apply_masks(model: GrowingMLP, masks: list[Tensor]) -> None:
    """Zero the masked weights and keep them zero through training (``model.masks``)."""
    model.masks = [mask.to(model.weights[0].dtype) for mask in masks]
    with torch.no_grad():
        for weight, mask in zip(model.weights, model.masks, strict=True):
            weight.mul_(mask)


def prune_neurons(
    model: GrowingMLP,
    optimizer: torch.optim.Optimizer | None,
    pruner: Pruner,
    compression: float | None = None,
    target_parameters: int | None = None,
    iterations: int = 100,
    schedule: str = "parameters",
) -> list[PruneRecord]:
    """Remove whole hidden neurons until the prunable weights shrink by ``compression`` (or the
    weights number ``target_parameters``), slicing the network and the optimizer state.

    Iteration k removes the lowest-scoring neurons across all hidden layers until the weights
    number ``N · ρ^(−k/iterations)``; with ``schedule="parameters"`` neurons are ranked by score
    per parameter they cost, with ``"neurons"`` by score alone. The last neuron of a layer is
    never removed.
    """
    total = weight_count(model)
    if target_parameters is not None:
        compression = max(total / max(target_parameters, 1), 1.0)
    records = []
    for iteration in range(1, iterations + 1):
        target = total * compression ** (-iteration / iterations)
        neuron_scores = pruner.neuron_scores(model)
        candidates = []
        for layer, layer_scores in enumerate(neuron_scores):
            cost = model.weights[layer].shape[1] + model.weights[layer + 1].shape[0]
            for index, score in enumerate(layer_scores.tolist()):
                rank = score / cost if schedule == "parameters" else score
                candidates.append((rank, layer, index, cost))
        candidates.sort(key=lambda c: (c[0], c[1], c[2]))
        count = weight_count(model)
        widths = model.hidden_widths
        removal: dict[int, list[int]] = {}
        for _, layer, index, cost in candidates:
            if count <= target:
                break
            if widths[layer] - len(removal.get(layer, [])) <= 1:
                continue
            removal.setdefault(layer, []).append(index)
            count -= cost
        for layer, indices in removal.items():
            model.remove_neurons(layer, indices, optimizer)
        records.append(
            PruneRecord(
                iteration=iteration,
                kept_weights=[w.numel() for w in model.weights],
                hidden_widths=model.hidden_widths,
                parameters=model.n_parameters(),
                synaptic_flow=synaptic_flow(model),
            )
        )
    return records


def weight_count(model: GrowingMLP) -> int:
    """The prunable weights (biases excluded)."""
    return sum(weight.numel() for weight in model.weights)
