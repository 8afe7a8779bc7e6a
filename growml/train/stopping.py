"""Early stopping: the best validation epoch so far, its weights, and when to stop.

Patience counts from the last improvement or from the last growth step that added neurons:
new neurons get the full patience to pay off, steps that add nothing do not. The best epoch is
followed even with early stopping off, since growth's ``stall`` schedule counts from it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from growml.checkpoint import Checkpoint
from growml.nn.mlp import GrowingMLP
from growml.nn.optimizer_state import forget_stale_state
from growml.train.metrics import HIGHER_IS_BETTER


class EarlyStopping:
    """Follows the validation score ``monitor`` epoch by epoch.

    Args:
        monitor: the validation metric to follow (``train.monitor``).
        patience: epochs without improvement after which training stops (``train.patience``).
        enabled: whether to stop and keep the best weights (``train.early_stopping``).

    ``best_score``, ``best_epoch`` (0 before the first epoch), ``best_metrics`` and
    ``best_weights`` (by parameter name) describe the best epoch so far; ``last_growth`` is the
    last epoch that changed the network's shape.
    """

    # What a checkpoint stores besides the best weights (JSON-ready).
    _STATE = ("best_score", "best_epoch", "best_metrics", "last_growth")

    def __init__(self, monitor: str, patience: int, enabled: bool = True) -> None:
        self.higher_is_better = monitor in HIGHER_IS_BETTER
        self.monitor = monitor
        self.patience = patience
        self.enabled = enabled
        self.best_score: float | None = None
        self.best_epoch = 0
        self.best_metrics: dict[str, float] = {}
        self.best_weights: dict[str, Tensor] | None = None
        self.last_growth = 0

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """Take ``epoch``'s validation ``metrics``; returns whether they are the best so far
        (then ``model``'s weights are kept)."""
        score = metrics[self.monitor]
        improved = self.best_score is None or (
            score > self.best_score if self.higher_is_better else score < self.best_score
        )
        if improved:
            self.best_score, self.best_epoch, self.best_metrics = score, epoch, metrics
            self.best_weights = {
                name: param.detach().clone() for name, param in model.named_parameters()
            }
        return improved

    def grew(self, epoch: int) -> None:
        """The network's shape changed after ``epoch``: patience counts from there."""
        self.last_growth = epoch

    def stalled(self, epoch: int) -> int:
        """Epochs since the last improvement or the last growth, after ``epoch``."""
        return epoch - max(self.best_epoch, self.last_growth)

    def should_stop(self, epoch: int) -> bool:
        """Whether training stops after ``epoch`` (never when not ``enabled``)."""
        return self.enabled and self.stalled(epoch) >= self.patience

    def restore_best(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Put the best epoch's weights back into ``model`` when ``enabled``. They may predate
        growth, so their shapes come back too (and a network that has gained hidden layers
        since loses them), and ``optimizer`` forgets the state of every parameter whose shape
        changed."""
        if not self.enabled or self.best_weights is None:
            return
        if isinstance(model, GrowingMLP):  # layers inserted since go again
            model.match_layers(self.best_weights, optimizer)
        for name, param in model.named_parameters():
            # Training may go on (the anneal): the kept weights stay intact.
            param.data = self.best_weights[name].to(param.device, copy=True)
        forget_stale_state(optimizer)
        if getattr(model, "births", None) is not None:
            model.births.follow(model)

    def state_dict(self, checkpoint: Checkpoint) -> dict[str, Any]:
        """The best epoch so far (JSON-ready; its weights go into ``checkpoint``)."""
        state = {name: getattr(self, name) for name in self._STATE}
        state["best_weights"] = (
            None
            if self.best_weights is None
            else {
                name: checkpoint.put(f"best.{name}", weight)
                for name, weight in self.best_weights.items()
            }
        )
        return state

    def load_state_dict(self, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        """Go on from ``state_dict``'s state, as if never stopped."""
        for name in self._STATE:
            setattr(self, name, state[name])
        names = state["best_weights"]
        self.best_weights = None
        if names is not None:
            self.best_weights = {name: checkpoint.tensors[key] for name, key in names.items()}
