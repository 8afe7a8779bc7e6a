"""Numeric feature embeddings: what the first hidden layer reads in place of the raw numbers.

An embedding maps each numeric column of a prepared row (standardised numbers, never booleans,
missing indicators or one-hot columns: ``Preprocessor.numeric_outputs``) to a few values, and
passes the other columns through unchanged after them::

    [embedded numeric columns ..., other columns ...]

Two kinds, both from Gorishniy, Rubachev & Babenko, "On Embeddings for Numerical Features in
Tabular Deep Learning" (NeurIPS 2022); the formulas and the defaults are in docs/embeddings.md:

* ``PeriodicEmbedding`` (PLR, its "lite" form): trained frequencies c per column,
  ``ReLU(W·[cos 2πcx, sin 2πcx] + b)`` with one ``W`` shared by every column;
* ``PiecewiseEmbedding`` (PLE with quantile bins): the piecewise-linear encoding of x over bins
  fitted on the training rows, kept as buffers, nothing trained.

Each has the plain ``forward`` (autograd, evaluation, export) and the pair the trainer uses,
``forward_cached`` and a hand-derived ``backward`` that takes ∂L/∂(its embedded outputs) and
writes its parameters' ``.grad``. Growth never changes an embedding: the first hidden layer's
new neurons read its output like any other input (``fan_in`` = ``output_size``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from growml.config import ModelConfig

_TWO_PI = 2.0 * math.pi


class NumericEmbedding(nn.Module):
    """The common part: which prepared columns are embedded, which pass through.

    Args:
        input_size: columns of a prepared row.
        numeric: the embedded columns (0-based, each once); the others pass through in order.
    """

    kind = ""

    def __init__(self, input_size: int, numeric: Sequence[int]) -> None:
        super().__init__()
        numeric = [int(i) for i in numeric]
        if not numeric or len(set(numeric)) != len(numeric) or sorted(numeric) != numeric:
            raise ValueError(f"embedded columns must be increasing and distinct, got {numeric}")
        if numeric[0] < 0 or numeric[-1] >= input_size:
            raise ValueError(f"embedded columns must lie in [0, {input_size}), got {numeric}")
        self.input_size = input_size
        self.numeric = tuple(numeric)
        embedded = set(numeric)
        self.others = tuple(i for i in range(input_size) if i not in embedded)
        self.register_buffer("numeric_index", torch.tensor(numeric), persistent=False)
        self.register_buffer("other_index", torch.tensor(self.others, dtype=torch.long), False)

    @property
    def embedded_size(self) -> int:
        """Outputs of the embedded columns (the first ones)."""
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        """What the first hidden layer reads: embedded outputs, then the other columns."""
        return self.embedded_size + len(self.others)

    @property
    def trained(self) -> bool:
        """Whether it has parameters, which ``backward`` gives gradients."""
        return any(True for _ in self.parameters())

    def spec(self) -> dict[str, Any]:
        """model.json's ``embedding``: enough to rebuild it before loading its tensors."""
        return {"kind": self.kind, "numeric": list(self.numeric)}

    def output_columns(self) -> list[int]:
        """The prepared column each output comes from, in the outputs' order."""
        return [*self._embedded_columns(), *self.others]

    def _embedded_columns(self) -> list[int]:
        raise NotImplementedError

    def _join(self, embedded: Tensor, x: Tensor) -> Tensor:
        if not self.others:
            return embedded
        return torch.cat([embedded, x.index_select(1, self.other_index)], 1)

    def forward_cached(self, x: Tensor) -> tuple[Tensor, Any]:
        """The output and what ``backward`` needs. Call under ``torch.no_grad()``."""
        raise NotImplementedError

    def backward(self, cache: Any, embedded_grad: Tensor) -> None:
        """Set every parameter's ``.grad`` from ``embedded_grad`` = ∂L/∂(the embedded outputs),
        (batch, ``embedded_size``). Call under ``torch.no_grad()``."""


