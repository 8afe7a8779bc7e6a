"""The candidate-pool growth step as pure functions: rows in, new neurons out.

TINY's neurons are chosen by their first-order effect, which is linear in the layer input; a
neuron that reads the raw input then adds an affine function of x, and one hidden layer stops
growing once the affine functions are spanned. The pool step scores every candidate by its
real feature instead (docs/growth.md has the derivation). For the hidden layer ``k`` that
receives neurons, with rows = the statistics rows:

    B2 (n × fan_in+1)   input of layer k, ones last      B1 (n × width+1)  output of layer k
    G  (n × fan_out)    per-row gradient of the loss at the next pre-activation; V = −G
    Q                   orthonormal basis of B1's columns;  V⊥ = V − Q QᵀV  (the bottleneck)

    candidate a:  h = σ(B2 a),   h⊥ = h − Q Qᵀh,
                  gain(a) = ‖h⊥ᵀ V⊥‖² / (n ‖h⊥‖²)        the exact drop of E‖V⊥ − h⊥ ωᵀ‖²
                                                          at its best ω = V⊥ᵀh⊥ / ‖h⊥‖²

Candidates are TINY's directions (both signs) and random whitened directions, each scaled to
unit pre-activation spread, each with hinge offsets through sampled rows (bias = −aᵀx_i).
A candidate whose spread rests on fewer than ``MIN_SUPPORT`` of the rows (its effective number
of rows, ``effective_rows``) is dropped: a hinge past all but a few points fits their residual
and nothing beyond them, and its large output weight blows up on held-out rows.
Greedy orthogonal matching pursuit picks them: after each pick the residual and the remaining
features are orthogonalised against it, so the picked gains add up to the exact drop of the
residual objective. A pick must beat the permutation null: the best first-pick gain over the
pool against row-shuffled V⊥ (projected again), maximised over ``PERMUTATIONS`` shuffles, so
that on gradients unrelated to the rows a step grows with probability 1 / (PERMUTATIONS + 1).
The picked features and the layer's existing inputs are then fitted jointly to V by least
squares (``gelsd``: dead, all-zero features get zero weights instead of breaking the solve),
which gives the new neurons' output weights and the move of the next layer's weights; the
engine chooses the step on the loss. With σ = identity and TINY's directions whitened by
the part of b2 the current features cannot express, the picked gains are TINY's λ_k².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from growml.growth.tiny import inverse_sqrt
from growml.nn.growable import pooled_mean

# Singular values of a feature matrix below this fraction of the largest (or below the
# absolute floor) span nothing: dead units, constant or duplicated columns.
RELATIVE_TOLERANCE = 1e-7
ABSOLUTE_TOLERANCE = 1e-9
# Row shuffles of the permutation null: a step on pure noise grows with probability 1/20.
PERMUTATIONS = 19
# A candidate's spread must rest on at least this fraction of the rows (and this many rows):
# a hinge past all but a few points fits those points' residual and nothing beyond them.
MIN_SUPPORT = 0.01
MIN_SUPPORT_ROWS = 5


@dataclass(frozen=True)
class LayerRows:
    """The statistics rows of one hidden layer that may receive neurons (float64).

    ``below`` is the layer's input with a column of ones appended (B2), ``current`` its output
    with ones (B1), ``gradient`` each row's gradient of the loss at the next pre-activation (G),
    ``weights`` each row's weight (None: every row counts once); ``positions`` and ``pooled``
    as ``LayerSample``'s: statistics rows per example, and rows of ``below`` per statistics
    row, over which a unit's activations are averaged.
    """

    below: Tensor
    current: Tensor
    gradient: Tensor
    weights: Tensor | None = None
    positions: int = 1
    pooled: int = 1

    @property
    def rows(self) -> int:
        return self.current.shape[0]

    @property
    def mean_below(self) -> Tensor:
        return pooled_mean(self.below, self.pooled)

    def features(self, alpha: Tensor, activation: Any, dtype: torch.dtype | None = None) -> Tensor:
        """(rows, K) the activations of units with incoming weights ``alpha`` (K × fan_in+1),
        each statistics row's the mean over its ``pooled`` rows of ``below``."""
        dtype = dtype or self.below.dtype
        return pooled_mean(activation(self.below.to(dtype) @ alpha.to(dtype).T), self.pooled)

    @property
    def total_weight(self) -> float:
        """Σ wᵢ: the number of rows the weighted rows stand for."""
        return self.rows if self.weights is None else float(self.weights.sum())


