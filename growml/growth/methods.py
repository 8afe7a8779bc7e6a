"""Growth methods: how new neurons are chosen for a layer, and how far they are stepped in.

One class per ``growth.method``, behind ``GrowthMethod``. A method owns what differs between
them: which measurements it needs (``measure``), the neurons it offers a layer (``propose``,
an ``Option``), the bar a neuron must beat (``bar_name``), whether ReLU neurons come in pairs,
its largest step and its step rule (``choose_step``), and its own settings section
(``growth.pool``, ``growth.tiny``...). The engine (``growth/engine.py``) decides when, where
and when to stop, and treats every method alike: comparisons differ only in how neurons are
chosen.

``pool`` (the default) scores a candidate pool by the exact gain of each neuron's real feature
(``growth/pool.py``). ``tiny`` and ``tiny-noproj`` take TINY's SVD neurons above the sign-flip
noise floor, ``gradmax`` GradMax's zero-input neurons, ``random`` neurons drawn like the
initialisation (``growth/tiny.py``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from growml.config import (
    GradMaxSettings,
    GrowthConfig,
    Pairing,
    PoolSettings,
    RandomSettings,
    TinySettings,
)
from growml.growth.line_search import MAX_STEP, Candidate, armijo, best_on_grid
from growml.growth.pool import LayerRows, pool_proposal
from growml.growth.statistics import collect_rows, collect_statistics, statistics_of
from growml.growth.tiny import (
    LayerStatistics,
    Proposal,
    bottleneck,
    gradmax_proposal,
    tiny_proposal,
)
from growml.losses import Loss
from growml.nn.growable import GrowableLayer
from growml.nn.mlp import GrowingMLP

# TINY directions the pool starts from (each with both signs and its hinge offsets).
POOL_TINY_DIRECTIONS = 8
# Steps tried for random neurons, which have no first-order prediction to start from.
RANDOM_STEPS = (1 / 64, 1 / 16, 1 / 4, 1.0)

LossAt = Callable[[float], float]


@dataclass(frozen=True)
class Measurement:
    """What the statistics pass gives a method for one growable layer: the layer, TINY's
    averages, and the rows themselves when the method scores candidates on them (the pool)."""

    layer: GrowableLayer
    statistics: LayerStatistics
    rows: LayerRows | None = None


@dataclass(frozen=True)
class Option:
    """Neurons one method offers one layer.

    Attributes:
        candidate: the neurons and the next layer's move (``neurons`` 0: none offered).
        first_order: predicted loss decrease per unit step (−dL/dt at t = 0).
        gain: the part of it the new neurons bring (ranks layers, per parameter).
        scores: each offered neuron's score (TINY: λ; pool: √gain), or the best score
            when none is offered: the evidence behind the decision.
        bar: the score a neuron had to beat (TINY: noise floor; pool: permutation null).
        bottleneck: Ψ of the layer the neurons write into.
        explore: random neurons added for training to shape (no first-order prediction):
            their step is chosen on a grid and they are added even at step 0.
        fallback: random neurons offered because no candidate beat the bar while training
            made no headway (``explore_option``).
    """

    candidate: Candidate
    first_order: float
    gain: float
    scores: list[float]
    bar: float
    bottleneck: float
    explore: bool = False
    fallback: bool = False

    @property
    def neurons(self) -> int:
        return self.candidate.neurons


class GrowthMethod(ABC):
    """How one growth method chooses and steps in new neurons.

    Subclasses set ``name`` (the ``growth.method`` value) and implement ``propose``; the rest
    has defaults that they override where the method differs.

    Attributes:
        name: the ``growth.method`` value.
        bar_name: what a candidate must beat, as events and messages name it.
        ranks_layers: whether its gains rank layers against each other (false: the layers
            take turns).
    """

    name: ClassVar[str]
    bar_name: ClassVar[str] = "noise floor"
    ranks_layers: ClassVar[bool] = True

    def __init__(self, config: GrowthConfig) -> None:
        self.config = config

    def measure(
        self, model: GrowingMLP, loss: Loss, x: Tensor, target: Tensor
    ) -> list[Measurement]:
        """Every growable layer's measurements on the statistics rows ``x``."""
        statistics = collect_statistics(model, loss, x, target)
        return [
            Measurement(*pair) for pair in zip(model.growable_layers(), statistics, strict=True)
        ]

    def paired(self, layer: GrowableLayer) -> bool:
        """Whether neurons for ``layer`` come as mirrored pairs (α, ω), (−α, −ω)."""
        return False

    def smallest_step(self, layer: GrowableLayer) -> int:
        """The fewest neurons one step adds to ``layer``."""
        return 2 if self.paired(layer) else 1

    @abstractmethod
    def propose(self, measured: Measurement, limit: int, generator: torch.Generator) -> Option:
        """The neurons offered to ``measured.layer``, at most ``limit`` of them."""

    def largest_step(self) -> float:
        """The largest step t the line search may take."""
        return MAX_STEP

    def choose_step(
        self, option: Option, loss_at: LossAt, loss_before: float
    ) -> tuple[float, float]:
        """``(t, loss at t)`` for ``option``'s neurons: a grid for random neurons, else
        Armijo's search from the first-order prediction."""
        if option.explore:
            return best_on_grid(loss_at, loss_before, RANDOM_STEPS)
        return armijo(
            loss_at,
            loss_before,
            option.first_order,
            self.config.line_search_steps,
            largest=self.largest_step(),
            start=1.0 if option.candidate.linear else None,
        )


