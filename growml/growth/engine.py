"""The growth engine: when to grow, where, how many neurons, how much, and when to stop.

The trainer gives the engine every epoch's training loss (``wants_step``) and validation
metrics (``observe``), and calls ``step`` when it asks. A step measures every growable layer
(``nn/growable.py``) on a sample of training rows, asks the growth method
(``growth/methods.py``) for each layer's ``Option``, picks the layer with the best predicted
gain per parameter, lets the method choose the step on the extended network, and adds the
neurons through the layer, which carries their optimizer state. The engine decides only when,
where and when to stop; everything that differs between methods is the method's.

When: by default as soon as the training loss stops falling fast — its latest fall per epoch
less than half the largest since the last step, at least ``MIN_INTERVAL`` and at most
``MAX_INTERVAL`` epochs after it (twice as long after each step in a row that added nothing)
— so that growth starts in the first epochs and follows the data's own pace.
``growth.every`` grows on a fixed schedule instead, ``growth.schedule=stall`` only once
training has stalled.

Depth (``growth.max_depth`` above 1, or ``growth.max_blocks`` above the starting blocks of a
convolutional network): once no existing layer has a candidate above its bar, the engine
measures a copy of the network with an identity layer inserted (the same function; a block on
top of the blocks first, else a dense layer below the output) and, when that layer's
candidates beat the bar and their line search lowers the loss, inserts the layer into the
network and adds them (``_deeper``).

When to stop, on held-out evidence: growth goes on while validation improves from one step to
the next (the best validation loss falls by ``LOSS_MARGIN``, or the best accuracy or R² rises);
a step whose candidates all miss their bar (the pool's permutation null, TINY's noise floor)
adds nothing and waits for more training. ``growth.max_failures`` steps in a row without a
validation improvement end growth; so does the parameter budget. Every event carries the
scores and the bar behind its decision.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from torch import Tensor

from growml.checkpoint import Checkpoint, generator_state, load_generator_state
from growml.config import GrowthConfig
from growml.events import GrowthStep
from growml.growth.line_search import Candidate, extended_loss
from growml.growth.methods import Measurement, Option, explore_option, make_method
from growml.growth.tiny import LayerStatistics, bottleneck
from growml.losses import Loss
from growml.nn.mlp import GrowingMLP

# The adaptive schedule: grow once the latest fall of the training loss per epoch is below
# SLOWDOWN × the largest since the last step, between MIN_INTERVAL and MAX_INTERVAL epochs.
SLOWDOWN = 0.5
MIN_INTERVAL = 2
MAX_INTERVAL = 8
# A step paid off when, by the next step, the best validation loss fell by LOSS_MARGIN of
# itself (and at least LOSS_FLOOR of the first training loss), or the best accuracy rose
# (R²: by METRIC_MARGINS).
LOSS_MARGIN = 0.01
LOSS_FLOOR = 1e-2
METRIC_MARGINS = {"accuracy": 0.0, "r2": 1e-3}
# No headway: the training loss has not fallen by this fraction since the first epoch, and is
# not below the validation loss by more. Random neurons are then added when nothing beats
# the bar, for training to shape (first-order signals miss what parity needs).
NO_HEADWAY = 0.1


class GrowthEngine:
    """Decides and performs growth steps.

    Args:
        config: the ``growth`` settings.
        loss: the training loss (its autograd-free gradient feeds the statistics).
        seed: seeds the statistics rows, the candidate pool and the random ablation.

    ``method`` is the growth method ``config.method`` names; ``finished_`` becomes true once
    growth has stopped.
    """

    def __init__(self, config: GrowthConfig, loss: Loss, seed: int = 0) -> None:
        self.config = config
        self.method = make_method(config)
        self.loss = loss
        self.seed = seed
        self.finished_ = False
        self.steps_ = 0
        self.skipped_: dict[int, str] = {}
        self._failures = 0
        self._quiet = 0  # steps in a row that added nothing
        self._since_step: list[float] = []
        self._best: dict[str, float] = {}
        self._baseline: dict[str, float] | None = None
        self._latest_validation_loss: float | None = None
        self._first_loss: float | None = None
        self._measured: list[float | None] = []  # Ψ per layer at the last measurement
        self._generator = torch.Generator().manual_seed(seed + 7919)

    # ------------------------------------------------------------------- checkpoints

    _STATE = (
        "finished_",
        "steps_",
        "_failures",
        "_quiet",
        "_since_step",
        "_best",
        "_baseline",
        "_latest_validation_loss",
        "_first_loss",
        "_measured",
    )

    def state_dict(self, checkpoint: Checkpoint) -> dict[str, Any]:
        """Everything the engine has learnt of the training so far (JSON-ready; its
        generator goes into ``checkpoint``)."""
        state = {name: getattr(self, name) for name in self._STATE}
        state["skipped_"] = {str(layer): reason for layer, reason in self.skipped_.items()}
        state["generator"] = generator_state(checkpoint, "growth.generator", self._generator)
        return state

    def load_state_dict(self, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        """Go on from ``state_dict``'s state, as if never stopped."""
        for name in self._STATE:
            setattr(self, name, state[name])
        self.skipped_ = {int(layer): reason for layer, reason in state["skipped_"].items()}
        load_generator_state(checkpoint, "growth.generator", self._generator)

    # -------------------------------------------------------------------- decisions

    def wants_step(self, epoch: int, train_loss: float, epochs_without_improvement: int) -> bool:
        """Whether to grow after ``epoch`` (mean training loss ``train_loss``; validation last
        improved ``epochs_without_improvement`` epochs ago, counting from the last step)."""
        self._since_step.append(train_loss)
        if self._first_loss is None:
            self._first_loss = train_loss
        if self.finished_:
            return False
        config = self.config
        if config.every:
            return epoch % config.every == 0
        losses = self._since_step
        if config.schedule == "stall":
            if epochs_without_improvement >= config.patience:
                return True
            if len(losses) <= config.patience:
                return False
            earlier, latest = losses[-1 - config.patience], losses[-1]
            return latest > earlier * (1 - config.min_improvement)
        # After steps that found nothing, wait longer: training must change the network first.
        shortest = MIN_INTERVAL * 2**self._quiet
        if len(losses) <= shortest:
            return False
        if not self.steps_:
            return True  # the starting network is tiny on purpose: grow once it has trained
        falls = [before - after for before, after in zip(losses, losses[1:], strict=False)]
        return len(falls) >= max(MAX_INTERVAL, shortest) or falls[-1] < SLOWDOWN * max(falls)

    def observe(self, validation: dict[str, float]) -> None:
        """Take one epoch's validation metrics (the evidence that growth pays off)."""
        loss = validation["loss"]
        self._latest_validation_loss = loss
        if loss < self._best.get("loss", math.inf):
            self._best["loss"] = loss
        for key in METRIC_MARGINS:
            if key in validation and validation[key] > self._best.get(key, -math.inf):
                self._best[key] = validation[key]

    # ------------------------------------------------------------------------ a step

    def step(
        self,
        model: GrowingMLP,
        optimizer: torch.optim.Optimizer,
        x: Tensor,
        target: Tensor,
        epoch: int,
    ) -> list[GrowthStep]:
        """One growth step on the training rows ``x`` (prepared ``target``): one event per
        layer grown (several with ``where = all``), or one saying why nothing was added."""
        started = time.perf_counter()
        self._since_step = self._since_step[-1:]
        if self._baseline is not None:
            self._failures = 0 if self._paid_off() else self._failures + 1
        self._baseline = dict(self._best)
        rows = torch.randperm(len(x), generator=self._generator, device="cpu")
        rows = rows[: self.config.statistics_rows].to(x.device)
        # Rows held in host memory (data larger than memory) come to the network's device.
        device = next(model.parameters()).device
        x_stats = x.index_select(0, rows).to(device)
        target_stats = target.index_select(0, rows).to(device)
        options = self._options(model, x_stats, target_stats)
        if not options and not self.skipped_:
            return [self._event(model, epoch, started, "parameter budget reached", finished=True)]
        evidence = max(
            options.values(), key=lambda option: max(option.scores, default=0.0), default=None
        )
        stalled = self._failures >= self.config.max_failures
        deeper = self._deeper(model, options, x_stats, target_stats, stalled)
        if deeper is not None:
            option, network = deeper
            event = self._grow(
                model, optimizer, x_stats, target_stats, option, epoch, started, network
            )
            if event.added:
                if stalled:  # a block instead of stopping: widening starts over
                    self._failures = 0
                return self._grew([event])
        if stalled:
            reason = self._validation_stop()
            return [self._event(model, epoch, started, reason, evidence, finished=True)]
        layers = self._choose(model, options)
        if not layers:
            if evidence is not None and self._underfitting():
                # Nothing shows at first order, yet training has made no headway: the network
                # lacks capacity that training must shape itself (parity has no first-order
                # signal, a chain of one-unit layers may have a dead unit that passes nothing
                # on). Random neurons in every layer, bottom up, give it that capacity.
                events = []
                for layer in range(model.n_hidden_layers):
                    limit = self._limit(model, layer)
                    if limit < 1:
                        continue
                    site = model.growable_layers()[layer]
                    option = explore_option(site, limit, evidence, self._generator)
                    events.append(
                        self._grow(model, optimizer, x_stats, target_stats, option, epoch, started)
                    )
                    started = time.perf_counter()
                if events:
                    return self._grew(events)
            reason = (
                f"no candidate beats the {self.method.bar_name}"
                if evidence
                else "no layer's measurements can be used"
            )
            return self._grew([self._event(model, epoch, started, reason, evidence)])
        events = []
        for position, layer in enumerate(layers):
            if position:  # the previous layer changed the network: measure it again
                started = time.perf_counter()
                options = self._options(model, x_stats, target_stats, only=layer)
                if layer not in options or not options[layer].neurons:
                    continue
            events.append(
                self._grow(model, optimizer, x_stats, target_stats, options[layer], epoch, started)
            )
        return self._grew(events)

    def _grew(self, events: list[GrowthStep]) -> list[GrowthStep]:
        """Count a finished step (a quiet one when it added nothing)."""
        self.steps_ += 1
        self._quiet = 0 if any(event.added for event in events) else self._quiet + 1
        return events

    def _underfitting(self) -> bool:
        """Whether training has made no headway: the training loss is within
        ``NO_HEADWAY`` of the first epoch's, and not below the validation loss."""
        validation, first = self._latest_validation_loss, self._first_loss
        if validation is None or first is None or not self._since_step:
            return False
        latest = self._since_step[-1]
        return latest >= (1 - NO_HEADWAY) * first and validation <= latest * (1 + NO_HEADWAY)

    # ------------------------------------------------------------------- internals

    def _options(
        self, model: GrowingMLP, x: Tensor, target: Tensor, only: int | None = None
    ) -> dict[int, Option]:
        """Each growable layer's option within the budget; layers whose measurements cannot be
        used are left out with the reason in ``skipped_``. Empty when the budget pays for no
        layer's neuron."""
        self.skipped_ = {}
        measurements = self.method.measure(model, self.loss, x, target)
        self._measured = _bottlenecks(measurements)
        options = {}
        for layer in range(len(measurements)) if only is None else [only]:
            limit = self._limit(model, layer)
            measurement = measurements[layer]
            if limit < self.method.smallest_step(measurement.layer):
                continue
            reason = _unusable(measurement.statistics)
            if reason is None:
                try:
                    options[layer] = self.method.propose(measurement, limit, self._generator)
                except NotImplementedError:
                    raise
                except (torch.linalg.LinAlgError, RuntimeError) as error:
                    reason = f"linear algebra failed ({error})"
            if reason is not None:
                self.skipped_[layer] = reason
        return options

    def _deeper(
        self,
        model: GrowingMLP,
        options: dict[int, Option],
        x: Tensor,
        target: Tensor,
        stalled: bool = False,
    ) -> tuple[Option, GrowingMLP] | None:
        """Neurons for a new hidden layer, with the network they are measured on (a copy with
        the layer inserted, the same function), when depth may grow and widening has stopped
        paying (no existing layer is offered neurons: none beats its bar) although training
        has made headway; None otherwise. The layer goes where ``_deeper_position`` says.

        A block may also come when widening has stopped paying on validation (``stalled``:
        growth would stop). In a convolutional network some layer nearly always has a
        candidate above its bar, so the first rule alone never deepened one on mnist1d or
        digits."""
        position = _deeper_position(model, self.config)
        if position is None or model.activation.name != "relu" or model.masks is not None:
            return None
        if stalled and not (model.conv_layers and position == model.conv_layers):
            return None
        # Inserted while the layers below still widen, a layer as narrow as they are now
        # becomes the network's bottleneck (checkerboard: 93 % → 70 % at a layer of 4).
        offered = any(option.neurons for option in options.values())
        if (offered and not stalled) or self._underfitting():
            return None
        network = copy.deepcopy(model)
        network.insert_layer(position)
        limit = self._limit(network, position)
        if limit < 1:
            return None
        measurement = self.method.measure(network, self.loss, x, target)[position]
        if _unusable(measurement.statistics) is not None:
            return None
        try:
            option = self.method.propose(measurement, limit, self._generator)
        except NotImplementedError:
            raise
        except (torch.linalg.LinAlgError, RuntimeError):
            return None
        if not option.neurons:
            return None
        return option, network

    def _limit(self, model: GrowingMLP, layer: int) -> int:
        """Neurons ``layer`` may receive: ``max_new_neurons``, within the parameter budget."""
        limit = self.config.max_new_neurons
        if self.config.max_params is not None:
            budget = self.config.max_params - model.n_parameters()
            limit = min(limit, max(budget, 0) // model.growable_layers()[layer].unit_cost())
        return limit

    def _choose(self, model: GrowingMLP, options: dict[int, Option]) -> list[int]:
        """Layers to grow by the ``where`` rule among those offered neurons: by default the
        best predicted gain per added parameter, the layers in turn in a convolutional
        network (``where_rule``)."""
        offered = [layer for layer, option in options.items() if option.neurons]
        if not offered:
            return []
        where = where_rule(self.config.where, model)
        if where == "all":
            return sorted(offered)
        layers = model.growable_layers()
        if where == "round-robin" or not self.method.ranks_layers:
            turn = self.steps_ % len(layers)
            return [min(offered, key=lambda layer: (layer - turn) % len(layers))]

        def gain_per_parameter(layer: int) -> float:
            option = options[layer]
            return option.gain / (option.neurons * layers[layer].unit_cost())

        return [max(offered, key=gain_per_parameter)]

    def _grow(
        self,
        model: GrowingMLP,
        optimizer: torch.optim.Optimizer,
        x: Tensor,
        target: Tensor,
        option: Option,
        epoch: int,
        started: float,
        deeper: GrowingMLP | None = None,
    ) -> GrowthStep:
        """Add ``option``'s neurons at the step the method chooses; ``deeper``: the network
        with a hidden layer inserted below the output, on which ``option`` was measured for
        that layer (``model`` gets the layer too when the neurons are added)."""
        candidate = option.candidate
        before = self._measured
        network = model if deeper is None else deeper
        with torch.no_grad():
            cache = network.forward_cached(x)
            loss_before = float(self.loss(cache.output, target))
            loss_at = extended_loss(network, cache, self.loss, target, candidate)
            step, loss_after = self.method.choose_step(option, loss_at, loss_before)
        # Random neurons are added even at step 0 (zero outgoing weights still train).
        added = candidate.neurons if step > 0 or option.explore else 0
        inserted = None
        if added and deeper is not None:
            inserted = candidate.layer
            model.insert_layer(inserted, optimizer)
        if added:
            apply_candidate(model, optimizer, candidate, step)
            reason = (
                f"added random neurons: no candidate beats the {self.method.bar_name} and "
                "training has made no headway"
                if option.fallback
                else "added"
            )
        else:
            reason = "the line search found no step that lowers the loss"
        return GrowthStep(
            epoch=epoch,
            layer=candidate.layer,
            method=self.method.name,
            added=added,
            lambdas=option.scores,
            noise_floor=option.bar,
            predicted_first_order=option.first_order,
            gamma=step if candidate.linear else math.sqrt(step),
            loss_before=loss_before,
            loss_after=loss_after,
            bottleneck_before=before,
            bottleneck_after=self._bottlenecks(model, x, target) if added else before,
            hidden_widths=model.hidden_widths,
            parameters=model.n_parameters(),
            seconds=time.perf_counter() - started,
            reason=reason,
            finished=False,
            skipped=dict(self.skipped_),
            inserted_layer=inserted,
        )

    def _bottlenecks(self, model: GrowingMLP, x: Tensor, target: Tensor) -> list[float | None]:
        """Ψ of every layer; None where the measurements cannot be used."""
        return _bottlenecks(self.method.measure(model, self.loss, x, target))

    def _paid_off(self) -> bool:
        """Whether validation improved enough since the previous step."""
        baseline, best = self._baseline or {}, self._best
        previous = baseline.get("loss", math.inf)
        # Relative to the loss, and never less than a fraction of the first epoch's loss: on
        # separable data the loss falls towards 0 by large relative steps that buy nothing.
        margin = max(LOSS_MARGIN * previous, LOSS_FLOOR * (self._first_loss or 0.0))
        if best.get("loss", math.inf) < previous - margin:
            return True
        return any(
            best.get(key, -math.inf) > baseline.get(key, -math.inf) + margin
            for key, margin in METRIC_MARGINS.items()
        )

    def _validation_stop(self) -> str:
        # Labelled as the best seen while growing, each at its own epoch: the kept model's
        # metrics (one epoch's weights, chosen by train.monitor) may differ from every one.
        shown = ", ".join(f"{key} {value:.4g}" for key, value in self._best.items())
        best = f"best validation while growing: {shown}" if shown else "no validation yet"
        return (
            f"validation stopped improving ({self._failures} steps in a row without a better "
            f"validation loss or score; {best})"
        )

    def _event(
        self,
        model: GrowingMLP,
        epoch: int,
        started: float,
        reason: str,
        evidence: Option | None = None,
        finished: bool = False,
    ) -> GrowthStep:
        """A step that adds nothing, with the evidence behind it; ``finished`` ends growth."""
        self.finished_ = self.finished_ or finished
        return GrowthStep(
            epoch=epoch,
            layer=evidence.candidate.layer if evidence else None,
            method=self.method.name,
            added=0,
            lambdas=evidence.scores if evidence else [],
            noise_floor=evidence.bar if evidence else 0.0,
            predicted_first_order=evidence.first_order if evidence else 0.0,
            gamma=0.0,
            loss_before=None,
            loss_after=None,
            bottleneck_before=[],
            bottleneck_after=[],
            hidden_widths=model.hidden_widths,
            parameters=model.n_parameters(),
            seconds=time.perf_counter() - started,
            reason=reason,
            finished=finished,
            skipped=dict(self.skipped_),
        )


def where_rule(where: str, model: GrowingMLP) -> str:
    """The rule ``growth.where`` stands for: ``auto`` is ``best`` for an MLP and
    ``round-robin`` for a network with convolution blocks. A layer's predicted gain is a
    first-order fall of the loss in the units of its own gradient, and a block behind a block
    of few channels has large gradients (all the signal flows through those channels): ranked
    by gain, the blocks behind it kept growing while it stayed at one channel
    (docs/conv-growth.md)."""
    if where != "auto":
        return where
    return "round-robin" if model.conv_layers else "best"


def _deeper_position(model: GrowingMLP, config: GrowthConfig) -> int | None:
    """Where depth growth would insert a layer into ``model``, or None when depth may not
    grow: a block on top of the blocks while a convolutional network has fewer than
    ``growth.max_blocks``, else a dense layer below the output while the hidden layers (the
    dense head's, in a convolutional network) number fewer than ``growth.max_depth``."""
    if (
        model.conv_layers
        and config.max_blocks is not None
        and model.conv_layers < config.max_blocks
    ):
        return model.conv_layers
    dense = model.n_hidden_layers - model.conv_layers
    if (dense or not model.conv_layers) and dense < config.max_depth:
        return model.n_hidden_layers
    return None


def _unusable(stats: LayerStatistics) -> str | None:
    """Why the measurements of a layer cannot be used, or None."""
    matrices = (stats.S1, stats.M, stats.S2, stats.M2, stats.P)
    if not all(bool(torch.isfinite(matrix).all()) for matrix in matrices):
        return "the statistics hold non-finite values"
    if not math.isfinite(stats.gradient_norm):
        return "the gradients are not finite"
    return None


def _bottlenecks(measurements: list[Measurement]) -> list[float | None]:
    """Ψ of every layer; None where the measurements cannot be used."""
    return [None if _unusable(m.statistics) else bottleneck(m.statistics) for m in measurements]


def apply_candidate(
    model: GrowingMLP, optimizer: torch.optim.Optimizer | None, candidate: Candidate, step: float
) -> None:
    """Add ``candidate``'s neurons at ``step`` (and move the next layer's weights)."""
    layer = model.growable_layers()[candidate.layer]
    incoming_scale, outgoing_scale = candidate.scales(step)
    with torch.no_grad():
        if candidate.weight_update is not None:
            layer.move_outgoing(step * candidate.weight_update)
        incoming = incoming_scale * candidate.alpha
        layer.add_units(
            incoming[:, :-1], incoming[:, -1], outgoing_scale * candidate.omega, optimizer
        )
