"""TINY's linear algebra as pure functions: statistics in, a growth proposal out.

Notation (``shared/reference/tiny.md``): a candidate is hidden layer ``k``; its new neurons read
``b2`` (the input of layer k with a constant 1 appended) and write into ``a`` (the
pre-activation of layer k+1), whose input is ``b1`` (layer k's output with a 1 appended). ``g``
is the per-sample gradient of the loss at ``a`` and ``v = −g`` the desired update. With ``E``
the average over the statistics rows::

    S1 = E[b1 b1ᵀ]   M = E[b1 gᵀ]   S2 = E[b2 b2ᵀ]   M2 = E[b2 gᵀ]   P = E[b2 b1ᵀ]

    ΔW* = −Mᵀ S1⁺                      best move of layer k+1's weights (bias = last column)
    Ψ   = E‖g‖² − tr(Mᵀ S1⁺ M)          the expressivity bottleneck of layer k+1
    N   = −M2 + P S1⁺ M                 E[b2 v⊥ᵀ]: what only new neurons can express
    S2^{-1/2} N = Σ λ_j u_j v_jᵀ        α_j = √λ_j S2^{-1/2} u_j,  ω_j = √λ_j v_j
    FO  = tr(Mᵀ S1⁺ M) + σ'(0) Σ_{j≤K} λ_j²   (loss ≈ L0 − γ² FO)

Everything is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Eigenvalues below RELATIVE_TOLERANCE × the largest (and never below ABSOLUTE_TOLERANCE) are
# treated as zero in pseudo-inverses: dead units, constant or duplicated inputs.
RELATIVE_TOLERANCE = 1e-6
ABSOLUTE_TOLERANCE = 1e-10
# λ must exceed this multiple of the estimated noise floor. With pure-noise gradients the largest
# λ is about 1.0× the floor (median) and at most 2.35× it in 99 % of draws for small layers
# (1.2× for layers of tens of units): a factor of 2 keeps false growth near 1 % at worst.
NOISE_FACTOR = 2.0


@dataclass(frozen=True)
class LayerStatistics:
    """Averages over the statistics rows for one candidate layer (float64).

    ``halves`` holds the same averages over two disjoint halves of the rows, from which the
    sampling noise of the singular values is estimated.
    """

    S1: Tensor
    M: Tensor
    S2: Tensor
    M2: Tensor
    P: Tensor
    gradient_norm: float  # E‖g‖²
    rows: int
    halves: tuple[LayerStatistics, LayerStatistics] | None = None


@dataclass(frozen=True)
class Proposal:
    """New neurons for one hidden layer, best first, and the best move of the next layer.

    Attributes:
        alpha: (K, fan_in + 1) incoming weights of the candidates, bias in the last column.
        omega: (fan_out, K) outgoing weights.
        lambdas: (K,) singular values, descending; neuron j lowers the residual by λ_j².
        weight_update: ΔW*, (fan_out, width + 1), bias in the last column; None if unused.
        weight_gain: tr(Mᵀ S1⁺ M), the first-order gain of the weight move alone.
        bottleneck: Ψ of the layer the neurons write into.
        noise_floor: the λ that sampling noise alone reaches (0 when not estimated).
    """

    alpha: Tensor
    omega: Tensor
    lambdas: Tensor
    weight_update: Tensor | None
    weight_gain: float
    bottleneck: float
    noise_floor: float = 0.0

    def significant(self, max_neurons: int, noise_factor: float = NOISE_FACTOR) -> int:
        """How many candidates have λ above ``noise_factor`` × the noise floor, at most
        ``max_neurons``."""
        return min(int((self.lambdas > noise_factor * self.noise_floor).sum()), max_neurons)

    def first_order(self, neurons: int, slope_at_zero: float) -> float:
        """FO of adding the first ``neurons`` candidates (and the weight move, if any)."""
        gain = self.weight_gain if self.weight_update is not None else 0.0
        return gain + slope_at_zero * float((self.lambdas[:neurons] ** 2).sum())


def _eigen(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Eigenvalues, eigenvectors, and the mask of eigenvalues kept as non-zero."""
    symmetric = (matrix + matrix.T) / 2
    values, vectors = torch.linalg.eigh(symmetric)
    floor = max(RELATIVE_TOLERANCE * float(values.max().clamp_min(0)), ABSOLUTE_TOLERANCE)
    return values, vectors, values > floor


