"""The training loop: minibatch steps, validation, early stopping, events.

Tiny networks on a CPU are bound by per-step overhead, not arithmetic, so the loop keeps the
whole dataset as tensors, draws one permutation per epoch, runs the network's hand-derived
backward with the loss's closed-form gradient (no autograd graph), steps a fused optimizer, and
uses one torch thread unless the layers are large enough for a second one to pay off.
The trainer prints nothing: it emits events to observers.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from growml.checkpoint import (
    Checkpoint,
    generator_state,
    load_generator_state,
    load_optimizer_state,
    optimizer_state,
)
from growml.config import TrainConfig
from growml.errors import TrainingError
from growml.events import EpochEnd, Observer, TrainEnd, TrainStart
from growml.losses import Loss
from growml.nn.mlp import GrowingMLP
from growml.nn.optimizer_state import forget_stale_state
from growml.train.metrics import HIGHER_IS_BETTER, decide
from growml.train.optimizer import make_optimizer

if TYPE_CHECKING:
    from growml.growth.engine import GrowthEngine

# One layer's multiply-adds per step (batch × fan_in × fan_out) above which a second thread
# pays for its synchronisation. Measured on 2 cores (digits and mnist1d, widths 32–256, batch
# 64 and 200): below about 0.5 M one thread is 2–8 % faster, above it two are up to 24 % faster.
_MULTITHREAD_WORK = 2**19
# Rows of the rarest class a batch holds on average when the loss needs them (soft-set losses:
# a batch without positives has no F1 gradient).
MIN_POSITIVES = 4
# torch's own choice (one per physical core), read before anything changes it.
_ALL_THREADS = torch.get_num_threads()


@dataclass
class TrainResult:
    """What a finished training run reports."""

    epochs: int
    best_epoch: int
    stopped_early: bool
    seconds: float
    best_validation: dict[str, float] = field(default_factory=dict)


def choose_threads(requested: int, model: GrowingMLP, batch_size: int) -> int:
    """``requested`` if set, else 1 for small layers and all of torch's threads for large."""
    if requested:
        return requested
    work = max(w.shape[0] * w.shape[1] for w in model.weights) * batch_size
    return 1 if work <= _MULTITHREAD_WORK else _ALL_THREADS


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Trainer:
    """Trains a ``GrowingMLP`` by minibatch gradient descent with early stopping.

    Args:
        config: the ``train`` settings (epochs, batch size, optimizer, early stopping...).
        loss: the training loss.
        task: ``classification`` or ``regression`` (decides the validation metrics).
        observers: callables receiving each event (start, every epoch, growth, end).
        seed: seeds the batch order.
        growth: grows the network as its schedule asks; early stopping counts its patience
            from the last improvement or the last step that added neurons.
        warmup: a loss to train with for the first ``warmup_epochs`` epochs (cross-entropy
            before a soft-set loss).

    Losses that are not sums over rows (``loss.needs_positives``, the soft-set losses) get
    stratified batches, every class in its share, and batches large enough to hold
    ``MIN_POSITIVES`` rows of the rarest class on average.

    After ``run``: ``optimizer_`` holds the optimizer and ``result_`` the ``TrainResult``.
    """

    def __init__(
        self,
        config: TrainConfig,
        loss: Loss,
        task: str,
        observers: Sequence[Observer] = (),
        seed: int = 0,
        growth: GrowthEngine | None = None,
        warmup: Loss | None = None,
        warmup_epochs: int = 0,
        checkpoint: Callable[[Checkpoint], None] | None = None,
        resume: Checkpoint | None = None,
    ) -> None:
        self.config = config
        self.loss = loss
        self.task = task
        self.observers = list(observers)
        self.seed = seed
        self.growth = growth
        self.warmup = warmup
        self.warmup_epochs = warmup_epochs
        self.checkpoint = checkpoint
        self.resume = resume

    def run(
        self,
        model: GrowingMLP,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> TrainResult:
        """Train ``model`` in place on encoded data; the best validation weights are kept.

        ``optimizer`` continues an earlier run's optimizer (its state carried across pruning);
        by default a new one is made from the settings.
        """
        config = self.config
        x = torch.as_tensor(x_train, dtype=torch.float32)
        target = self.loss.prepare_target(y_train)
        validation = _Validation(self, x_val, y_val)
        self.optimizer_ = optimizer or make_optimizer(model.parameters(), config)
        self._labels = None
        self.batch_size_ = config.batch_size
        if getattr(self.loss, "needs_positives", False):
            self._labels = torch.as_tensor(y_train, dtype=torch.long)
            rarest = float(torch.bincount(self._labels).min()) / len(self._labels)
            self.batch_size_ = min(
                max(config.batch_size, math.ceil(MIN_POSITIVES / max(rarest, 1e-12))), len(x)
            )
        warmup_target = self.warmup.prepare_target(y_train) if self.warmup else None
        generator = torch.Generator().manual_seed(self.seed)
        threads = choose_threads(config.threads, model, config.batch_size)
        higher_is_better = config.monitor in HIGHER_IS_BETTER
        best_score, best_epoch, best_state, best_metrics = None, 0, None, {}
        started = time.perf_counter()
        epoch, stopped_early, last_growth = 0, False, 0
        growth = self.growth
        if self.resume is None:
            self._emit(
                TrainStart(
                    max_epochs=config.epochs,
                    train_rows=len(x),
                    validation_rows=len(x_val),
                    hidden_widths=model.hidden_widths,
                    parameters=model.n_parameters(),
                    threads=threads,
                )
            )
        else:  # go on where the checkpoint left off, as if never stopped
            loop = _restore(self.resume, model, self.optimizer_, generator, growth)
            epoch, last_growth = loop["epoch"], loop["last_growth"]
            best_score, best_epoch, best_metrics = (
                loop["best_score"],
                loop["best_epoch"],
                loop["best_metrics"],
            )
            best_state = [self.resume.tensors[f"best.{i}"] for i in range(loop["best_tensors"])]
            threads = choose_threads(config.threads, model, config.batch_size)
        saved_at, first = time.monotonic(), epoch + 1
        with torch_threads(threads), torch.no_grad():
            model.train()
            for epoch in range(first, config.epochs + 1):
                grew = False
                epoch_started = time.perf_counter()
                if self.warmup is not None and epoch <= self.warmup_epochs:
                    train_loss = self._epoch(model, x, warmup_target, generator, self.warmup)
                else:
                    train_loss = self._epoch(model, x, target, generator, self.loss)
                metrics = validation(model)
                score = metrics[config.monitor]
                if not (math.isfinite(train_loss) and math.isfinite(score)):
                    raise TrainingError(
                        f"training diverged at epoch {epoch} (training loss {train_loss:.3g}); "
                        f"lower train.lr (now {config.lr:g})."
                    )
                improved = best_score is None or (
                    score > best_score if higher_is_better else score < best_score
                )
                if improved:
                    best_score, best_epoch, best_metrics = score, epoch, metrics
                    best_state = [p.detach().clone() for p in model.parameters()]
                if growth is not None:
                    growth.observe(metrics)
                self._emit(
                    EpochEnd(
                        epoch=epoch,
                        train_loss=train_loss,
                        validation=metrics,
                        hidden_widths=model.hidden_widths,
                        parameters=model.n_parameters(),
                        improved=improved,
                        seconds=time.perf_counter() - epoch_started,
                    )
                )
                warming_up = self.warmup is not None and epoch <= self.warmup_epochs
                # No growth on the warm-up loss: its values and gradients are another loss's.
                if growth is not None and not growth.finished_ and not warming_up:
                    stalled = epoch - max(best_epoch, last_growth)
                    if growth.wants_step(epoch, train_loss, stalled):
                        for event in growth.step(model, self.optimizer_, x, target, epoch):
                            self._emit(event)
                            if event.added:
                                last_growth, grew = epoch, True
                        torch.set_num_threads(
                            choose_threads(config.threads, model, config.batch_size)
                        )
                # New neurons get the full patience to pay off; steps that add nothing do not.
                stalled = epoch - max(best_epoch, last_growth)
                if config.early_stopping and stalled >= config.patience:
                    stopped_early = True
                    break
                due = time.monotonic() - saved_at >= config.checkpoint_seconds
                if self.checkpoint is not None and (grew or due) and epoch < config.epochs:
                    loop = {
                        "epoch": epoch,
                        "last_growth": last_growth,
                        "best_score": best_score,
                        "best_epoch": best_epoch,
                        "best_metrics": best_metrics,
                    }
                    self.checkpoint(
                        _snapshot(loop, model, self.optimizer_, generator, growth, best_state)
                    )
                    saved_at = time.monotonic()
            if config.early_stopping and best_state is not None:
                # The best weights may predate growth: restore their shapes as well.
                for param, best in zip(model.parameters(), best_state, strict=True):
                    param.data = best
                forget_stale_state(self.optimizer_)
            model.eval()
        result = TrainResult(
            epochs=epoch,
            best_epoch=best_epoch if config.early_stopping else epoch,
            stopped_early=stopped_early,
            seconds=time.perf_counter() - started,
            best_validation=best_metrics if config.early_stopping else metrics,
        )
        self.result_ = result
        self._emit(
            TrainEnd(
                epochs=result.epochs,
                best_epoch=result.best_epoch,
                stopped_early=result.stopped_early,
                seconds=result.seconds,
                best_validation=result.best_validation,
            )
        )
        return result

    def _epoch(
        self,
        model: GrowingMLP,
        x: Tensor,
        target: Tensor,
        generator: torch.Generator,
        loss: Loss,
    ) -> float:
        """One pass over the training rows in a fresh random order; returns the mean loss."""
        n, batch_size = len(x), self.batch_size_
        if self._labels is None:
            order = torch.randperm(n, generator=generator)
        else:
            order = stratified_order(self._labels, generator)
        optimizer = self.optimizer_
        # Pruned weights stay zero: the optimizer's momentum would otherwise revive them.
        masked = list(zip(model.weights, model.masks, strict=True)) if model.masks else []
        values = []
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            cache = model.forward_cached(x.index_select(0, rows))
            value, output_grad = loss.value_and_grad(cache.output, target.index_select(0, rows))
            model.backward(cache, output_grad)
            optimizer.step()
            for weight, mask in masked:
                weight.mul_(mask)
            values.append(value)
        sizes = torch.full((len(values),), float(batch_size))
        sizes[-1] = n - batch_size * (len(values) - 1)
        return float(torch.stack(values).dot(sizes)) / n

    def _emit(self, event: object) -> None:
        for observer in self.observers:
            observer(event)


def stratified_order(labels: Tensor, generator: torch.Generator) -> Tensor:
    """A random order in which every class is spread evenly: any run of consecutive rows holds
    each class in about its overall share."""
    shuffled = torch.randperm(len(labels), generator=generator)
    shuffled_labels = labels[shuffled]
    keys = torch.empty(len(labels), dtype=torch.float64)
    for label in shuffled_labels.unique():
        members = (shuffled_labels == label).nonzero().flatten()
        count = len(members)
        jitter = torch.rand(count, generator=generator, dtype=torch.float64)
        keys[members] = (torch.arange(count, dtype=torch.float64) + jitter) / count
    return shuffled[torch.argsort(keys)]


class _Validation:
    """Cheap per-epoch validation metrics, computed in torch on the encoded targets."""

    def __init__(self, trainer: Trainer, x_val: np.ndarray, y_val: np.ndarray) -> None:
        self.trainer = trainer
        self.x = torch.as_tensor(x_val, dtype=torch.float32)
        self.target = trainer.loss.prepare_target(y_val)
        self.labels = torch.as_tensor(y_val)
        if trainer.task == "regression":
            centred = self.labels.float().reshape(len(self.labels), -1)
            self.total_variance = float(((centred - centred.mean(0)) ** 2).sum())

    def __call__(self, model: GrowingMLP) -> dict[str, float]:
        # No train/eval switch: the network has no dropout or normalisation, and the switch
        # costs more than the rest of a small validation pass.
        output = model(self.x)
        metrics = {"loss": float(self.trainer.loss(output, self.target))}
        if self.trainer.task == "regression":
            residual = output - self.labels.float().reshape_as(output)
            metrics["r2"] = 1.0 - float((residual**2).sum()) / max(self.total_variance, 1e-12)
            return metrics
        predicted = decide(output)
        metrics["accuracy"] = int(predicted.eq(self.labels).sum()) / len(self.labels)
        if self.trainer.config.monitor == "macro_f1":
            from sklearn.metrics import f1_score  # imports rich: keep it out of `import growml`

            metrics["macro_f1"] = float(
                f1_score(self.labels.numpy(), predicted.numpy(), average="macro", zero_division=0)
            )
        return metrics


def _snapshot(
    loop: dict[str, Any],
    model: GrowingMLP,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    growth: GrowthEngine | None,
    best_state: list[torch.Tensor] | None,
) -> Checkpoint:
    """The training's whole state after an epoch: what ``_restore`` needs to go on."""
    checkpoint = Checkpoint()
    for name, param in model.named_parameters():
        checkpoint.put(f"model.{name}", param)
    for i, tensor in enumerate(best_state or []):
        checkpoint.put(f"best.{i}", tensor)
    checkpoint.state["trainer"] = {
        **loop,
        "best_tensors": len(best_state or []),
        "generator": generator_state(checkpoint, "trainer.generator", generator),
    }
    checkpoint.state["optimizer"] = optimizer_state(checkpoint, optimizer)
    if growth is not None:
        checkpoint.state["growth"] = growth.state_dict(checkpoint)
    return checkpoint


def _restore(
    checkpoint: Checkpoint,
    model: GrowingMLP,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    growth: GrowthEngine | None,
) -> dict[str, Any]:
    """Put ``checkpoint``'s network (at its widths), optimizer, batch order and growth engine
    back; returns the loop's own state."""
    for name, param in model.named_parameters():
        param.data = checkpoint.tensors[f"model.{name}"].clone()
    load_optimizer_state(checkpoint, optimizer, checkpoint.state["optimizer"])
    load_generator_state(checkpoint, "trainer.generator", generator)
    if growth is not None:
        growth.load_state_dict(checkpoint, checkpoint.state["growth"])
    return checkpoint.state["trainer"]