class PeriodicEmbedding(NumericEmbedding):
    """PLR (lite): per embedded column j, ``e_j = ReLU(W·[cos 2πc_j x_j, sin 2πc_j x_j] + b)``.

    Args:
        frequencies: k, trained frequencies per column, drawn from N(0, σ²) cut at ±3σ.
        sigma: σ.
        width: d, outputs per column; ``W`` (d, 2k) and ``b`` (d,) are shared by the columns
            and start as PyTorch's ``nn.Linear`` does.
        generator: random generator for the initial values.
    """

    kind = "periodic"

    def __init__(
        self,
        input_size: int,
        numeric: Sequence[int],
        frequencies: int = 16,
        sigma: float = 0.01,
        width: int = 8,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(input_size, numeric)
        self.sigma = float(sigma)
        initial = torch.empty(len(self.numeric), frequencies)
        nn.init.trunc_normal_(initial, 0.0, sigma, -3 * sigma, 3 * sigma, generator=generator)
        self.frequencies = nn.Parameter(initial)
        bound = 1.0 / math.sqrt(2 * frequencies)
        weight = torch.empty(width, 2 * frequencies).uniform_(-bound, bound, generator=generator)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(width).uniform_(-bound, bound, generator=generator))

    @property
    def embedded_size(self) -> int:
        return len(self.numeric) * self.weight.shape[0]

    def _embedded_columns(self) -> list[int]:
        return [column for column in self.numeric for _ in range(self.weight.shape[0])]

    def spec(self) -> dict[str, Any]:
        return {
            **super().spec(),
            "frequencies": self.frequencies.shape[1],
            "sigma": self.sigma,
            "width": self.weight.shape[0],
        }

    def _periodic(self, x: Tensor) -> tuple[Tensor, Tensor]:
        numbers = x.index_select(1, self.numeric_index)
        angles = (numbers * _TWO_PI).unsqueeze(2) * self.frequencies
        return numbers, torch.cat([angles.cos(), angles.sin()], 2)

    def forward(self, x: Tensor) -> Tensor:
        _, periodic = self._periodic(x)
        return self._join(F.linear(periodic, self.weight, self.bias).relu().flatten(1), x)

    def forward_cached(self, x: Tensor) -> tuple[Tensor, Any]:
        numbers, periodic = self._periodic(x)
        preactivation = F.linear(periodic, self.weight, self.bias)
        return self._join(preactivation.relu().flatten(1), x), (numbers, periodic, preactivation)

    def backward(self, cache: Any, embedded_grad: Tensor) -> None:
        numbers, periodic, preactivation = cache
        rows, columns, doubled = periodic.shape
        k = doubled // 2
        delta = embedded_grad.reshape(preactivation.shape) * (preactivation > 0)
        flat_delta = delta.reshape(-1, delta.shape[2])
        self.weight.grad = flat_delta.t() @ periodic.reshape(-1, doubled)
        self.bias.grad = flat_delta.sum(0)
        periodic_grad = delta @ self.weight
        cos, sin = periodic[..., :k], periodic[..., k:]
        # d cos(z)/dz = -sin z, d sin(z)/dz = cos z, and ∂z/∂c = 2πx.
        angle_grad = periodic_grad[..., k:] * cos - periodic_grad[..., :k] * sin
        self.frequencies.grad = (angle_grad * numbers.unsqueeze(2)).sum(0).mul_(_TWO_PI)