@dataclass(frozen=True)
class Selection:
    """Candidates picked by the greedy selection, best first, with their gains."""

    indices: list[int]
    gains: list[float]
    best_gain: float  # the first pick's gain, picked or not


@dataclass(frozen=True)
class PoolProposal:
    """New neurons for one hidden layer and the joint move of the next layer.

    Attributes:
        alpha: (K, fan_in + 1) incoming weights, bias last, used as they are.
        omega: (fan_out, K) outgoing weights of the jointly fitted update.
        weight_update: (fan_out, width + 1) move of the next layer's weights, bias last.
        gains: (K,) each pick's exact drop of the residual objective.
        best_gain: the best candidate's gain (also when it missed the bar).
        bar: the permutation null's bar a gain had to beat.
        first_order: the loss's first-order decrease per unit step, E‖v̂‖².
        weight_gain: the part of it that re-weighting the existing inputs explains.
        bottleneck: Ψ = E‖V⊥‖², the desired change no re-weighting can express.
        candidates: how many candidates the pool held.
    """

    alpha: Tensor
    omega: Tensor
    weight_update: Tensor
    gains: list[float]
    best_gain: float
    bar: float
    first_order: float
    weight_gain: float
    bottleneck: float
    candidates: int


def span_basis(features: Tensor) -> Tensor:
    """An orthonormal basis (n × r) of the span of ``features``' columns; directions of
    negligible spread are dropped."""
    left, values, _ = torch.linalg.svd(features, full_matrices=False)
    floor = max(RELATIVE_TOLERANCE * float(values.max()), ABSOLUTE_TOLERANCE)
    return left[:, values > floor]


def orthogonal_part(matrix: Tensor, basis: Tensor) -> Tensor:
    """``matrix`` minus its projection on the span of ``basis`` (orthonormal columns)."""
    return matrix - basis @ (basis.T @ matrix)


def candidate_directions(
    below: Tensor,
    tiny_alpha: Tensor,
    random_directions: int,
    offsets: int,
    generator: torch.Generator,
) -> Tensor:
    """The pool's incoming weights (C × fan_in + 1, bias last).

    Directions: TINY's (rows of ``tiny_alpha``) with both signs, and ``random_directions``
    random directions whitened by the input covariance; each scaled so that its
    pre-activation has unit spread over the rows. Offsets: the direction's own bias (TINY's,
    or centring for random ones) and hinges through ``offsets`` sampled rows.
    """
    x = below[:, :-1]
    fan_in = x.shape[1]
    centred = x - x.mean(0)
    whitening = inverse_sqrt(centred.T @ centred / max(len(x) - 1, 1))
    # Drawn on the CPU, whose generator growth keeps: the same directions on every device.
    noise = torch.randn(
        random_directions, fan_in, generator=generator, dtype=below.dtype, device="cpu"
    ).to(below.device)
    random_weights = noise @ whitening
    random_alpha = torch.cat([random_weights, -(random_weights @ x.mean(0))[:, None]], 1)
    alpha = torch.cat([tiny_alpha, -tiny_alpha, random_alpha])
    spread = (below @ alpha.T).std(0)
    usable = spread > ABSOLUTE_TOLERANCE * max(float(spread.max()), 1.0)
    alpha = alpha[usable] / spread[usable, None]
    shape = (alpha.shape[0], offsets)
    rows = torch.randint(len(x), shape, generator=generator, device="cpu").to(x.device)
    # Bias through row i: the pre-activation is 0 at x_i, the hinge of a ReLU.
    through = -(x[rows] * alpha[:, None, :-1]).sum(2)
    hinged = alpha[:, None, :].repeat(1, offsets, 1)
    hinged[:, :, -1] = through
    return torch.cat([alpha, hinged.reshape(-1, fan_in + 1)])


