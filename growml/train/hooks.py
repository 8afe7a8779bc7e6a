"""Hooks: work done at fixed points of training, beside the loop's own.

A hook overrides what it needs of ``Hook`` (``train/loop.py``, beside the ``Loop`` it acts
on); every method does nothing by default. The trainer calls its hooks in order:

* ``on_train_start`` once the loop is set up, or restored from a checkpoint;
* ``on_epoch_start`` before each epoch (``loop.epoch`` epochs are done);
* ``on_step_end`` after every optimizer step;
* ``on_epoch_end`` after each epoch's validation and its ``EpochEnd`` event, returning
  whether the hook changed the network's shape (early stopping then counts its patience from
  this epoch, and the thread count is chosen again for the new sizes);
* ``before_growth`` when the ``Growth`` hook is about to ask for a growth step (from its
  ``on_epoch_end``, so before the ``on_epoch_end`` of the hooks after it).

A hook with state to resume names itself (``name``): its ``state_dict`` goes into every
checkpoint under that name, and ``load_state_dict`` gets it back on resume.

What only watches training (the progress display, the history file, Optuna's trial pruning in
``tune/objective.py``) is an observer of events, not a hook: it changes nothing in the
training, which a trial's pruning ends by raising ``optuna.TrialPruned`` from its observer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from growml.checkpoint import Checkpoint
from growml.events import EpochEnd
from growml.train.loop import Hook, Loop

if TYPE_CHECKING:
    from growml.growth.engine import GrowthEngine

__all__ = ["Checkpoints", "Growth", "Hook", "PruningMasks"]


class Growth(Hook):
    """Grows the network as ``engine``'s schedule asks.

    The engine sees every epoch's validation metrics; it is asked for a step after each epoch
    until growth has finished, except on the warm-up loss, whose values and gradients are
    another loss's, and during the final anneal, which ends growth. A step that added neurons
    is a change of the network's shape.
    """

    name = "growth"

    def __init__(self, engine: GrowthEngine) -> None:
        self.engine = engine

    def on_epoch_end(self, loop: Loop, epoch: EpochEnd) -> bool:
        engine = self.engine
        engine.observe(epoch.validation)
        if engine.finished_ or loop.warming_up or loop.anneal_start:
            return False
        stalled = loop.stopping.stalled(epoch.epoch)
        if not engine.wants_step(epoch.epoch, epoch.train_loss, stalled):
            return False
        for hook in loop.hooks:
            hook.before_growth(loop)
        steps = engine.step(loop.model, loop.optimizer, loop.x, loop.target, epoch.epoch)
        for step in steps:
            loop.emit(step)
        return any(step.added for step in steps)

    def state_dict(self, checkpoint: Checkpoint) -> dict[str, Any]:
        return self.engine.state_dict(checkpoint)

    def load_state_dict(self, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(checkpoint, state)


class PruningMasks(Hook):
    """Keeps pruned weights at zero: ``model.masks`` again after every optimizer step, whose
    momentum would otherwise revive them."""

    def on_train_start(self, loop: Loop) -> None:
        model = loop.model
        self._masked = list(zip(model.weights, model.masks, strict=True)) if model.masks else []

    def on_step_end(self, loop: Loop) -> None:
        for weight, mask in self._masked:
            weight.mul_(mask)


class Checkpoints(Hook):
    """Hands the training's whole state (``Loop.snapshot``) to ``write`` between epochs: after
    an epoch that changed the network, and otherwise once ``seconds`` have passed since the
    last checkpoint.

    A checkpoint is taken as the next epoch starts, so one is never taken after the last
    epoch, nor after the epoch early stopping stopped at: a run resumed from it would go on
    past its end.
    """

    def __init__(self, write: Callable[[Checkpoint], None], seconds: float) -> None:
        self.write = write
        self.seconds = seconds

    def on_train_start(self, loop: Loop) -> None:
        # A resumed run's own checkpoint already holds the state it starts from.
        self._saved_epoch, self._saved_at = loop.epoch, time.monotonic()

    def on_epoch_start(self, loop: Loop) -> None:
        due = time.monotonic() - self._saved_at >= self.seconds
        if loop.epoch > self._saved_epoch and (loop.changed or due):
            self.write(loop.snapshot())
            self._saved_epoch, self._saved_at = loop.epoch, time.monotonic()
