"""How a numeric column's values become the numbers a network sees (``data.scaling``).

Three scalings, each fitted on a training column's present values (float64, no NaN) and
applied to any column of that kind; ``docs/preprocessing.md`` gives the formulas and sources:

* ``standard``: ``(x - mean) / std``;
* ``robust``: RealMLP's robust scaling with smooth clipping (Holzmüller et al., NeurIPS 2024);
* ``quantile``: the empirical distribution function mapped to a standard normal, as
  scikit-learn's ``QuantileTransformer(output_distribution="normal")``.

``apply`` returns float64 with NaN wherever a value counts as missing (NaN in, or a value the
exported model's float32 input would hold as infinite); the caller imputes those. The ONNX
graph builds the same formulas from the same constants (``growml.export.scaling``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)
# float32 rounds a value by up to 2^-24 of itself.
FLOAT32_ROUNDING = 2.0**-24

# RealMLP's constants (Holzmüller et al., NeurIPS 2024, its preprocessing of numbers): the
# quartiles, the half-range used when they coincide, the 1e-30 guarding the division, and
# the smooth clip x / sqrt(1 + (x / 3)^2), which saturates at ±3.
ROBUST_LOW, ROBUST_HIGH = 0.25, 0.75
ROBUST_EPSILON = 1e-30
CLIP_LEVEL = 3.0
# Beyond this the smooth clip equals ±3 to double precision; clipping first keeps (x/3)^2
# from overflowing for values near the float64 range.
ROBUST_SATURATION = 1e15

# scikit-learn's QuantileTransformer: at most 1000 quantiles, probabilities kept 1e-7 away
# from 0 and 1 so that the normal quantile stays finite (±5.199).
MAX_QUANTILES = 1000
PROBABILITY_FLOOR = 1e-7

# The inverse normal distribution function by Acklam's rational approximation (P. J. Acklam,
# "An algorithm for computing the inverse normal cumulative distribution function", 2003):
# relative error below 1.15e-9 over (0, 1). Central region |p - 1/2| <= 1/2 - ACKLAM_SPLIT:
# q · A(q²) / B(q²) with q = p - 1/2; tails: C(t) / D(t) with t = sqrt(-2 log p) for the
# lower tail, mirrored for the upper. Coefficients from the highest power down; B and D have
# a leading-order constant 1 appended.
ACKLAM_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
ACKLAM_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
    1.0,
)
ACKLAM_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
ACKLAM_D = (
    7.784695709041462e-03,
    3.224671290700398e-01,
    2.445134137142996e00,
    3.754408661907416e00,
    1.0,
)
ACKLAM_SPLIT = 0.02425


def horner(coefficients: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """The polynomial with ``coefficients`` (highest power first) at ``x``."""
    result = np.full_like(x, coefficients[0])
    for coefficient in coefficients[1:]:
        result = result * x + coefficient
    return result


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """Φ⁻¹(p) for ``p`` in (0, 1), by Acklam's approximation (absolute error below 1e-8 for
    p in [1e-7, 1 - 1e-7]); the ONNX graph evaluates the same branches in the same order."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    r = q * q
    central = q * horner(ACKLAM_A, r) / horner(ACKLAM_B, r)
    t = np.sqrt(-2.0 * np.log(np.minimum(p, 1.0 - p)))
    tail = horner(ACKLAM_C, t) / horner(ACKLAM_D, t)
    tail = np.where(p < 0.5, tail, -tail)
    return np.where(np.abs(q) <= 0.5 - ACKLAM_SPLIT, central, tail)


class Scaling(ABC):
    """One numeric column's fitted scaling; ``fit`` on present training values, ``apply``."""

    kind: ClassVar[str]

    @classmethod
    @abstractmethod
    def fit(cls, present: np.ndarray) -> Scaling:
        """The scaling of a training column whose present values (no NaN) are ``present``."""

    @abstractmethod
    def apply(self, values: np.ndarray) -> np.ndarray:
        """Scaled ``values`` (float64), NaN where a value counts as missing."""

    @property
    @abstractmethod
    def centre(self) -> float:
        """A typical value of the training column (its mean or median)."""

    @property
    @abstractmethod
    def spread(self) -> float:
        """A typical distance from ``centre`` in the training column (positive)."""

    @property
    @abstractmethod
    def value_to_spread(self) -> float:
        """How far the output moves when a typical value changes by all of itself: times
        float32's rounding (2^-24), the error a float32 input adds to the output."""

    @property
    def float32_exact(self) -> bool:
        """Whether values rounded to float32 land on the same side of every point where the
        output jumps (a float32 input cannot otherwise match the float64 one)."""
        return True

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The fitted numbers, JSON-ready (the column entry of ``preprocess.json``)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> Scaling:
        """The scaling ``to_dict`` wrote; ``KeyError``, ``TypeError`` or ``ValueError`` when
        incomplete."""