def effective_rows(features: Tensor) -> Tensor:
    """Each column's effective number of rows, ``(Σ c_i²)² / Σ c_i⁴`` over its centred values
    c: n for a column spread evenly over n rows, k for one carried by k rows alike, 0 for a
    constant column."""
    centred = features - features.mean(0)
    squares = centred * centred
    fourth = (squares * squares).sum(0)
    total = squares.sum(0)
    return torch.where(fourth > 0, total * total / fourth.where(fourth > 0, 1.0), 0.0)


def pool_gains(features: Tensor, residual: Tensor, norms: Tensor | None = None) -> Tensor:
    """Each column's exact gain ``‖hᵀV‖² / (n‖h‖²)`` against ``residual`` (both already
    orthogonal to the current features); 0 for columns with no spread left. ``norms`` are
    the columns' squared norms, when already known."""
    norms = (features * features).sum(0) if norms is None else norms
    return _gains(features.T @ residual, norms, features.shape[0])


def _gains(correlation: Tensor, norms: Tensor, rows: int) -> Tensor:
    usable = norms > ABSOLUTE_TOLERANCE * max(float(norms.max()), 1.0)
    gains = (correlation * correlation).sum(1) / norms.where(usable, torch.ones_like(norms))
    return torch.where(usable, gains, 0.0) / rows


def greedy_selection(
    features: Tensor, residual: Tensor, max_neurons: int, bar: float = 0.0
) -> Selection:
    """Orthogonal matching pursuit over the columns of ``features`` (orthogonal to the current
    features already): pick the best gain, orthogonalise the residual and the other columns
    against it, rescore; stop at ``max_neurons`` or when the best gain is not above ``bar``.

    The columns are never rewritten: with d the picked column made unit and orthogonal to the
    earlier picks, every column's squared norm falls by (dᵀh)² and its correlation with the
    residual by (dᵀh)(dᵀV), which is all the rescoring needs.
    """
    n = features.shape[0]
    norms = (features * features).sum(0)
    correlation = features.T @ residual
    residual = residual.clone()
    picked: list[Tensor] = []
    indices: list[int] = []
    gains: list[float] = []
    best_gain = 0.0
    while len(indices) < max_neurons:
        scores = _gains(correlation, norms, n)
        if indices:
            scores[indices] = 0.0
        best = int(scores.argmax())
        gain = float(scores[best])
        if not indices:
            best_gain = gain
        if not gain > bar:
            break
        direction = features[:, best]
        for earlier in picked:
            direction = direction - earlier * (earlier @ direction)
        direction = direction / direction.norm()
        along = features.T @ direction  # dᵀh for every column (d is orthogonal to the picks)
        along_residual = direction @ residual
        norms = norms - along * along
        correlation = correlation - along[:, None] * along_residual[None, :]
        residual -= direction[:, None] * along_residual
        picked.append(direction)
        indices.append(best)
        gains.append(gain)
    return Selection(indices, gains, best_gain)


def permutation_bar(
    features: Tensor,
    residual: Tensor,
    basis: Tensor,
    generator: torch.Generator,
    permutations: int = PERMUTATIONS,
) -> float:
    """The largest best-candidate gain over ``permutations`` row shuffles of ``residual``,
    each projected off the current features again: what the pool reaches by chance."""
    if not permutations:
        return 0.0
    n, outputs = residual.shape
    shuffles = torch.stack(
        [torch.randperm(n, generator=generator, device="cpu") for _ in range(permutations)]
    ).to(residual.device)
    nulls = orthogonal_part(residual[shuffles.T.reshape(-1)].reshape(n, -1), basis)
    norms = (features * features).sum(0)
    correlation = (features.T @ nulls).reshape(len(norms), permutations, outputs)
    gains = (correlation * correlation).sum(2) / norms.clamp_min(1e-300)[:, None] / n
    usable = norms > ABSOLUTE_TOLERANCE * max(float(norms.max()), 1.0)
    return float(gains[usable].max()) if bool(usable.any()) else 0.0