class PoolMethod(GrowthMethod):
    """``pool``: a pool of nonlinear candidates (TINY's directions among them) scored by their
    exact gain against the desired update, picked greedily above a permutation null, and fitted
    jointly with the layer's existing inputs (``growth/pool.py``)."""

    name = "pool"
    bar_name = "permutation null"

    def __init__(self, config: GrowthConfig) -> None:
        super().__init__(config)
        self.settings: PoolSettings = config.pool

    def measure(
        self, model: GrowingMLP, loss: Loss, x: Tensor, target: Tensor
    ) -> list[Measurement]:
        layers, measured = model.growable_layers(), collect_rows(model, loss, x, target)
        return [
            Measurement(layer, statistics_of(rows), rows)
            for layer, rows in zip(layers, measured, strict=True)
        ]

    def propose(self, measured: Measurement, limit: int, generator: torch.Generator) -> Option:
        # TINY's averages of the same rows give the pool its first directions.
        layer, rows = measured.layer, measured.rows
        assert rows is not None
        tiny = tiny_proposal(measured.statistics)
        directions = tiny.alpha[:POOL_TINY_DIRECTIONS][tiny.lambdas[:POOL_TINY_DIRECTIONS] > 0]
        proposal = pool_proposal(
            rows,
            layer.activation.fn,
            directions,
            limit,
            generator,
            random_directions=self.settings.random_directions,
            offsets=self.settings.offsets,
            score_dtype=torch.float32,
        )
        scores = [math.sqrt(g) for g in proposal.gains] or [math.sqrt(proposal.best_gain)]
        return Option(
            candidate=Candidate(
                layer.index, proposal.alpha, proposal.omega, proposal.weight_update, linear=True
            ),
            first_order=proposal.first_order,
            gain=sum(proposal.gains),
            scores=scores,
            bar=math.sqrt(proposal.bar),
            bottleneck=proposal.bottleneck,
        )

    def largest_step(self) -> float:
        if self.settings.max_step is None:
            return MAX_STEP
        return min(self.settings.max_step, MAX_STEP)


def _pairs(pairing: Pairing, layer: GrowableLayer) -> bool:
    """TINY's ReLU neurons come as pairs (α, ω), (−α, −ω): exact at first order."""
    return pairing == "always" or (pairing == "auto" and layer.activation.name == "relu")


