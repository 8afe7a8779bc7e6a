"""The training loop: minibatch steps, validation, early stopping, hooks, events.

Tiny networks on a CPU are bound by per-step overhead, not arithmetic, so the loop keeps the
whole dataset as tensors, draws one permutation per epoch, runs the network's hand-derived
backward with the loss's closed-form gradient (no autograd graph), steps a fused optimizer, and
uses one torch thread unless the layers are large enough for a second one to pay off.
The trainer prints nothing: it emits events to observers.

What happens beside the loop's own work — growth, pruning masks, checkpoints — is a hook
(``train/hooks.py``); early stopping is one small state object (``train/stopping.py``); the
loop's state that hooks see and checkpoints keep is ``train/loop.py``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from growml.checkpoint import Checkpoint
from growml.config import TrainConfig
from growml.errors import TrainingError
from growml.events import EpochEnd, Event, Observer, TrainEnd, TrainStart
from growml.losses import Loss
from growml.nn.mlp import GrowingMLP
from growml.train.batches import Batches
from growml.train.hooks import Checkpoints, Growth, Hook, PruningMasks
from growml.train.loop import Loop
from growml.train.optimizer import FusedStep, make_optimizer
from growml.train.stopping import EarlyStopping
from growml.train.validation import Validation, model_device, rows_on

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
        growth: grows the network as its schedule asks (the ``Growth`` hook); early stopping
            counts its patience from the last improvement or the last step that added
            neurons.
        warmup: a loss to train with for the first ``warmup_epochs`` epochs (cross-entropy
            before a soft-set loss).
        checkpoint: receives a checkpoint after every epoch that changed the network and every
            ``train.checkpoint_seconds`` (the ``Checkpoints`` hook); none by default.
        resume: a checkpoint to go on from, as if the training had never stopped.
        hooks: further hooks (``growml.train.hooks``), called after the trainer's own.

    A network with pruning masks (``model.masks``) keeps its pruned weights at zero (the
    ``PruningMasks`` hook). Losses that are not sums over rows (``loss.needs_positives``, the
    soft-set losses) get stratified batches, every class in its share, and batches large
    enough to hold ``MIN_POSITIVES`` rows of the rarest class on average.

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
        hooks: Sequence[Hook] = (),
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
        self.hooks = list(hooks)

    def fine_tuning(self) -> Trainer:
        """A trainer for after pruning: these settings, loss, observers and seed, without
        growth, warm-up, checkpoints, further hooks or a checkpoint to resume (a resumed fit
        goes on from the training before pruning, and prunes again)."""
        return Trainer(self.config, self.loss, self.task, self.observers, self.seed)

    def run(
        self,
        model: GrowingMLP,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        optimizer: torch.optim.Optimizer | None = None,
        train_weights: np.ndarray | None = None,
        validation_weights: np.ndarray | None = None,
    ) -> TrainResult:
        """Train ``model`` in place on encoded data; the best validation weights are kept.

        ``optimizer`` continues an earlier run's optimizer (its state carried across pruning);
        by default a new one is made from the settings. ``train_weights`` and
        ``validation_weights`` weight the rows (one number per row, none: all alike) in the
        training loss, the growth statistics and the validation metrics.
        """
        config = self.config
        loop = self._loop(model, x_train, y_train, optimizer, train_weights)
        validation = Validation(self, x_val, y_val, validation_weights, model_device(model))
        started = time.perf_counter()
        if self.resume is None:
            self._emit(self._start_event(loop, validation_rows=len(x_val)))
        else:  # go on where the checkpoint left off, as if never stopped
            loop.restore(self.resume)
        threads = choose_threads(config.threads, model, config.batch_size)
        # Inference mode, not only no_grad: torch calls cost less (an epoch of digits at width
        # 32: 0.78 → 0.68 ms). What outlives the training becomes ordinary again (finally).
        try:
            with torch_threads(threads), torch.inference_mode():
                last, stopped_early = self._epochs(loop, validation)
        finally:
            _ordinary_tensors(model, loop.optimizer)
        kept = loop.stopping if config.early_stopping else None
        self.result_ = TrainResult(
            epochs=loop.epoch,
            best_epoch=kept.best_epoch if kept else loop.epoch,
            stopped_early=stopped_early,
            seconds=time.perf_counter() - started,
            best_validation=kept.best_metrics if kept else last.validation,
        )
        self._emit(TrainEnd(**asdict(self.result_)))
        return self.result_

    def _epochs(self, loop: Loop, validation: Validation) -> tuple[EpochEnd, bool]:
        """The epochs, until early stopping, ``train.epochs`` or the end of the anneal, with
        the best weights put back; returns the last epoch's event and whether early stopping
        ended the training (before the anneal, when there is one)."""
        config, model = self.config, loop.model
        stopped_early = False
        model.train()
        for hook in loop.hooks:
            hook.on_train_start(loop)
        for epoch in range(loop.epoch + 1, config.epochs + config.anneal_epochs + 1):
            if loop.anneal_start:
                _set_lr(loop.optimizer, annealed_lr(config, epoch - loop.anneal_start))
            for hook in loop.hooks:
                hook.on_epoch_start(loop)
            last = self._epoch(loop, epoch, validation)
            loop.changed = any([hook.on_epoch_end(loop, last) for hook in loop.hooks])
            # New neurons get the full patience to pay off; wider layers may want more threads.
            if loop.changed:
                loop.stopping.grew(epoch)
                torch.set_num_threads(choose_threads(config.threads, model, config.batch_size))
            if loop.anneal_start:
                if epoch - loop.anneal_start >= config.anneal_epochs:
                    break
                continue
            stopping = loop.stopping.should_stop(epoch)
            stopped_early = stopped_early or stopping
            if stopping or epoch >= config.epochs:
                if not config.anneal_epochs:
                    break
                # The anneal starts from the best weights, whose shape may predate growth.
                loop.stopping.restore_best(model, loop.optimizer)
                loop.anneal_start = epoch
        loop.stopping.restore_best(model, loop.optimizer)
        if loop.anneal_start:
            _set_lr(loop.optimizer, config.lr)
        model.eval()
        return last, stopped_early

    def _loop(
        self,
        model: GrowingMLP,
        x_train: np.ndarray,
        y_train: np.ndarray,
        optimizer: torch.optim.Optimizer | None,
        weights: np.ndarray | None,
    ) -> Loop:
        """The loop's state before its first epoch: tensors, batches, optimizer, hooks."""
        config = self.config
        device = model_device(model)
        x = rows_on(x_train, device)
        # The epoch's order is drawn on the CPU: the rows' weights stay there with it.
        self._weights = None
        if weights is not None:
            self._weights = torch.as_tensor(weights, dtype=torch.float32, device="cpu")
        self.optimizer_ = optimizer or make_optimizer(model.parameters(), config)
        self._step = FusedStep(self.optimizer_)
        self._labels = None
        self.batch_size_ = config.batch_size
        if getattr(self.loss, "needs_positives", False):
            self._labels = torch.as_tensor(y_train, dtype=torch.long, device="cpu")
            rarest = float(torch.bincount(self._labels).min()) / len(self._labels)
            self.batch_size_ = min(
                max(config.batch_size, math.ceil(MIN_POSITIVES / max(rarest, 1e-12))), len(x)
            )
        self._warmup_target = (
            self.warmup.prepare_target(y_train, weights).to(x.device) if self.warmup else None
        )
        hooks: list[Hook] = []
        if self.growth is not None:
            hooks.append(Growth(self.growth))
        if model.masks:
            hooks.append(PruningMasks())
        if self.checkpoint is not None:
            hooks.append(Checkpoints(self.checkpoint, config.checkpoint_seconds))
        self._batches = Batches(x, self.batch_size_, device)
        return Loop(
            model=model,
            optimizer=self.optimizer_,
            x=x,
            target=self.loss.prepare_target(y_train, weights).to(x.device),
            generator=torch.Generator(device="cpu").manual_seed(self.seed),
            stopping=EarlyStopping(config.monitor, config.patience, config.early_stopping),
            hooks=[*hooks, *self.hooks],
            emit=self._emit,
        )

    def _start_event(self, loop: Loop, validation_rows: int) -> TrainStart:
        config, model = self.config, loop.model
        return TrainStart(
            max_epochs=config.epochs + config.anneal_epochs,
            train_rows=len(loop.x),
            validation_rows=validation_rows,
            hidden_widths=model.hidden_widths,
            parameters=model.n_parameters(),
            threads=choose_threads(config.threads, model, config.batch_size),
        )

    def _epoch(self, loop: Loop, epoch: int, validation: Validation) -> EpochEnd:
        """Train and validate ``epoch``, and hand its ``EpochEnd`` event to the observers."""
        started = time.perf_counter()
        loop.warming_up = self.warmup is not None and epoch <= self.warmup_epochs
        if loop.warming_up:
            train_loss = self._train_epoch(loop, self._warmup_target, self.warmup)
        else:
            train_loss = self._train_epoch(loop, loop.target, self.loss)
        metrics = validation(loop.model)
        if not (math.isfinite(train_loss) and math.isfinite(metrics[self.config.monitor])):
            raise TrainingError(
                f"training diverged at epoch {epoch} (training loss {train_loss:.3g}); "
                f"lower train.lr (now {self.config.lr:g})."
            )
        improved = loop.stopping.update(epoch, metrics, loop.model)
        loop.epoch = epoch
        event = EpochEnd(
            epoch=epoch,
            train_loss=train_loss,
            validation=metrics,
            hidden_widths=loop.model.hidden_widths,
            parameters=loop.model.n_parameters(),
            improved=improved,
            seconds=time.perf_counter() - started,
        )
        self._emit(event)
        return event

    def _train_epoch(self, loop: Loop, target: Tensor, loss: Loss) -> float:
        """One pass over the training rows in a fresh random order; returns the mean loss
        (weighted by the rows' weights when they have them)."""
        model, n, batch_size = loop.model, len(loop.x), self.batch_size_
        if self._labels is None:
            order = torch.randperm(n, generator=loop.generator, device="cpu")
        else:
            order = stratified_order(self._labels, loop.generator)
        step = self._step
        step.prepare()
        stepped = [hook for hook in loop.hooks if type(hook).on_step_end is not Hook.on_step_end]
        values = []
        # The feature gate waits for growth to finish: a network still narrow cannot use
        # columns that matter only jointly, and would fade them out before it could.
        growing = self.growth is not None and not self.growth.finished_
        gated = model.gate is not None
        for x_batch, target_batch in self._batches(order, target):
            cache = model.forward_cached(x_batch)
            value, output_grad = loss.value_and_grad(cache.output, target_batch)
            model.backward(cache, output_grad)
            if gated:
                if growing:
                    model.hold_gate()
                else:
                    model.add_gate_penalty(self.config.feature_gate_l1)
            step()
            for hook in stepped:
                hook.on_step_end(loop)
            values.append(value)
        if self._weights is not None:
            # Each batch's mean counts by its rows' total weight, as the rows count in it.
            order_weights = self._weights.index_select(0, order)
            sizes = torch.stack(
                [order_weights[i : i + batch_size].sum() for i in range(0, n, batch_size)]
            )
            return float(torch.stack(values).cpu().dot(sizes) / sizes.sum())
        sizes = torch.full((len(values),), float(batch_size), device="cpu")
        sizes[-1] = n - batch_size * (len(values) - 1)
        return float(torch.stack(values).cpu().dot(sizes)) / n

    def _emit(self, event: Event) -> None:
        for observer in self.observers:
            observer(event)