def pool_proposal(
    rows: LayerRows,
    activation: object,
    tiny_alpha: Tensor,
    max_neurons: int,
    generator: torch.Generator,
    random_directions: int = 32,
    offsets: int = 4,
    permutations: int = PERMUTATIONS,
    score_dtype: torch.dtype | None = None,
) -> PoolProposal:
    """The pool step for one layer: candidates, their features, the null bar, the greedy
    picks, and the joint least-squares fit of the picked features and the existing inputs.

    ``activation`` is the network's σ (a callable on tensors); ``tiny_alpha`` TINY's incoming
    directions for this layer (K × fan_in + 1); ``score_dtype`` the precision the candidates
    are scored in (default: the rows').
    """
    n = rows.rows
    root = _root_weights(rows)
    desired = _weigh(-rows.gradient, root)
    basis = span_basis(_weigh(rows.current, root))
    residual = orthogonal_part(desired, basis)
    alpha = candidate_directions(rows.below, tiny_alpha, random_directions, offsets, generator)
    # Scoring hundreds of candidates is the step's main cost: float32 halves it and ranks them
    # alike; the fit below is float64.
    scoring = score_dtype or rows.below.dtype
    features = rows.features(alpha, activation, scoring)
    features = _weigh(features, None if root is None else root.to(scoring))
    supported = effective_rows(features) >= max(MIN_SUPPORT * n, MIN_SUPPORT_ROWS)
    alpha, features = alpha[supported], features[:, supported]
    basis_scored, residual_scored = basis.to(scoring), residual.to(scoring)
    projected = orthogonal_part(features, basis_scored)
    bar = permutation_bar(projected, residual_scored, basis_scored, generator, permutations)
    selection = greedy_selection(projected, residual_scored, max_neurons, bar)
    picked = alpha[selection.indices]
    inputs = _weigh(torch.cat([rows.current, rows.features(picked, activation)], 1), root)
    # gelsd (SVD) copes with features that have died; torch offers it on the CPU only, and
    # these matrices are small.
    solution = torch.linalg.lstsq(inputs.cpu(), desired.cpu(), driver="gelsd").solution
    solution = solution.to(inputs.device)
    fitted = inputs @ solution
    width = rows.current.shape[1]
    explained = basis.T @ desired
    # Means over the rows, in the loss's units: × a convolution's summed positions.
    scale = rows.positions
    return PoolProposal(
        alpha=picked,
        omega=solution[width:].T.contiguous(),
        weight_update=solution[:width].T.contiguous(),
        gains=[scale * gain for gain in selection.gains],
        best_gain=scale * selection.best_gain,
        bar=scale * bar,
        first_order=scale * float((fitted * fitted).sum()) / n,
        weight_gain=scale * float((explained * explained).sum()) / n,
        bottleneck=scale * float((residual * residual).sum()) / n,
        candidates=alpha.shape[0],
    )


def _root_weights(rows: LayerRows) -> Tensor | None:
    """√(wᵢ / mean w) as a column, None for unweighted rows. Every row of the features, the
    desired update and the layer's output is scaled by it, so that each mean over the rows
    (a gain, the first-order decrease, the least-squares fit) is the weighted mean, as over
    rows repeated wᵢ times; the candidates are still drawn from the rows as they are."""
    if rows.weights is None:
        return None
    return (rows.weights * (rows.rows / rows.total_weight)).sqrt()[:, None]


def _weigh(matrix: Tensor, root: Tensor | None) -> Tensor:
    return matrix if root is None else matrix * root