def pseudo_inverse(matrix: Tensor) -> Tensor:
    """S⁺ of a symmetric positive semi-definite S, small eigenvalues dropped."""
    values, vectors, kept = _eigen(matrix)
    inverted = torch.where(kept, 1.0 / values.where(kept, torch.ones_like(values)), 0.0)
    return (vectors * inverted) @ vectors.T


def inverse_sqrt(matrix: Tensor) -> Tensor:
    """S^{-1/2} of a symmetric positive semi-definite S, small eigenvalues dropped."""
    values, vectors, kept = _eigen(matrix)
    inverted = torch.where(kept, values.where(kept, torch.ones_like(values)).rsqrt(), 0.0)
    return (vectors * inverted) @ vectors.T


def best_weight_update(S1: Tensor, M: Tensor) -> tuple[Tensor, float]:
    """ΔW* = −Mᵀ S1⁺ and its first-order gain tr(Mᵀ S1⁺ M)."""
    projected = pseudo_inverse(S1) @ M
    return -projected.T, float((M * projected).sum())


def bottleneck(stats: LayerStatistics) -> float:
    """Ψ = E‖g‖² − tr(Mᵀ S1⁺ M): the desired change no re-weighting of the layer can express."""
    _, gain = best_weight_update(stats.S1, stats.M)
    return max(stats.gradient_norm - gain, 0.0)


def expressivity_target(stats: LayerStatistics, project: bool = True) -> Tensor:
    """N = E[b2 v⊥ᵀ] = −M2 + P S1⁺ M; without projection, −M2 (re-learns existing features)."""
    if not project:
        return -stats.M2
    return -stats.M2 + stats.P @ (pseudo_inverse(stats.S1) @ stats.M)


def optimal_neurons(S2: Tensor, N: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The rank-K minimisers of E‖v⊥ − C b2‖² for every K: (α, ω, λ), best first."""
    whitening = inverse_sqrt(S2)
    left, lambdas, right_t = torch.linalg.svd(whitening @ N, full_matrices=False)
    root = lambdas.sqrt()
    alpha = (whitening @ left * root).T
    omega = right_t.T * root
    return alpha, omega, lambdas


def _noise_floor(stats: LayerStatistics, project: bool) -> float:
    # Two halves estimate the same N; their half-difference has the sampling noise of N itself,
    # so its largest whitened singular value is the λ that noise alone produces.
    if stats.halves is None:
        return 0.0
    first, second = (expressivity_target(half, project) for half in stats.halves)
    difference = inverse_sqrt(stats.S2) @ ((first - second) / 2)
    return float(torch.linalg.matrix_norm(difference, ord=2))


def tiny_proposal(
    stats: LayerStatistics, project: bool = True, move_weights: bool = True
) -> Proposal:
    """TINY's optimal neurons for one candidate layer (``project=False``: TINY without the
    projection on the existing features)."""
    weight_update, weight_gain = best_weight_update(stats.S1, stats.M)
    alpha, omega, lambdas = optimal_neurons(stats.S2, expressivity_target(stats, project))
    return Proposal(
        alpha=alpha,
        omega=omega,
        lambdas=lambdas,
        weight_update=weight_update if move_weights else None,
        weight_gain=weight_gain,
        bottleneck=bottleneck(stats),
        noise_floor=_noise_floor(stats, project),
    )


def gradmax_proposal(stats: LayerStatistics, output_scale: float) -> Proposal:
    """GradMax (Evci et al. 2022): zero incoming weights; outgoing weights along the top left
    singular vectors of E[g b2ᵀ], scaled to ``output_scale`` (no whitening, no projection).
    The function is unchanged; the new neurons' gradient norm is maximal."""
    _, weight_gain = best_weight_update(stats.S1, stats.M)
    left, lambdas, _ = torch.linalg.svd(stats.M2.T, full_matrices=False)
    first, second = (half.M2.T for half in stats.halves) if stats.halves else (None, None)
    floor = (
        float(torch.linalg.matrix_norm((first - second) / 2, ord=2)) if first is not None else 0.0
    )
    return Proposal(
        alpha=torch.zeros(lambdas.shape[0], stats.S2.shape[0], dtype=stats.S2.dtype),
        omega=left * output_scale,
        lambdas=lambdas,
        weight_update=None,
        weight_gain=weight_gain,
        bottleneck=bottleneck(stats),
        noise_floor=floor,
    )