class _Linearised(GrowthMethod):
    """TINY's family: neurons from the SVD of a linearised target, those above the sign-flip
    noise floor offered (as mirrored pairs for ReLU)."""

    settings: TinySettings | GradMaxSettings

    def paired(self, layer: GrowableLayer) -> bool:
        return _pairs(self.settings.pairing, layer)

    @abstractmethod
    def proposal(self, layer: GrowableLayer, stats: LayerStatistics) -> Proposal:
        """The method's neurons for ``layer``, best first."""

    def propose(self, measured: Measurement, limit: int, generator: torch.Generator) -> Option:
        # ``limit`` counts neurons: a ReLU pair is two.
        layer = measured.layer
        pairs = self.paired(layer)
        count_limit = max(limit // (2 if pairs else 1), 0)
        proposal = self.proposal(layer, measured.statistics)
        count = proposal.significant(count_limit, self.settings.noise_factor)
        alpha, omega = proposal.alpha[:count], proposal.omega[:, :count]
        if pairs:
            alpha, omega = torch.cat([alpha, -alpha]), torch.cat([omega, -omega], 1)
        slope = layer.activation.paired_slope if pairs else layer.activation.slope_at_zero
        lambdas = [float(v) for v in proposal.lambdas[: max(count, 1)]]
        return Option(
            candidate=Candidate(layer.index, alpha, omega, proposal.weight_update),
            first_order=proposal.first_order(count, slope),
            gain=slope * sum(v * v for v in lambdas[:count]),
            scores=lambdas,
            bar=proposal.noise_floor * self.settings.noise_factor,
            bottleneck=proposal.bottleneck,
        )


class TinyMethod(_Linearised):
    """``tiny``: TINY's optimal neurons for the desired update projected off the layer's
    existing features (Verbockhaven et al., TMLR 2024)."""

    name = "tiny"
    project: ClassVar[bool] = True

    def __init__(self, config: GrowthConfig) -> None:
        super().__init__(config)
        self.settings: TinySettings = config.tiny

    def proposal(self, layer: GrowableLayer, stats: LayerStatistics) -> Proposal:
        return tiny_proposal(stats, project=self.project, move_weights=self.settings.move_weights)

    def largest_step(self) -> float:
        # The step is the square of the amplitude γ.
        if self.settings.max_amplitude is None:
            return MAX_STEP
        return min(self.settings.max_amplitude**2, MAX_STEP)


class TinyNoProjectionMethod(TinyMethod):
    """``tiny-noproj``: TINY without the projection, re-learning what existing features
    already express (the ablation of the projection)."""

    name = "tiny-noproj"
    project = False


class GradMaxMethod(_Linearised):
    """``gradmax`` (Evci et al., ICLR 2022): zero incoming weights and outgoing weights along
    the largest gradient, scaled to the next layer's average column norm; the function is
    unchanged, so the step is 1."""

    name = "gradmax"

    def __init__(self, config: GrowthConfig) -> None:
        super().__init__(config)
        self.settings: GradMaxSettings = config.gradmax

    def proposal(self, layer: GrowableLayer, stats: LayerStatistics) -> Proposal:
        scale = float(layer.outgoing().norm(dim=0).mean())
        return gradmax_proposal(stats, output_scale=scale)

    def choose_step(
        self, option: Option, loss_at: LossAt, loss_before: float
    ) -> tuple[float, float]:
        return 1.0, loss_before  # zero incoming weights: the same function


class RandomMethod(GrowthMethod):
    """``random``: neurons drawn like the layers' own initialisation, the layers in turn (the
    ablation of choosing neurons at all)."""

    name = "random"
    ranks_layers = False

    def __init__(self, config: GrowthConfig) -> None:
        super().__init__(config)
        self.settings: RandomSettings = config.random

    def paired(self, layer: GrowableLayer) -> bool:
        return _pairs(self.settings.pairing, layer)

    def propose(self, measured: Measurement, limit: int, generator: torch.Generator) -> Option:
        per_step = 2 if self.paired(measured.layer) else 1
        count = max(limit // per_step, 0) * per_step
        device = measured.statistics.S1.device
        candidate = random_candidate(measured.layer, count, generator, device)
        return Option(candidate, 0.0, 0.0, [], 0.0, bottleneck(measured.statistics), explore=True)


METHODS: dict[str, type[GrowthMethod]] = {
    method.name: method
    for method in (PoolMethod, TinyMethod, TinyNoProjectionMethod, GradMaxMethod, RandomMethod)
}


def make_method(config: GrowthConfig) -> GrowthMethod:
    """The growth method ``config.method`` names, with its settings."""
    return METHODS[config.method](config)


def explore_option(
    layer: GrowableLayer, limit: int, evidence: Option, generator: torch.Generator
) -> Option:
    """``limit`` random neurons for ``layer``, carrying the ``evidence`` that nothing better
    was found."""
    return Option(
        candidate=random_candidate(layer, limit, generator, evidence.candidate.alpha.device),
        first_order=0.0,
        gain=0.0,
        scores=evidence.scores,
        bar=evidence.bar,
        bottleneck=evidence.bottleneck,
        explore=True,
        fallback=True,
    )


def random_candidate(
    layer: GrowableLayer, count: int, generator: torch.Generator, device: torch.device
) -> Candidate:
    """``count`` neurons drawn like the layers' own initialisation, U(±1/√fan_in) in and
    U(±1/√(width + count)) out, on ``device``; the step scales only the outgoing weights."""
    bound_in, bound_out = 1 / math.sqrt(layer.fan_in), 1 / math.sqrt(layer.width + count)
    # Drawn on the CPU, whose generator growth keeps: the same neurons on every device.
    alpha = torch.empty(count, layer.fan_in + 1, dtype=torch.float64, device="cpu")
    omega = torch.empty(layer.fan_out, count, dtype=torch.float64, device="cpu")
    alpha.uniform_(-bound_in, bound_in, generator=generator)
    omega.uniform_(-bound_out, bound_out, generator=generator)
    return Candidate(layer.index, alpha.to(device), omega.to(device), None, linear=True)
