"""What each growth method offers one hidden layer: neurons, their first-order gain, evidence.

``pool`` (the default) scores a candidate pool by the exact gain of each neuron's real feature
(``growth/pool.py``). ``tiny`` and ``tiny-noproj`` take TINY's SVD neurons above the sign-flip
noise floor, ``gradmax`` GradMax's zero-input neurons, ``random`` neurons drawn like the
initialisation (``growth/tiny.py``). Every method yields an ``Option``, and the engine treats
them alike: so comparisons differ only in how neurons are chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from growml.config import GrowthConfig
from growml.growth.line_search import Candidate
from growml.growth.pool import LayerRows, pool_proposal
from growml.growth.tiny import LayerStatistics, gradmax_proposal, tiny_proposal
from growml.nn.mlp import GrowingMLP

# TINY directions the pool starts from (each with both signs and its hinge offsets).
POOL_TINY_DIRECTIONS = 8


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
    """

    candidate: Candidate
    first_order: float
    gain: float
    scores: list[float]
    bar: float
    bottleneck: float
    explore: bool = False

    @property
    def neurons(self) -> int:
        return self.candidate.neurons


def neuron_cost(model: GrowingMLP, layer: int) -> int:
    """Parameters one more neuron in hidden ``layer`` costs: its weights in, bias, weights out."""
    return model.weights[layer].shape[1] + 1 + model.weights[layer + 1].shape[0]


def paired(config: GrowthConfig, model: GrowingMLP) -> bool:
    """TINY's ReLU neurons come as pairs (α, ω), (−α, −ω): exact at first order."""
    if config.method == "pool":
        return False
    return config.pairing == "always" or (
        config.pairing == "auto" and model.activation.name == "relu"
    )


def pool_option(
    config: GrowthConfig,
    model: GrowingMLP,
    layer: int,
    rows: LayerRows,
    stats: LayerStatistics,
    limit: int,
    generator: torch.Generator,
) -> Option:
    """The candidate-pool step for ``layer`` (at most ``limit`` neurons); ``stats`` are TINY's
    averages of the same ``rows``, which give the pool its first directions."""
    tiny = tiny_proposal(stats)
    directions = tiny.alpha[:POOL_TINY_DIRECTIONS][tiny.lambdas[:POOL_TINY_DIRECTIONS] > 0]
    proposal = pool_proposal(
        rows,
        model.activation.fn,
        directions,
        limit,
        generator,
        random_directions=config.random_directions,
        offsets=config.offsets,
        score_dtype=torch.float32,
    )
    scores = [math.sqrt(g) for g in proposal.gains] or [math.sqrt(proposal.best_gain)]
    return Option(
        candidate=Candidate(
            layer, proposal.alpha, proposal.omega, proposal.weight_update, linear=True
        ),
        first_order=proposal.first_order,
        gain=sum(proposal.gains),
        scores=scores,
        bar=math.sqrt(proposal.bar),
        bottleneck=proposal.bottleneck,
    )


def linearised_option(
    config: GrowthConfig,
    model: GrowingMLP,
    layer: int,
    stats: LayerStatistics,
    limit: int,
    generator: torch.Generator,
) -> Option:
    """TINY (with or without projection), GradMax or random neurons for ``layer``; ``limit``
    counts neurons (a ReLU pair is two)."""
    pairs = paired(config, model)
    per_candidate = 2 if pairs else 1
    count_limit = max(limit // per_candidate, 0)
    if config.method == "gradmax":
        scale = float(model.weights[layer + 1].detach().norm(dim=0).mean())
        proposal = gradmax_proposal(stats, output_scale=scale)
    else:
        proposal = tiny_proposal(
            stats, project=config.method != "tiny-noproj", move_weights=config.move_weights
        )
    if config.method == "random":
        candidate = _random_candidate(model, layer, count_limit * per_candidate, generator)
        return Option(candidate, 0.0, 0.0, [], 0.0, proposal.bottleneck, explore=True)
    count = proposal.significant(count_limit, config.noise_factor)
    alpha, omega = proposal.alpha[:count], proposal.omega[:, :count]
    if pairs:
        alpha, omega = torch.cat([alpha, -alpha]), torch.cat([omega, -omega], 1)
    slope = model.activation.paired_slope if pairs else model.activation.slope_at_zero
    first_order = proposal.first_order(count, slope)
    lambdas = [float(v) for v in proposal.lambdas[: max(count, 1)]]
    return Option(
        candidate=Candidate(layer, alpha, omega, proposal.weight_update),
        first_order=first_order,
        gain=slope * sum(v * v for v in lambdas[:count]),
        scores=lambdas,
        bar=proposal.noise_floor * config.noise_factor,
        bottleneck=proposal.bottleneck,
    )


def explore_option(
    model: GrowingMLP, layer: int, limit: int, evidence: Option, generator: torch.Generator
) -> Option:
    """``limit`` random neurons for ``layer``, carrying the ``evidence`` that nothing better
    was found."""
    return Option(
        candidate=_random_candidate(model, layer, limit, generator),
        first_order=0.0,
        gain=0.0,
        scores=evidence.scores,
        bar=evidence.bar,
        bottleneck=evidence.bottleneck,
        explore=True,
    )


def _random_candidate(
    model: GrowingMLP, layer: int, count: int, generator: torch.Generator
) -> Candidate:
    # Drawn like the layers' own initialisation (U(±1/√fan_in)); the step scales only the
    # outgoing weights.
    fan_in = model.weights[layer].shape[1]
    fan_out, width = model.weights[layer + 1].shape
    bound_in, bound_out = 1 / math.sqrt(fan_in), 1 / math.sqrt(width + count)
    alpha = torch.empty(count, fan_in + 1, dtype=torch.float64)
    omega = torch.empty(fan_out, count, dtype=torch.float64)
    alpha.uniform_(-bound_in, bound_in, generator=generator)
    omega.uniform_(-bound_out, bound_out, generator=generator)
    return Candidate(layer, alpha, omega, None, linear=True)
