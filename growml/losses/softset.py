"""Soft-set confusion-matrix losses: train on F1 (or F-beta, accuracy, AUROC) directly.

Tsoi et al. (NeurIPS 2022) replace the hard decision 1[p ≥ τ] by a piecewise-linear H(p; τ)
through the knots (0, 0), (τ − τm/2, δ), (τ, ½), (τ + τm/2, 1 − δ), (1, 1) with
τm = min(τ, 1 − τ). With s = H(p; τ) the soft confusion matrix is

    TP = Σ y s    FN = Σ y (1 − s)    FP = Σ (1 − y) s    TN = Σ (1 − y)(1 − s)

so TP + FN is exactly the number of positives, and a metric M gives the loss 1 − M. This is the
clean definition: the released package reflects H on one side of τ, which breaks TP + FN for
τ ≠ ½; both agree at τ = ½. Weighted rows count ``wᵢ`` times in every soft count (TP = Σ w y s,
...), as rows repeated ``wᵢ`` times would. The losses are not sums over rows, so their gradient
comes from autograd (``Loss.value_and_grad``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from growml.losses.base import Loss, split_weights

# The package's default δ, and the τ grid the released losses average over.
DELTA = 0.2
THRESHOLD_GRID = tuple(round(0.1 * k, 1) for k in range(1, 10))
_EPSILON = 1e-12


def heaviside(p: Tensor, tau: float, delta: float = DELTA) -> Tensor:
    """H(p; τ): continuous, strictly increasing, H(0) = 0, H(τ) = ½, H(1) = 1."""
    half_width = min(tau, 1 - tau) / 2
    low, high = tau - half_width, tau + half_width
    left = p * (delta / low)
    middle = delta + (p - low) * ((1 - 2 * delta) / (high - low))
    right = (1 - delta) + (p - high) * (delta / (1 - high))
    return torch.where(p < low, left, torch.where(p <= high, middle, right))


@dataclass(frozen=True)
class SoftConfusion:
    """Soft counts (tensors, differentiable)."""

    tp: Tensor
    fn: Tensor
    fp: Tensor
    tn: Tensor


def soft_confusion(
    p: Tensor, y: Tensor, tau: float, delta: float = DELTA, weights: Tensor | None = None
) -> SoftConfusion:
    """The soft confusion matrix of probabilities ``p`` against 0/1 labels ``y`` at τ, each
    row counted ``weights`` times (once by default)."""
    s = heaviside(p, tau, delta)
    positive, negative = y, 1 - y
    if weights is not None:
        positive, negative = positive * weights, negative * weights
    return SoftConfusion(
        tp=(positive * s).sum(),
        fn=(positive * (1 - s)).sum(),
        fp=(negative * s).sum(),
        tn=(negative * (1 - s)).sum(),
    )


def f_beta(counts: SoftConfusion, beta: float = 1.0) -> Tensor:
    """(1+β²)TP / ((1+β²)TP + β²FN + FP)."""
    b2 = beta * beta
    return (1 + b2) * counts.tp / ((1 + b2) * counts.tp + b2 * counts.fn + counts.fp + _EPSILON)


def accuracy(counts: SoftConfusion) -> Tensor:
    """(TP + TN) / n."""
    return (counts.tp + counts.tn) / (counts.tp + counts.tn + counts.fp + counts.fn)


def auroc(
    p: Tensor,
    y: Tensor,
    taus: tuple[float, ...],
    delta: float = DELTA,
    weights: Tensor | None = None,
) -> Tensor:
    """Trapezoid area under the soft (FPR, TPR) points at ``taus``, with (0, 0) and (1, 1)."""
    rates = []
    for tau in taus:
        counts = soft_confusion(p, y, tau, delta, weights)
        tpr = counts.tp / (counts.tp + counts.fn + _EPSILON)
        fpr = counts.fp / (counts.fp + counts.tn + _EPSILON)
        rates.append((fpr, tpr))
    one, zero = p.new_ones(()), p.new_zeros(())
    points = sorted([(zero, zero), *rates, (one, one)], key=lambda rate: float(rate[0].detach()))
    area = p.new_zeros(())
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        area = area + (x1 - x0) * (y0 + y1) / 2
    return area


class SoftSetLoss(Loss):
    """1 − a soft confusion-matrix metric of the positive-class probability (one logit).

    Args:
        metric: ``f1``, ``fbeta``, ``accuracy`` or ``auroc``.
        beta: β of F-beta.
        tau: the threshold of H, or None to average the metric over τ = 0.1 … 0.9 (the
            released losses' threshold-robust training). AUROC always uses the grid.
        delta: δ of H.
    """

    needs_positives = True

    def __init__(
        self, metric: str = "f1", beta: float = 1.0, tau: float | None = None, delta: float = DELTA
    ) -> None:
        self.metric, self.beta, self.tau, self.delta = metric, beta, tau, delta
        self.name = f"soft-{metric}"

    def encode_target(self, target: np.ndarray) -> Tensor:
        return torch.as_tensor(target, dtype=torch.float32, device="cpu").reshape(-1, 1)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        target, weights = split_weights(output, target)
        p, y = torch.sigmoid(output).reshape(-1), target.reshape(-1).to(output.dtype)
        if weights is not None:
            weights = weights.to(output.dtype)
        if self.metric == "auroc":
            return 1 - auroc(p, y, THRESHOLD_GRID, self.delta, weights)
        taus = THRESHOLD_GRID if self.tau is None else (self.tau,)
        values = [self._metric(soft_confusion(p, y, tau, self.delta, weights)) for tau in taus]
        return 1 - torch.stack(values).mean()

    def _metric(self, counts: SoftConfusion) -> Tensor:
        if self.metric == "accuracy":
            return accuracy(counts)
        return f_beta(counts, self.beta if self.metric == "fbeta" else 1.0)


class MacroSoftF1(Loss):
    """Mean over classes of 1 − soft F1, one-vs-rest on softmax probabilities (K ≥ 2 logits)."""

    needs_positives = True
    name = "soft-f1"

    def __init__(self, n_classes: int, tau: float | None = None, delta: float = DELTA) -> None:
        self.n_classes, self.tau, self.delta = n_classes, tau, delta

    def encode_target(self, target: np.ndarray) -> Tensor:
        return F.one_hot(
            torch.as_tensor(target, dtype=torch.long, device="cpu"), self.n_classes
        ).float()

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        target, weights = split_weights(output, target)
        probabilities = torch.softmax(output, 1)
        target = target.to(output.dtype)
        if weights is not None:
            weights = weights.to(output.dtype)
        taus = THRESHOLD_GRID if self.tau is None else (self.tau,)
        scores = [
            f_beta(soft_confusion(probabilities[:, c], target[:, c], tau, self.delta, weights))
            for c in range(self.n_classes)
            for tau in taus
        ]
        return 1 - torch.stack(scores).mean()
