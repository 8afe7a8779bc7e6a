"""Per-epoch validation metrics, and how training places rows on the network's device."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from growml.nn.mlp import GrowingMLP
from growml.train.metrics import decide

if TYPE_CHECKING:
    from growml.train.trainer import Trainer

# Validation rows sent to the device at once when they stay in host memory.
_VALIDATION_ROWS = 1 << 16


def model_device(model: torch.nn.Module) -> torch.device:
    """The device ``model``'s parameters live on (``train.device``, resolved)."""
    return next(model.parameters()).device


def rows_on(values: np.ndarray, device: torch.device | None) -> Tensor:
    """``values`` as a float32 tensor on ``device``; a memory-mapped array (data larger than
    memory) stays where it is, and its batches go over one span at a time."""
    rows = torch.as_tensor(values, dtype=torch.float32, device="cpu")
    if device is None or isinstance(values, np.memmap):
        return rows
    return rows.to(device)


class Validation:
    """Cheap per-epoch validation metrics (also what trimming follows), computed in torch on
    the encoded targets; weighted rows count by their weights in each (as repeated rows
    would)."""

    def __init__(
        self,
        trainer: Trainer,
        x_val: np.ndarray,
        y_val: np.ndarray,
        weights: np.ndarray | None,
        device: torch.device | None = None,
    ) -> None:
        self.trainer = trainer
        self.x = rows_on(x_val, device)
        self.mapped = isinstance(x_val, np.memmap)
        self.target = trainer.loss.prepare_target(y_val, weights).to(device)
        self.labels = torch.as_tensor(y_val, device="cpu").to(device)
        self.weights = None
        if weights is not None:
            self.weights = torch.as_tensor(weights, dtype=torch.float32, device="cpu").to(device)
        if trainer.task == "regression":
            values = self.labels.float().reshape(len(self.labels), -1)
            self.total_variance = self._total((values - self._mean(values)) ** 2)

    def __call__(self, model: GrowingMLP) -> dict[str, float]:
        # No train/eval switch: the network has no dropout or normalisation, and the switch
        # costs more than the rest of a small validation pass.
        if self.x.device == self.labels.device and not self.mapped:
            return self.of_output(model.forward(self.x))  # no module hooks to call
        # Memory-mapped rows (data larger than memory) go through the network a span at a
        # time, over to its device: the activations of all of them at once would be
        # hundreds of megabytes.
        chunks = self.x.split(_VALIDATION_ROWS)
        return self.of_output(torch.cat([model(chunk.to(self.labels.device)) for chunk in chunks]))

    def of_output(self, output: Tensor) -> dict[str, float]:
        """The metrics of the network outputs ``output`` on the validation rows."""
        metrics = {"loss": float(self.trainer.loss(output, self.target))}
        if self.trainer.task == "regression":
            residual = output - self.labels.float().reshape_as(output)
            metrics["r2"] = 1.0 - self._total(residual**2) / max(self.total_variance, 1e-12)
            return metrics
        predicted = decide(output)
        correct = predicted.eq(self.labels)
        if self.weights is None:
            metrics["accuracy"] = int(correct.sum()) / len(self.labels)
        else:
            metrics["accuracy"] = self._total(correct.float()) / float(self.weights.sum())
        if self.trainer.config.monitor == "macro_f1":
            from sklearn.metrics import f1_score  # imports rich: keep it out of `import growml`

            weights = None if self.weights is None else self.weights.cpu().numpy()
            metrics["macro_f1"] = float(
                f1_score(
                    self.labels.cpu().numpy(),
                    predicted.cpu().numpy(),
                    average="macro",
                    zero_division=0,
                    sample_weight=weights,
                )
            )
        return metrics

    def _total(self, values: Tensor) -> float:
        """Σ over rows (and outputs) of ``values``, each row counted by its weight."""
        if self.weights is None:
            return float(values.sum())
        return float((self.weights.reshape(-1, *[1] * (values.ndim - 1)) * values).sum())

    def _mean(self, values: Tensor) -> Tensor:
        if self.weights is None:
            return values.mean(0)
        return (self.weights[:, None] * values).sum(0) / self.weights.sum()