class PiecewiseEmbedding(NumericEmbedding):
    """PLE: column j's bins ``b_0 < … < b_T`` give T outputs, output t (1-based)
    ``clip((x - b_{t-1}) / (b_t - b_{t-1}))`` into [0, 1], except that the first is not
    clipped below and the last not above (a single bin: not clipped at all).

    Args:
        bins: T of each embedded column, in order; ``bin_starts`` and ``bin_widths`` (buffers,
            saved with the weights) hold ``b_{t-1}`` and ``b_t - b_{t-1}`` of every output.
    """

    kind = "piecewise"

    def __init__(self, input_size: int, numeric: Sequence[int], bins: Sequence[int]) -> None:
        super().__init__(input_size, numeric)
        bins = [int(count) for count in bins]
        if len(bins) != len(self.numeric) or min(bins) < 1:
            raise ValueError(f"need a bin count ≥ 1 for each of {len(self.numeric)} columns")
        self.bins = tuple(bins)
        counts = torch.tensor(bins)
        position = torch.cat([torch.arange(count) for count in bins])
        first, last = position == 0, position == counts.repeat_interleave(counts) - 1
        inf = torch.tensor(math.inf)
        self.register_buffer(
            "component_index", self.numeric_index.repeat_interleave(counts), persistent=False
        )
        self.register_buffer("lower", torch.where(first, -inf, 0.0), persistent=False)
        self.register_buffer("upper", torch.where(last, inf, 1.0), persistent=False)
        self.register_buffer("bin_starts", torch.zeros(sum(bins)))
        self.register_buffer("bin_widths", torch.ones(sum(bins)))

    @classmethod
    def fit(cls, x_train: np.ndarray, numeric: Sequence[int], max_bins: int) -> PiecewiseEmbedding:
        """Bins at the quantiles 0, 1/T, …, 1 of each embedded column of the training rows
        ``x_train``, equal edges merged (a column with one value gets the bin [v, v + 1])."""
        columns = np.asarray(x_train, dtype=np.float64)[:, list(numeric)]
        levels = np.linspace(0.0, 1.0, max_bins + 1)
        edges = []
        for column in columns.T:
            # Merged in float32, the precision the model keeps them in: two quantiles apart
            # in float64 only would make a bin of width 0.
            quantiles = np.quantile(column, levels) if column.size else np.zeros(1)
            unique = np.unique(quantiles.astype(np.float32)).astype(np.float64)
            edges.append(unique if unique.size > 1 else np.array([unique[0], unique[0] + 1.0]))
        embedding = cls(x_train.shape[1], numeric, [e.size - 1 for e in edges])
        starts = np.concatenate([e[:-1] for e in edges])
        widths = np.concatenate([np.diff(e) for e in edges])
        embedding.bin_starts.copy_(torch.as_tensor(starts, dtype=torch.float32))
        embedding.bin_widths.copy_(torch.as_tensor(widths, dtype=torch.float32))
        return embedding

    @property
    def embedded_size(self) -> int:
        return len(self.bin_starts)

    def _embedded_columns(self) -> list[int]:
        return self.component_index.tolist()

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "bins": list(self.bins)}

    def forward(self, x: Tensor) -> Tensor:
        values = (x.index_select(1, self.component_index) - self.bin_starts) / self.bin_widths
        return self._join(torch.clamp(values, self.lower, self.upper), x)

    def forward_cached(self, x: Tensor) -> tuple[Tensor, Any]:
        return self.forward(x), None


def make_embedding(
    settings: ModelConfig,
    x_train: np.ndarray,
    numeric: Sequence[int],
    generator: torch.Generator | None = None,
) -> NumericEmbedding | None:
    """The embedding ``model.embedding`` names (None for ``none``) of the prepared training
    rows ``x_train``, embedding their ``numeric`` columns."""
    if settings.embedding == "none":
        return None
    if settings.embedding == "periodic":
        return PeriodicEmbedding(
            x_train.shape[1],
            numeric,
            settings.embedding_frequencies,
            settings.embedding_sigma,
            settings.embedding_width,
            generator,
        )
    return PiecewiseEmbedding.fit(x_train, numeric, settings.embedding_bins)


def embedding_from_spec(input_size: int, spec: dict[str, Any]) -> NumericEmbedding:
    """An embedding of the architecture model.json records, ready for its tensors."""
    kind, numeric = spec["kind"], spec["numeric"]
    if kind == "periodic":
        return PeriodicEmbedding(
            input_size, numeric, int(spec["frequencies"]), float(spec["sigma"]), int(spec["width"])
        )
    if kind == "piecewise":
        return PiecewiseEmbedding(input_size, numeric, spec["bins"])
    raise ValueError(f"unknown embedding {kind!r}")