def _beyond_float32(values: np.ndarray) -> np.ndarray:
    """Values an exported model's float32 input holds as infinite, so it reads them as
    missing; the torch path agrees."""
    return ~(np.abs(values) <= FLOAT32_MAX)


@dataclass(frozen=True)
class StandardScaling(Scaling):
    """``(x - mean) / std``; ``std`` is 1 for a constant column, which maps it to zeros."""

    mean: float
    std: float
    kind: ClassVar[str] = "standard"

    @classmethod
    def fit(cls, present: np.ndarray) -> StandardScaling:
        return cls(*mean_and_std(present))

    def apply(self, values: np.ndarray) -> np.ndarray:
        scaled = (values - self.mean) / self.std
        # A number that standardises beyond float32's range (1e300 in a column of ordinary
        # values) is missing, as it is to the exported model, whose float32 input holds it as
        # infinite; as a number it would turn the network's outputs into NaN.
        scaled[_beyond_float32(scaled)] = np.nan
        return scaled

    @property
    def centre(self) -> float:
        return self.mean

    @property
    def spread(self) -> float:
        return self.std

    @property
    def value_to_spread(self) -> float:
        return abs(self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> StandardScaling:
        return cls(float(entry["mean"]), float(entry["std"]))


@dataclass(frozen=True)
class RobustScaling(Scaling):
    """RealMLP's robust scaling and smooth clip (Holzmüller et al., NeurIPS 2024).

    ``z = factor · (x - median)``, then ``z / sqrt(1 + (z / 3)²)``, which is about ``z`` near
    the centre and tends to ±3. ``factor = 1 / (q₀.₇₅ - q₀.₂₅ + 1e-30)``; when the quartiles
    coincide, ``1 / ((max - min) / 2 + 1e-30)``; when the column is constant, 0 (it maps to
    zeros). Quantiles are linear interpolations between order statistics (numpy's default).
    """

    median: float
    factor: float
    kind: ClassVar[str] = "robust"

    @classmethod
    def fit(cls, present: np.ndarray) -> RobustScaling:
        if not present.size:
            return cls(0.0, 0.0)
        median = float(np.median(present))
        low, high = np.quantile(present, [ROBUST_LOW, ROBUST_HIGH])
        # Halved before subtracting, so that a range near 1e308 cannot overflow.
        spread = float(high - low) or float(present.max() / 2 - present.min() / 2)
        factor = 1.0 / (spread + ROBUST_EPSILON) if spread > 0 else 0.0
        return cls(median, factor)

    def apply(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            z = np.clip(self.factor * (values - self.median), -ROBUST_SATURATION, ROBUST_SATURATION)
        clipped = z / np.sqrt(1.0 + (z / CLIP_LEVEL) ** 2)
        clipped[_beyond_float32(values)] = np.nan
        return clipped

    @property
    def centre(self) -> float:
        return self.median

    @property
    def spread(self) -> float:
        return 1.0 / self.factor if self.factor > 0 else 1.0

    @property
    def value_to_spread(self) -> float:
        # The smooth clip's slope is at most 1.
        return abs(self.median) * self.factor

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "factor": self.factor}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> RobustScaling:
        return cls(float(entry["median"]), float(entry["factor"]))


@dataclass(frozen=True)
class QuantileScaling(Scaling):
    """The training column's empirical distribution mapped to a standard normal.

    ``quantiles`` are the column's quantiles at ``n`` evenly spaced probabilities
    ``p_k = k / (n - 1)``, ``n = min(1000, rows)``. A value between two quantiles gets the
    linearly interpolated probability; where quantiles repeat, a value equal to them gets the
    middle of their probabilities (scikit-learn's two-way interpolation); a value at or below
    the first quantile gets 0, at or above the last 1. The probability is kept within
    [1e-7, 1 - 1e-7] and mapped through Φ⁻¹ (``normal_quantile``), so outputs lie within
    ±5.199. A column with one value (or none) maps to zeros.
    """

    quantiles: tuple[float, ...]
    kind: ClassVar[str] = "quantile"
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_array", np.asarray(self.quantiles, dtype=np.float64))

    @classmethod
    def fit(cls, present: np.ndarray) -> QuantileScaling:
        n = min(MAX_QUANTILES, present.size)
        if not n:
            return cls((0.0,))
        ordered = np.sort(present)
        # The quantile at p_k lies at position k (rows - 1) / (n - 1) among the ordered values,
        # linearly interpolated (numpy's default method). Computed from integers, a position
        # that is a whole number is exact: np.quantile's p_k (rows - 1) can miss it by a
        # rounding and put a spurious quantile one ulp beside an order statistic, where the
        # map's slope would be enormous.
        whole, remainder = np.divmod(np.arange(n) * (present.size - 1), max(n - 1, 1))
        upper = ordered[np.minimum(whole + 1, present.size - 1)]
        lower = ordered[whole]
        quantiles = lower + (upper - lower) * (remainder / max(n - 1, 1))
        # Interpolation can break monotonicity by a rounding; the map needs it.
        return cls(tuple(float(q) for q in np.maximum.accumulate(quantiles)))

    @property
    def references(self) -> np.ndarray:
        """The probabilities of ``quantiles``: ``k / (n - 1)``."""
        return np.linspace(0.0, 1.0, len(self.quantiles))

    @property
    def constant(self) -> bool:
        return bool(self._array[0] == self._array[-1])

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """The interpolated probability of each value, before the normal quantile."""
        q, p = self._array, self.references
        forward = np.interp(values, q, p)
        backward = -np.interp(-values, -q[::-1], -p[::-1])
        probability = 0.5 * (forward + backward)
        probability[values >= q[-1]] = 1.0
        probability[values <= q[0]] = 0.0
        return probability

    def apply(self, values: np.ndarray) -> np.ndarray:
        if self.constant:
            out = np.zeros_like(values)
        else:
            probability = np.clip(
                self.probabilities(values), PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR
            )
            out = normal_quantile(probability)
        out[np.isnan(values) | _beyond_float32(values)] = np.nan
        return out

    def steps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The map as a sum over distinct quantiles ``u_j``: ``jump_j`` where the probability
        steps at ``u_j`` (repeated quantiles; half of it at ``u_j`` itself), and ``rise_j``
        over ``[u_j, u_j + width_j]`` up to the next distinct quantile (0 after the last).
        ``p(x) = Σ_j jump_j · H(x - u_j) + rise_j · clip((x - u_j) / width_j, 0, 1)``."""
        q, p = self._array, self.references
        distinct, first = np.unique(q, return_index=True)
        last = np.append(first[1:], len(q)) - 1
        jump = p[last] - p[first]
        rise = np.append(p[first[1:]] - p[last[:-1]], 0.0)
        width = np.append(np.diff(distinct), 1.0)
        return distinct, jump, rise, width

    @property
    def centre(self) -> float:
        return float(np.interp(0.5, self.references, self._array))

    @property
    def spread(self) -> float:
        low, high = np.interp([0.25, 0.75], self.references, self._array)
        return float(high - low) or float(self._array[-1] - self._array[0]) or 1.0

    @property
    def value_to_spread(self) -> float:
        # The slope of the map over each interval between distinct quantiles, taken where
        # the interval's probability is nearest 1/2 (Φ⁻¹ steepens towards the clipped ends,
        # which few values reach), times the largest magnitude in the interval, averaged
        # over the training distribution (each interval holds ``rise`` of it), as the
        # standard scaling takes the mean for a typical value.
        if self.constant:
            return 0.0
        distinct, jump, rise, width = self.steps()
        low = np.cumsum(jump + rise) - rise  # the probability just after u_j
        high = low + rise
        inner = np.clip(np.clip(0.5, low, high), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        y = normal_quantile(inner)
        density = np.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
        magnitude = np.maximum(np.abs(distinct), np.abs(distinct + width))
        return float(np.sum(magnitude * rise * rise / width / density))

    @property
    def float32_exact(self) -> bool:
        # A repeated quantile is a jump of the map: a value equal to it gets the middle of
        # the jump, and the same value rounded to float32 one end of it, unless float32
        # holds it exactly (integers do; 0.1 does not). The first and last quantiles are
        # jumps too, but to probabilities that the floor of 1e-7 maps alike.
        distinct, jump, _, _ = self.steps()
        tied = distinct[1:-1][jump[1:-1] > 0]
        return bool(np.all(tied.astype(np.float32).astype(np.float64) == tied))

    def to_dict(self) -> dict[str, Any]:
        return {"quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> QuantileScaling:
        quantiles = tuple(float(q) for q in entry["quantiles"])
        if not quantiles or list(quantiles) != sorted(quantiles):
            raise ValueError("quantiles")
        return cls(quantiles)


SCALINGS: dict[str, type[Scaling]] = {
    kind.kind: kind for kind in (StandardScaling, RobustScaling, QuantileScaling)
}


def mean_and_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of finite ``values``; std 1 for a constant or empty column.

    Computed on values scaled by a power of two (exact), so magnitudes near 1e300 do not
    overflow when squared.
    """
    if not values.size:
        return 0.0, 1.0
    largest = float(np.abs(values).max())
    scale = 2.0 ** np.floor(np.log2(largest)) if largest > 0 else 1.0
    scaled = values / scale
    mean, std = float(scaled.mean()) * scale, float(scaled.std()) * scale
    # A constant column carries no signal; dividing by 1 maps it to zeros instead of NaN.
    return mean, std if std > 0 else 1.0
