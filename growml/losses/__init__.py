"""Losses: a function of the network output and the target, with its gradient."""

from __future__ import annotations

import numpy as np
import torch

from growml.config import LossConfig
from growml.errors import ConfigError
from growml.losses.base import Loss
from growml.losses.softset import MacroSoftF1, SoftSetLoss
from growml.losses.standard import BinaryCrossEntropy, CrossEntropy, MeanSquaredError


def default_loss(task: str, n_outputs: int) -> Loss:
    """The standard loss of a task: cross-entropy, logistic (one logit) or squared error."""
    if task == "regression":
        return MeanSquaredError()
    if n_outputs == 1:
        return BinaryCrossEntropy()
    return CrossEntropy(n_outputs)


def make_loss(
    config: LossConfig,
    task: str,
    n_outputs: int,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
) -> Loss:
    """The loss ``config`` names, for a task with ``n_outputs`` outputs; ``labels`` are the
    encoded training targets and ``weights`` their rows' weights (for class weights)."""
    name = config.name
    if name == "auto":
        name = "mse" if task == "regression" else "cross-entropy"
    if task == "regression" and name != "mse":
        raise ConfigError(f"loss.name={name!r} needs a classification target; use mse.")
    if task == "classification" and name == "mse":
        raise ConfigError("loss.name='mse' needs a regression target; use cross-entropy.")
    if name == "bce" and n_outputs != 1:
        raise ConfigError("loss.name='bce' is for binary targets; use cross-entropy.")
    if name.startswith("soft-") and n_outputs != 1 and name != "soft-f1":
        raise ConfigError(f"loss.name={name!r} is for binary targets; multi-class has soft-f1.")
    class_weights = (
        _class_weights(labels, max(n_outputs, 2), weights)
        if config.class_weight == "balanced"
        else None
    )
    if name == "mse":
        return MeanSquaredError()
    if name in ("cross-entropy", "bce"):
        if n_outputs == 1:
            positive_weight = (
                float(class_weights[1] / class_weights[0]) if class_weights is not None else 1.0
            )
            return BinaryCrossEntropy(positive_weight, config.label_smoothing)
        return CrossEntropy(n_outputs, class_weights, config.label_smoothing)
    if n_outputs != 1:
        return MacroSoftF1(n_outputs, config.tau, config.delta)
    metric = name.removeprefix("soft-")
    return SoftSetLoss(metric, config.beta, config.tau, config.delta)


def _class_weights(
    labels: np.ndarray, n_classes: int, weights: np.ndarray | None = None
) -> torch.Tensor:
    """n / (classes × count of each class), as scikit-learn's class_weight="balanced"; with
    row ``weights``, n and the counts are their sums (a row of weight 2 counts twice)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, weights=weights, minlength=n_classes).astype(float)
    total = len(labels) if weights is None else float(np.sum(weights))
    # A class absent from the rows gets the weight of a single row, not an infinite one; a
    # clamp at 1 would also clamp every class whose weights sum below 1.
    counts = np.where(counts > 0, counts, 1.0)
    return torch.as_tensor(total / (n_classes * counts), dtype=torch.float32)


__all__ = ["BinaryCrossEntropy", "CrossEntropy", "Loss", "MeanSquaredError", "default_loss"]
