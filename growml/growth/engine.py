"""The growth engine: when to grow, where, how many neurons, how much, and when to stop.

The trainer asks ``wants_step`` after every epoch and calls ``step`` when it says yes. A step
collects TINY's statistics on a sample of training rows, builds a proposal for every hidden
layer (``growth/tiny.py``), keeps the neurons whose λ clears the noise floor, picks the layer,
finds the amplitude by a line search on the extended network, and applies it through the one
module that carries optimizer state (``train/optimizer.py``). Random and GradMax neurons go
through the same path, so comparisons differ only in how neurons are chosen.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from growml.config import GrowthConfig
from growml.growth.line_search import Candidate, armijo, best_on_grid, extended_loss
from growml.growth.statistics import collect_statistics
from growml.growth.tiny import (
    LayerStatistics,
    Proposal,
    bottleneck,
    gradmax_proposal,
    tiny_proposal,
)
from growml.losses import Loss
from growml.nn.mlp import GrowingMLP
from growml.train.events import GrowthStep
from growml.train.optimizer import add_neurons

# Amplitudes tried for random neurons, which have no first-order prediction to start from.
_RANDOM_GAMMAS = (1 / 64, 1 / 16, 1 / 4, 1.0)


class GrowthEngine:
    """Decides and performs growth steps.

    Args:
        config: the ``growth`` settings.
        loss: the training loss (its autograd-free gradient feeds the statistics).
        seed: seeds the statistics rows and the random ablation.

    ``finished_`` becomes true once growth has stopped (no candidate above the noise floor,
    validation no longer improving after growth, or the parameter budget reached).
    """

    def __init__(self, config: GrowthConfig, loss: Loss, seed: int = 0) -> None:
        self.config = config
        self.loss = loss
        self.seed = seed
        self.finished_ = False
        self.steps_ = 0
        self._failures = 0
        self._awaiting_improvement = False
        self.skipped_: dict[int, str] = {}
        self._train_losses: list[float] = []
        self._last_step_index = 0
        self._generator = torch.Generator().manual_seed(seed + 7919)

    # -------------------------------------------------------------------- decisions

    def wants_step(self, epoch: int, train_loss: float, epochs_without_improvement: int) -> bool:
        """Whether to grow after ``epoch`` (mean training loss ``train_loss``; validation last
        improved ``epochs_without_improvement`` epochs ago, counting from the last step).

        Training has stalled when validation has not improved for ``patience`` epochs, or the
        training loss fell by less than ``min_improvement`` (relative) over them; the optional
        ``every`` schedule grows regardless."""
        self._train_losses.append(train_loss)
        if self.finished_:
            return False
        every = self.config.every
        patience = self.config.patience
        if (every and epoch % every == 0) or epochs_without_improvement >= patience:
            return True
        since_step = self._train_losses[self._last_step_index :]
        if len(since_step) <= patience:
            return False
        earlier, latest = since_step[-1 - patience], since_step[-1]
        return latest > earlier * (1 - self.config.min_improvement)

    def record_improvement(self) -> None:
        """Tell the engine that validation improved (the last growth step paid off)."""
        self._awaiting_improvement = False
        self._failures = 0

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
        layer considered (several with ``where = all``)."""
        started = time.perf_counter()
        if self._awaiting_improvement:
            self._failures += 1
        if self._failures >= self.config.max_failures:
            return [
                self._finish(model, epoch, started, "validation stopped improving after growth")
            ]
        rows = torch.randperm(len(x), generator=self._generator)[: self.config.statistics_rows]
        x_stats, target_stats = x.index_select(0, rows), target.index_select(0, rows)
        statistics = collect_statistics(model, self.loss, x_stats, target_stats)
        layers = self._layers_to_grow(model, statistics)
        if not layers:
            return [
                self._finish(
                    model,
                    epoch,
                    started,
                    "no candidate clears the noise floor",
                    _bottlenecks(statistics),
                )
            ]
        events = []
        for position, layer in enumerate(layers):
            if position:  # the previous layer changed the network: measure it again
                statistics = collect_statistics(model, self.loss, x_stats, target_stats)
                started = time.perf_counter()
            budget = self._budget(model)
            per_candidate = _neuron_cost(model, layer) * (2 if self._paired(model) else 1)
            if budget is not None and budget < per_candidate:
                events.append(self._finish(model, epoch, started, "parameter budget reached"))
                break
            events.append(
                self._grow_layer(
                    model,
                    optimizer,
                    x_stats,
                    target_stats,
                    statistics,
                    layer,
                    budget,
                    epoch,
                    started,
                    fresh=position == 0,
                )
            )
        self.steps_ += 1
        if any(event.added for event in events):
            self._awaiting_improvement = True
        else:
            self._failures += 1
        # The new network starts its own stall window; the epoch of the step is its baseline.
        self._last_step_index = len(self._train_losses) - 1
        return events

    def _grow_layer(
        self,
        model: GrowingMLP,
        optimizer: torch.optim.Optimizer,
        x_stats: Tensor,
        target_stats: Tensor,
        statistics: list[LayerStatistics],
        layer: int,
        budget: int | None,
        epoch: int,
        started: float,
        fresh: bool,
    ) -> GrowthStep:
        bottleneck_before = _bottlenecks(statistics)
        # The proposal made while choosing the layer holds until the network changes.
        cached = self._proposals.pop(layer, None) if fresh else None
        proposal, count, first_order = self._option(model, layer, statistics[layer], budget, cached)
        candidate = self._candidate(model, layer, proposal, count)
        with torch.no_grad():
            cache = model.forward_cached(x_stats)
            loss_before = float(self.loss(cache.output, target_stats))
            loss_at = extended_loss(model, cache, self.loss, target_stats, candidate)
            if not count:
                gamma, loss_after = 0.0, loss_before
            elif self.config.method == "gradmax":
                gamma, loss_after = 1.0, loss_before  # zero incoming weights: same function
            elif self.config.method == "random":
                gamma, loss_after = best_on_grid(loss_at, loss_before, _RANDOM_GAMMAS)
            else:
                gamma, loss_after = armijo(
                    loss_at,
                    loss_before,
                    first_order,
                    self.config.line_search_steps,
                    self.config.max_amplitude,
                )
        # Random neurons are added even at γ = 0 (zero outgoing weights still train).
        added = candidate.neurons if count and (gamma > 0 or self.config.method == "random") else 0
        if added:
            reason = "added"
        elif not count:
            reason = "no candidate clears the noise floor"
        else:
            reason = "the line search found no amplitude that lowers the loss"
        if added:
            _apply(model, optimizer, candidate, gamma)
            after = collect_statistics(model, self.loss, x_stats, target_stats)
        else:
            after = statistics
        return GrowthStep(
            epoch=epoch,
            layer=layer,
            method=self.config.method,
            added=added,
            lambdas=[float(v) for v in proposal.lambdas[:count]],
            noise_floor=proposal.noise_floor * self.config.noise_factor,
            predicted_first_order=first_order,
            gamma=gamma,
            loss_before=loss_before,
            loss_after=loss_after,
            bottleneck_before=bottleneck_before,
            bottleneck_after=_bottlenecks(after),
            hidden_widths=model.hidden_widths,
            parameters=model.n_parameters(),
            seconds=time.perf_counter() - started,
            reason=reason,
            finished=False,
            skipped=dict(self.skipped_),
        )

    # ------------------------------------------------------------------- internals

    def _paired(self, model: GrowingMLP) -> bool:
        pairing = self.config.pairing
        return pairing == "always" or (pairing == "auto" and model.activation.name == "relu")

    def _proposal(self, model: GrowingMLP, layer: int, stats: LayerStatistics) -> Proposal:
        method = self.config.method
        if method == "gradmax":
            outgoing = model.weights[layer + 1]
            scale = float(outgoing.detach().norm(dim=0).mean())
            return gradmax_proposal(stats, output_scale=scale)
        return tiny_proposal(
            stats, project=method != "tiny-noproj", move_weights=self.config.move_weights
        )

    def _option(
        self,
        model: GrowingMLP,
        layer: int,
        stats: LayerStatistics,
        budget: int | None = None,
        proposal: Proposal | None = None,
    ) -> tuple[Proposal, int, float]:
        """The proposal for ``layer``, how many of its candidates to add (pairs count as one;
        at most what ``budget`` parameters pay for), and their FO."""
        paired = self._paired(model)
        per_candidate = 2 if paired else 1
        limit = max(self.config.max_new_neurons // per_candidate, 1)
        if budget is not None:
            limit = min(limit, budget // (_neuron_cost(model, layer) * per_candidate))
        slope = model.activation.paired_slope if paired else model.activation.slope_at_zero
        proposal = proposal or self._proposal(model, layer, stats)
        if self.config.method == "random":
            count = limit
        else:
            count = proposal.significant(limit, self.config.noise_factor)
        return proposal, count, proposal.first_order(count, slope)

    def _layers_to_grow(self, model: GrowingMLP, statistics: list[LayerStatistics]) -> list[int]:
        """Layers with candidates above the noise floor, chosen by the ``where`` rule; layers
        whose proposal cannot be computed are left out, with the reason in ``skipped_``."""
        options = {}
        self.skipped_ = {}
        self._proposals: dict[int, Proposal] = {}
        for layer, stats in enumerate(statistics):
            reason = _unusable(stats)
            if reason is None:
                try:
                    proposal, count, first_order = self._option(model, layer, stats)
                    self._proposals[layer] = proposal
                except (torch.linalg.LinAlgError, RuntimeError) as error:
                    reason = f"linear algebra failed ({error})"
            if reason is not None:
                self.skipped_[layer] = reason
                continue
            if count:
                options[layer] = first_order
        if not options:
            return []
        if self.config.where == "all":
            return sorted(options)
        if self.config.where == "round-robin":
            turn = self.steps_ % model.n_hidden_layers
            return [min(options, key=lambda layer: (layer - turn) % model.n_hidden_layers)]
        return [max(options, key=options.__getitem__)]

    def _candidate(
        self, model: GrowingMLP, layer: int, proposal: Proposal, count: int
    ) -> Candidate:
        paired = self._paired(model)
        if self.config.method == "random":
            return self._random_candidate(model, layer, count * (2 if paired else 1))
        alpha, omega = proposal.alpha[:count], proposal.omega[:, :count]
        if paired:
            alpha, omega = torch.cat([alpha, -alpha]), torch.cat([omega, -omega], 1)
        return Candidate(layer, alpha, omega, proposal.weight_update)

    def _random_candidate(self, model: GrowingMLP, layer: int, count: int) -> Candidate:
        # Drawn like the layers' own initialisation (U(±1/√fan_in)); the amplitude search
        # scales only the outgoing weights.
        fan_in = model.weights[layer].shape[1]
        fan_out, width = model.weights[layer + 1].shape
        bound_in, bound_out = 1 / math.sqrt(fan_in), 1 / math.sqrt(width + count)
        alpha = torch.empty(count, fan_in + 1, dtype=torch.float64)
        omega = torch.empty(fan_out, count, dtype=torch.float64)
        alpha.uniform_(-bound_in, bound_in, generator=self._generator)
        omega.uniform_(-bound_out, bound_out, generator=self._generator)
        return Candidate(layer, alpha, omega, None, scale_incoming=False)

    def _budget(self, model: GrowingMLP) -> int | None:
        if self.config.max_params is None:
            return None
        return self.config.max_params - model.n_parameters()

    def _finish(
        self,
        model: GrowingMLP,
        epoch: int,
        started: float,
        reason: str,
        bottleneck_before: list[float | None] | None = None,
    ) -> GrowthStep:
        self.finished_ = True
        return GrowthStep(
            epoch=epoch,
            layer=None,
            method=self.config.method,
            added=0,
            lambdas=[],
            noise_floor=0.0,
            predicted_first_order=0.0,
            gamma=0.0,
            loss_before=None,
            loss_after=None,
            bottleneck_before=bottleneck_before or [],
            bottleneck_after=bottleneck_before or [],
            hidden_widths=model.hidden_widths,
            parameters=model.n_parameters(),
            seconds=time.perf_counter() - started,
            reason=reason,
            finished=True,
            skipped=dict(self.skipped_),
        )


def _bottlenecks(statistics: list[LayerStatistics]) -> list[float | None]:
    """Ψ of every layer; None where the statistics cannot be used."""
    return [None if _unusable(stats) else bottleneck(stats) for stats in statistics]


def _neuron_cost(model: GrowingMLP, layer: int) -> int:
    """Parameters one more neuron in hidden ``layer`` costs: its weights in, bias, weights out."""
    return model.weights[layer].shape[1] + 1 + model.weights[layer + 1].shape[0]


def _unusable(stats: LayerStatistics) -> str | None:
    """Why TINY cannot use these statistics, or None."""
    matrices = (stats.S1, stats.M, stats.S2, stats.M2, stats.P)
    if not all(bool(torch.isfinite(matrix).all()) for matrix in matrices):
        return "the statistics hold non-finite values"
    if not math.isfinite(stats.gradient_norm):
        return "the gradients are not finite"
    return None


def _apply(
    model: GrowingMLP, optimizer: torch.optim.Optimizer, candidate: Candidate, gamma: float
) -> None:
    layer = candidate.layer
    dtype = model.weights[layer].dtype
    with torch.no_grad():
        if candidate.weight_update is not None:
            update = (gamma**2 * candidate.weight_update).to(dtype)
            model.weights[layer + 1].add_(update[:, :-1])
            model.biases[layer + 1].add_(update[:, -1])
        incoming = (gamma if candidate.scale_incoming else 1.0) * candidate.alpha
        add_neurons(
            model,
            optimizer,
            layer,
            incoming[:, :-1].to(dtype),
            incoming[:, -1].to(dtype),
            (gamma * candidate.omega).to(dtype),
        )
