"""What a loss is: a function of the network's output and the target, with its gradient.

``value_and_grad`` returns the batch-mean loss and ``∂loss/∂output``. The default derives the
gradient with autograd from ``__call__``, so any differentiable loss works unchanged; the
standard losses override it with their closed form, which saves the autograd overhead on every
training step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Loss:
    """Base class: override ``__call__`` (and ``value_and_grad`` when a closed form exists)."""

    name: str = "loss"

    def prepare_target(self, target: np.ndarray) -> Tensor:
        """Turn encoded targets (class indices or standardised values) into the tensor the
        loss consumes; done once per dataset, not per batch."""
        return torch.as_tensor(target)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        """The batch-mean loss; differentiable with autograd."""
        raise NotImplementedError

    def value_and_grad(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(batch-mean loss, ∂loss/∂output)``, both detached."""
        with torch.enable_grad():
            leaf = output.detach().requires_grad_(True)
            value = self(leaf, target)
            (grad,) = torch.autograd.grad(value, leaf)
        return value.detach(), grad
