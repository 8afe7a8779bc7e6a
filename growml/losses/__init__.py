"""Losses: a function of the network output and the target, with its gradient."""

from __future__ import annotations

from growml.losses.base import Loss
from growml.losses.standard import BinaryCrossEntropy, CrossEntropy, MeanSquaredError


def default_loss(task: str, n_outputs: int) -> Loss:
    """The standard loss of a task: cross-entropy, logistic (one logit) or squared error."""
    if task == "regression":
        return MeanSquaredError()
    if n_outputs == 1:
        return BinaryCrossEntropy()
    return CrossEntropy(n_outputs)


__all__ = ["BinaryCrossEntropy", "CrossEntropy", "Loss", "MeanSquaredError", "default_loss"]
