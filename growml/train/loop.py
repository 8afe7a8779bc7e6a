"""One run of the training loop: what its hooks see, the ``Hook`` base they implement
(``train/hooks.py`` holds the hooks), and what a checkpoint keeps of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from growml.checkpoint import (
    Checkpoint,
    generator_state,
    load_generator_state,
    load_optimizer_state,
    optimizer_state,
)
from growml.events import EpochEnd, Event
from growml.nn.mlp import GrowingMLP
from growml.train.stopping import EarlyStopping


class Hook:
    """The base of every hook: methods that do nothing until overridden."""

    name: ClassVar[str] = ""

    def on_train_start(self, loop: Loop) -> None:
        """The loop is set up (or restored); no epoch of this run has started."""

    def on_epoch_start(self, loop: Loop) -> None:
        """An epoch is about to start; ``loop.epoch`` epochs are done."""

    def on_step_end(self, loop: Loop) -> None:
        """The optimizer has just stepped."""

    def on_epoch_end(self, loop: Loop, epoch: EpochEnd) -> bool:
        """``epoch`` is trained and validated; returns whether the network's shape changed."""
        return False

    def before_growth(self, loop: Loop) -> None:
        """The network is about to be grown (a growth step after this epoch's validation,
        which may end up adding nothing)."""

    def state_dict(self, checkpoint: Checkpoint) -> dict[str, Any]:
        """The hook's state, JSON-ready (tensors go into ``checkpoint``); kept when ``name``
        is set."""
        return {}

    def load_state_dict(self, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        """Go on from ``state_dict``'s state, as if never stopped."""


@dataclass
class LoopState:
    """The loop's part of a checkpoint, ``checkpoint.state["trainer"]`` (tensors by their
    names in the checkpoint).

    Attributes:
        epoch: epochs done.
        generator: the batch order's generator.
        optimizer: the optimizer's state (``checkpoint.optimizer_state``).
        early_stopping: ``EarlyStopping.state_dict``.
        hooks: each named hook's ``state_dict``, by its name.
        anneal_start: the epoch after which the final anneal began (0: not begun).
    """

    epoch: int
    generator: str
    optimizer: dict[str, Any]
    early_stopping: dict[str, Any]
    hooks: dict[str, dict[str, Any]]
    anneal_start: int = 0


@dataclass
class Loop:
    """One run of the training loop, as its hooks see it.

    Attributes:
        model: the network being trained.
        optimizer: its optimizer.
        x: the training rows.
        target: the training loss's prepared target for ``x`` (each row's weight its last
            column when the rows are weighted).
        generator: draws the batch order.
        stopping: the best epoch so far, and when to stop.
        hooks: the hooks, in the order they are called.
        emit: hands an event to the trainer's observers.
        epoch: epochs done.
        warming_up: whether the latest epoch trained on the warm-up loss.
        changed: whether a hook changed the network's shape after the latest epoch.
        anneal_start: the epoch after which the final anneal began (0: not begun); the
            network's shape no longer changes from then on.
    """

    model: GrowingMLP
    optimizer: torch.optim.Optimizer
    x: Tensor
    target: Tensor
    generator: torch.Generator
    stopping: EarlyStopping
    hooks: list[Hook]
    emit: Callable[[Event], None]
    epoch: int = 0
    warming_up: bool = False
    changed: bool = False
    anneal_start: int = 0

    def snapshot(self) -> Checkpoint:
        """The training's whole state between epochs: what ``restore`` needs to go on."""
        checkpoint = Checkpoint()
        for name, param in self.model.named_parameters():
            checkpoint.put(f"model.{name}", param)
        state = LoopState(
            epoch=self.epoch,
            generator=generator_state(checkpoint, "trainer.generator", self.generator),
            optimizer=optimizer_state(checkpoint, self.optimizer),
            early_stopping=self.stopping.state_dict(checkpoint),
            hooks={hook.name: hook.state_dict(checkpoint) for hook in self.hooks if hook.name},
            anneal_start=self.anneal_start,
        )
        checkpoint.state["trainer"] = asdict(state)
        return checkpoint

    def restore(self, checkpoint: Checkpoint) -> None:
        """Put ``checkpoint``'s network (at its widths), optimizer, batch order, early stopping
        and hooks back."""
        state = LoopState(**checkpoint.state["trainer"])
        if isinstance(self.model, GrowingMLP):  # with the layers growth had inserted
            saved = {
                name.removeprefix("model."): tensor
                for name, tensor in checkpoint.tensors.items()
                if name.startswith("model.")
            }
            self.model.match_layers(saved, self.optimizer)
        for name, param in self.model.named_parameters():
            param.data = checkpoint.tensors[f"model.{name}"].to(param.device, copy=True)
        load_optimizer_state(checkpoint, self.optimizer, state.optimizer)
        load_generator_state(checkpoint, state.generator, self.generator)
        self.stopping.load_state_dict(checkpoint, state.early_stopping)
        for hook in self.hooks:
            if hook.name:
                hook.load_state_dict(checkpoint, state.hooks[hook.name])
        self.epoch = state.epoch
        self.anneal_start = state.anneal_start