def _ordinary_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Make the network's parameters and the optimizer's state, made or replaced in inference
    mode during training, ordinary tensors again (a copy of each that is not), and drop the
    gradients: outside inference mode such tensors may not be changed in place, as trimming,
    pruning and a later training's first steps change them."""
    with torch.no_grad():
        for param in model.parameters():
            if param.is_inference():
                param.data = param.data.clone()
            param.grad = None  # the last step's, of no use once training has ended
        for state in optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor) and value.is_inference():
                    state[key] = value.clone()


def annealed_lr(config: TrainConfig, step: int) -> float:
    """The learning rate of the anneal's ``step``-th epoch (1 … ``anneal_epochs``): ``lr``
    falling along a half cosine, to ``lr·(1 − cos(π/(K+1)))/2`` at the last of K epochs
    (never 0, which would waste the epoch)."""
    return config.lr * 0.5 * (1 + math.cos(math.pi * step / (config.anneal_epochs + 1)))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def stratified_order(labels: Tensor, generator: torch.Generator) -> Tensor:
    """A random order in which every class is spread evenly: any run of consecutive rows holds
    each class in about its overall share."""
    shuffled = torch.randperm(len(labels), generator=generator, device="cpu")
    shuffled_labels = labels[shuffled]
    keys = torch.empty(len(labels), dtype=torch.float64, device="cpu")
    for label in shuffled_labels.unique():
        members = (shuffled_labels == label).nonzero().flatten()
        count = len(members)
        jitter = torch.rand(count, generator=generator, dtype=torch.float64, device="cpu")
        keys[members] = (torch.arange(count, dtype=torch.float64, device="cpu") + jitter) / count
    return shuffled[torch.argsort(keys)]
