"""What a loss is: a function of the network's output and the target, with its gradient.

``value_and_grad`` returns the batch-mean loss and ``∂loss/∂output``. The default derives the
gradient with autograd from ``__call__``, so any differentiable loss works unchanged; the
standard losses override it with their closed form, which saves the autograd overhead on every
training step.

Rows may carry weights (scikit-learn's ``sample_weight``). A prepared target then holds one
column more than the network has outputs: each row's weight, last. Every slice of rows taken
from it (a batch, the growth statistics' rows, the validation rows) keeps its weights, so no
code between the data and the loss has to pass them along. A weighted loss is the weighted mean
``Σ wᵢ ℓᵢ / Σ wᵢ`` over the batch (for the soft-set losses: weighted soft counts), which is
exactly the loss of the batch with each row repeated ``wᵢ`` times.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Loss:
    """Base class: override ``encode_target`` and ``__call__`` (and ``value_and_grad`` when a
    closed form exists)."""

    name: str = "loss"

    def prepare_target(self, target: np.ndarray, weights: np.ndarray | None = None) -> Tensor:
        """Turn encoded targets (class indices or standardised values) into the tensor the
        loss consumes, each row's weight appended as a last column when ``weights`` are
        given; done once per dataset, not per batch."""
        prepared = self.encode_target(target)
        if weights is None:
            return prepared
        column = torch.as_tensor(weights, dtype=prepared.dtype, device="cpu").reshape(-1, 1)
        return torch.cat([prepared, column], 1)

    def encode_target(self, target: np.ndarray) -> Tensor:
        """The target as the loss consumes it, one row per row of the data."""
        return torch.as_tensor(target, device="cpu")

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        """The batch-mean loss; differentiable with autograd."""
        raise NotImplementedError

    def value_and_grad(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(batch-mean loss, ∂loss/∂output)``, both detached (by autograd here; the
        standard losses give theirs in closed form)."""
        # Training runs in inference mode, whose tensors autograd may not record: copies.
        with torch.inference_mode(False), torch.enable_grad():
            leaf = output.clone().requires_grad_(True)
            value = self(leaf, target.clone())
            (grad,) = torch.autograd.grad(value, leaf)
        return value.detach(), grad


def split_weights(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
    """``target`` without its weight column, and the rows' weights (None for unweighted rows,
    whose target is as wide as ``output``)."""
    if target.ndim == 2 and target.shape[1] == output.shape[1] + 1:
        return target[:, :-1], target[:, -1]
    return target, None


def row_shares(weights: Tensor) -> Tensor:
    """What each row's loss counts for in the batch's weighted mean: ``wᵢ / Σ w`` (a batch of
    zero-weight rows has loss and gradient 0)."""
    return weights / weights.sum().clamp_min(_TINY)


# The smallest positive float32: Σ w of a batch is never divided by 0.
_TINY = float(torch.finfo(torch.float32).tiny)
