"""TINY's linear algebra as pure functions: statistics in, a growth proposal out.

Verbockhaven et al., "Growing Tiny Networks", TMLR 2024; derivation in docs/growth.md. A
candidate is hidden layer ``k``; its new neurons read ``b2`` (the input of layer k with a
constant 1 appended) and write into ``a`` (the
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
# The multiple of the sign-flip noise floor (the largest λ of 35 balanced sign draws) a λ must
# exceed. The floor reuses the full sample's projection in every group, which makes it too
# strict for few inputs and too lenient for many outputs; the default growth method (the
# pool) uses a calibrated permutation null instead, and this floor serves the TINY ablation.
NOISE_FACTOR = 1.0


@dataclass(frozen=True)
class LayerStatistics:
    """Averages over the statistics rows for one candidate layer (float64).

    ``groups`` holds the same averages over disjoint groups of the rows, from which the
    sampling noise of the singular values is estimated.
    """

    S1: Tensor
    M: Tensor
    S2: Tensor
    M2: Tensor
    P: Tensor
    gradient_norm: float  # E‖g‖²
    rows: float  # how many rows (their total weight when they are weighted)
    groups: tuple[LayerStatistics, ...] = ()


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


def expressivity_target(
    stats: LayerStatistics, project: bool = True, projection: Tensor | None = None
) -> Tensor:
    """N = E[b2 v⊥ᵀ] = −M2 + P S1⁺ M; without projection, −M2 (re-learns existing features).
    ``projection``: S1⁺ M when already computed (the noise groups share the full sample's)."""
    if not project:
        return -stats.M2
    if projection is None:
        projection = pseudo_inverse(stats.S1) @ stats.M
    return -stats.M2 + stats.P @ projection


def optimal_neurons(
    S2: Tensor, N: Tensor, whitening: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The rank-K minimisers of E‖v⊥ − C b2‖² for every K: (α, ω, λ), best first
    (``whitening``: S2^{-1/2} when already computed)."""
    whitening = inverse_sqrt(S2) if whitening is None else whitening
    left, lambdas, right_t = torch.linalg.svd(whitening @ N, full_matrices=False)
    root = lambdas.sqrt()
    alpha = (whitening @ left * root).T
    omega = right_t.T * root
    return alpha, omega, lambdas


def _balanced_signs(groups: int) -> Tensor:
    """Every ±1 pattern with as many + as − (first sign fixed: a pattern and its negation give
    the same singular values); 35 patterns for 8 groups."""
    patterns = [
        [1.0 if (code >> i) & 1 else -1.0 for i in range(groups)]
        for code in range(1 << groups)
        if code & 1 and bin(code).count("1") == groups // 2
    ]
    return torch.tensor(patterns, dtype=torch.float64, device="cpu")


def noise_floor(parts: list[Tensor], weights: list[float], whitening: Tensor | None) -> float:
    """The largest singular value that sampling noise alone gives the weighted mean of ``parts``.

    ``parts`` are the same matrix estimated on disjoint groups of rows (with ``weights``, their
    shares of the rows). A balanced ±1 combination cancels what the groups share and keeps
    noise of the mean's size; the floor is the largest whitened singular value over all such
    combinations.
    """
    if len(parts) < 2:
        return 0.0
    stacked = torch.stack([w * part for w, part in zip(weights, parts, strict=True)])
    signs = _balanced_signs(len(parts)).to(stacked.device)
    draws = torch.einsum("pg,gij->pij", signs, stacked)
    if whitening is not None:
        draws = whitening @ draws
    return float(torch.linalg.matrix_norm(draws, ord=2).max())


def _noise_floor(stats: LayerStatistics, projection: Tensor | None, whitening: Tensor) -> float:
    if len(stats.groups) < 2:
        return 0.0
    parts = []
    for group in stats.groups:
        # Group means of N share the projection S1⁺M of all rows: noise stays linear in them.
        parts.append(expressivity_target(group, projection is not None, projection))
    return noise_floor(parts, [g.rows / stats.rows for g in stats.groups], whitening)


def tiny_proposal(
    stats: LayerStatistics, project: bool = True, move_weights: bool = True
) -> Proposal:
    """TINY's optimal neurons for one candidate layer (``project=False``: TINY without the
    projection on the existing features)."""
    # S1⁺ and S2^{-1/2} once each: the formulas below share them.
    projection = pseudo_inverse(stats.S1) @ stats.M  # S1⁺ M
    weight_gain = float((stats.M * projection).sum())  # tr(Mᵀ S1⁺ M)
    target = expressivity_target(stats, project, projection)  # N
    whitening = inverse_sqrt(stats.S2)
    alpha, omega, lambdas = optimal_neurons(stats.S2, target, whitening)
    return Proposal(
        alpha=alpha,
        omega=omega,
        lambdas=lambdas,
        weight_update=-projection.T if move_weights else None,  # ΔW* = −Mᵀ S1⁺
        weight_gain=weight_gain,
        bottleneck=max(stats.gradient_norm - weight_gain, 0.0),  # Ψ
        noise_floor=_noise_floor(stats, projection if project else None, whitening),
    )


def gradmax_proposal(stats: LayerStatistics, output_scale: float) -> Proposal:
    """GradMax (Evci et al. 2022): zero incoming weights; outgoing weights along the top left
    singular vectors of E[g b2ᵀ], scaled to ``output_scale`` (no whitening, no projection).
    The function is unchanged; the new neurons' gradient norm is maximal."""
    _, weight_gain = best_weight_update(stats.S1, stats.M)
    left, lambdas, _ = torch.linalg.svd(stats.M2.T, full_matrices=False)
    floor = noise_floor(
        [group.M2.T for group in stats.groups], [g.rows / stats.rows for g in stats.groups], None
    )
    return Proposal(
        alpha=stats.S2.new_zeros(lambdas.shape[0], stats.S2.shape[0]),
        omega=left * output_scale,
        lambdas=lambdas,
        weight_update=None,
        weight_gain=weight_gain,
        bottleneck=bottleneck(stats),
        noise_floor=floor,
    )
