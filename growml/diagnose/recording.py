"""What a fit records for ``growml diagnose`` when ``diagnostics.enabled`` is on.

* The probe batch: ``diagnostics.probe`` training rows drawn once by the run's seed (on a
  generator of their own, so the training draws what it would draw without them), with their
  targets; every measurement of the run reads these rows.
* Each weight's value when it was born (``growml.nn.births``): the start of laziness for a
  network whose neurons were born at different times.
* Gradient confusion on the probe batch at the start of training and just before and just
  after every growth step (``ConfusionMeasured`` events in ``history.jsonl``): its course over
  growth.

The probe and the births go into the run's ``diagnostics.safetensors``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from growml.checkpoint import Checkpoint
from growml.diagnose.measures import gradient_confusion, per_example_gradients
from growml.events import ConfusionMeasured, EpochEnd
from growml.losses import Loss, default_loss
from growml.nn.births import Births
from growml.nn.mlp import GrowingMLP
from growml.train.loop import Hook, Loop

# The names of the probe's tensors in diagnostics.safetensors (the births are "births.<name>").
PROBE_X, PROBE_Y, BIRTHS = "probe.x", "probe.y", "births."


def draw_probe(x: np.ndarray, y: np.ndarray, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """``size`` training rows (all of them when fewer), drawn without replacement by ``seed``
    and kept in their order in the split; their features (float32) and targets."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    count = min(size, len(x))
    rows = np.sort(torch.randperm(len(x), generator=generator)[:count].numpy())
    return torch.as_tensor(np.asarray(x[rows]), dtype=torch.float32), torch.as_tensor(y[rows])


def probe_loss(task: str, outputs: int) -> Loss:
    """The loss whose per-row gradients the measures read: the task's standard one
    (cross-entropy, or mean squared error), a mean over rows whatever the training's loss."""
    return default_loss(task, outputs)


def measure_confusion(
    model: GrowingMLP, loss: Loss, x: Tensor, y: Tensor, epoch: int, stage: str
) -> ConfusionMeasured:
    """The ``ConfusionMeasured`` event of ``model`` on the probe rows ``x``, ``y`` now, at
    ``stage`` of ``epoch``."""
    device = next(model.parameters()).device
    # Called from training, which runs in inference mode; the gradients need autograd back.
    with torch.inference_mode(False), torch.enable_grad():
        target = loss.prepare_target(y.numpy(), None)
        gradients = per_example_gradients(model, loss, x.to(device), target.to(device))
        confusion = gradient_confusion(gradients)
    return ConfusionMeasured(
        epoch=epoch,
        stage=stage,
        hidden_widths=model.hidden_widths,
        parameters=model.n_parameters(),
        probe=confusion.probe,
        eta=confusion.eta,
        min_cosine=confusion.min_cosine,
        cosine_5th=confusion.cosine_5th,
        mean_cosine=confusion.mean_cosine,
    )


class Recording(Hook):
    """Records births and the course of gradient confusion over a training (the first one of
    a fit: the growing one). On a fresh start the network's values are the first births, and
    confusion is measured at epoch 0; around every growth step that changes the widths it is
    measured just before and just after, so that what growth did and what training did between
    steps can be told apart. A checkpoint keeps the births, so a resumed fit records as if it
    had never stopped."""

    name = "diagnostics"

    def __init__(self, model: GrowingMLP, loss: Loss, x: Tensor, y: Tensor) -> None:
        self.model = model
        self.loss = loss
        self.x, self.y = x, y
        self.widths = model.hidden_widths
        self.before: ConfusionMeasured | None = None

    def on_train_start(self, loop: Loop) -> None:
        if self.model.births is None:
            self.model.births = Births(self.model)
        if loop.epoch == 0:
            loop.emit(self._measure(0, "start"))
        self.widths = self.model.hidden_widths

    def before_growth(self, loop: Loop) -> None:
        self.before = self._measure(loop.epoch, "before growth")

    def on_epoch_end(self, loop: Loop, epoch: EpochEnd) -> bool:
        if self.model.hidden_widths != self.widths:
            self.widths = self.model.hidden_widths
            if self.before is not None:
                loop.emit(self.before)
            loop.emit(self._measure(epoch.epoch, "after growth"))
        self.before = None
        return False

    def _measure(self, epoch: int, stage: str) -> ConfusionMeasured:
        return measure_confusion(self.model, self.loss, self.x, self.y, epoch, stage)

    def record(self) -> dict[str, Tensor]:
        """What ``diagnostics.safetensors`` holds: the probe's rows and targets, and the births
        of the network as it is now (on the CPU); the network stops recording births."""
        births = self.model.births.named(self.model) if self.model.births is not None else {}
        self.model.births = None
        return {
            PROBE_X: self.x,
            PROBE_Y: self.y,
            **{BIRTHS + name: value for name, value in births.items()},
        }

    def state_dict(self, checkpoint: Checkpoint) -> dict[str, Any]:
        births = self.model.births.named(self.model) if self.model.births is not None else {}
        return {name: checkpoint.put(BIRTHS + name, value) for name, value in births.items()}

    def load_state_dict(self, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        tensors = {name: checkpoint.tensors[key] for name, key in state.items()}
        self.model.births = Births.from_named(self.model, tensors)
