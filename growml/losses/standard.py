"""Cross-entropy (multi-class), binary cross-entropy (one logit) and mean squared error."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from growml.losses.base import Loss


def _log_softmax(output: Tensor) -> Tensor:
    # z − logsumexp(z): same values as torch.log_softmax, whose CPU kernel is slow for a few
    # classes per row (38 µs against 17 µs for 359 rows × 10 classes). F.cross_entropy with
    # probability targets is slower still.
    return output - torch.logsumexp(output, 1, keepdim=True)


class CrossEntropy(Loss):
    """Softmax cross-entropy over K ≥ 2 logits; targets are one-hot rows."""

    name = "cross-entropy"

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes

    def prepare_target(self, target: np.ndarray) -> Tensor:
        return F.one_hot(torch.as_tensor(target, dtype=torch.long), self.n_classes).float()

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        log_p = _log_softmax(output)
        return torch.dot(log_p.reshape(-1), target.reshape(-1)) / -output.shape[0]

    def value_and_grad(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        log_p = _log_softmax(output)
        scale = 1.0 / output.shape[0]
        value = torch.dot(log_p.view(-1), target.view(-1)).mul_(-scale)
        # ∂/∂z of −Σ y log softmax(z) is softmax(z) − y.
        return value, log_p.exp_().sub_(target).mul_(scale)


class BinaryCrossEntropy(Loss):
    """Logistic loss on one logit per row; targets are 0/1 floats of shape (n, 1)."""

    name = "bce"

    def prepare_target(self, target: np.ndarray) -> Tensor:
        return torch.as_tensor(target, dtype=torch.float32).reshape(-1, 1)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(output, target)

    def value_and_grad(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        scale = 1.0 / output.shape[0]
        value = F.binary_cross_entropy_with_logits(output, target)
        return value, torch.sigmoid(output).sub_(target).mul_(scale)


class MeanSquaredError(Loss):
    """Mean of squared errors over rows and outputs; targets of shape (n, outputs)."""

    name = "mse"

    def prepare_target(self, target: np.ndarray) -> Tensor:
        return torch.as_tensor(target, dtype=torch.float32).reshape(len(target), -1)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output, target)

    def value_and_grad(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        residual = output - target
        value = torch.dot(residual.view(-1), residual.view(-1)).div_(residual.numel())
        return value, residual.mul_(2.0 / residual.numel())
