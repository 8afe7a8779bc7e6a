"""The pruning stage of a fit: settings in, a pruned network, events and a summary out."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from growml.config import PruneConfig
from growml.errors import ConfigError, GrowmlWarning
from growml.events import Event, PruneStep
from growml.nn.mlp import GrowingMLP
from growml.prune.pruners import make_pruner, prune_neurons, prune_weights, weight_count


def prune_network(
    model: GrowingMLP,
    optimizer: torch.optim.Optimizer | None,
    config: PruneConfig,
    when: str,
    seed: int,
    emit: Callable[[Event], None],
) -> dict[str, Any]:
    """Prune ``model`` in place as ``config`` says; one ``PruneStep`` event per iteration."""
    pruner = make_pruner(config.method, seed)
    weights_before = weight_count(model)
    parameters_before = model.n_parameters()
    if config.target_params is not None and config.target_params >= weights_before:
        raise ConfigError(
            f"prune.target_params={config.target_params} keeps everything: the network has "
            f"{weights_before} prunable weights; choose fewer."
        )
    if config.structured:
        records = prune_neurons(
            model,
            optimizer,
            pruner,
            compression=config.compression,
            target_parameters=config.target_params,
            iterations=config.iterations,
            schedule=config.schedule,
        )
        weights_after = weight_count(model)
        wanted = config.compression or weights_before / config.target_params
        if weights_before / max(weights_after, 1) < 0.9 * wanted:
            warnings.warn(
                f"structured pruning reached {weights_before / max(weights_after, 1):.1f}× of the "
                f"{wanted:.1f}× asked: every hidden layer keeps at least one neuron.",
                GrowmlWarning,
                stacklevel=2,
            )
    else:
        compression = config.compression or weights_before / config.target_params
        masks, records = prune_weights(model, pruner, compression, config.iterations)
        weights_after = int(sum(mask.sum() for mask in masks))
    for record in records:
        emit(PruneStep(method=config.method, structured=config.structured, **asdict(record)))
    return {
        "method": config.method,
        "structured": config.structured,
        "when": when,
        "weights_before": weights_before,
        "weights_after": weights_after,
        "compression": weights_before / max(weights_after, 1),
        "parameters_before": parameters_before,
        "parameters_after": model.n_parameters(),
        "hidden_widths": model.hidden_widths,
    }
