"""Pruning: SynFlow, magnitude and random, for weights (masks) and whole neurons (slicing)."""

from growml.prune.pruners import (
    PRUNERS,
    Magnitude,
    Pruner,
    PruneRecord,
    RandomPruner,
    SynFlow,
    apply_masks,
    make_pruner,
    prune_neurons,
    prune_weights,
    synaptic_flow,
)

__all__ = [
    "PRUNERS",
    "Magnitude",
    "PruneRecord",
    "Pruner",
    "RandomPruner",
    "SynFlow",
    "apply_masks",
    "make_pruner",
    "prune_neurons",
    "prune_weights",
    "synaptic_flow",
]
