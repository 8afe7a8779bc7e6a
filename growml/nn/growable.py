"""What the growth engine needs from a place in a network that can grow: ``GrowableLayer``.

A growable layer is a set of units (hidden neurons today; numeric-embedding units, the units of
an inserted layer, convolution channels next) that read some input and write into the next
pre-activation. The engine never looks inside a network: it measures each growable layer's
rows, asks a growth method for new units, evaluates the network with them, and adds them, all
through this interface. docs/growable-layers.md says how a new kind implements it.

Shape changes swap a parameter's ``.data`` and keep the ``Parameter`` object itself, so an
optimizer that holds it never needs rebuilding; each change yields ``ParamResize`` records that
``growml.nn.optimizer_state`` applies to the optimizer's state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor, nn
from torch.optim import Optimizer

if TYPE_CHECKING:
    from growml.nn.activations import Activation


@dataclass(frozen=True)
class ParamResize:
    """How one parameter changed shape along ``dim``: entries kept, then entries appended."""

    param: nn.Parameter
    dim: int
    old_size: int
    keep: Tensor | None = None
    append: int = 0


@dataclass(frozen=True)
class LayerSample:
    """One growable layer's values on a batch of rows, as the growth math reads them.

    Attributes:
        below: (n · pooled, fan_in) what a new unit reads (for convolution channels: the
            unfolded input patches, one row per example and position).
        current: (n, width) what the layer's existing units give the next layer, one row per
            statistics row.
        gradient: (n, fan_out) each statistics row's gradient of the loss at the next
            pre-activation.
        positions: statistics rows per example (1 for a dense layer), example-major: the
            rows of example i are ``i·positions … (i+1)·positions − 1``. Each is a term of the
            example's loss (a convolution read by a convolution, at each position of the
            next one), so an average over examples sums them.
        pooled: rows of ``below`` per statistics row: a unit's feature on a statistics row is
            the mean of its activations on these rows (a convolution read through global
            average pooling; 1 otherwise). docs/conv-growth.md.
    """

    below: Tensor
    current: Tensor
    gradient: Tensor
    positions: int = 1
    pooled: int = 1

    @property
    def mean_below(self) -> Tensor:
        """``below`` averaged over each statistics row's ``pooled`` rows: what a unit reads
        when its activation is linear."""
        return pooled_mean(self.below, self.pooled)


def pooled_mean(rows: Tensor, pooled: int) -> Tensor:
    """The mean of each consecutive group of ``pooled`` rows."""
    if pooled == 1:
        return rows
    return rows.reshape(rows.shape[0] // pooled, pooled, rows.shape[1]).mean(1)


@dataclass
class ForwardCache:
    """What the backward pass needs: each layer's input, each hidden pre-activation, the output,
    what the numeric embedding kept (None without one) and what the feature gate scaled (None
    without one)."""

    inputs: list[Tensor]
    preactivations: list[Tensor]
    output: Tensor
    embedding: Any = None
    ungated: Tensor | None = None


@dataclass(frozen=True)
class Candidate:
    """Neurons to add to hidden layer ``layer`` and a move of the next layer, at step t.

    TINY (``linear`` false): incoming weights √t·α, outgoing √t·ω, the next layer moves by
    t·ΔW. Linear: incoming α as it is, outgoing t·ω, the move t·ΔW.
    """

    layer: int
    alpha: Tensor  # (K, fan_in + 1), bias last
    omega: Tensor  # (fan_out, K)
    weight_update: Tensor | None = None  # ΔW of the next layer
    linear: bool = False

    @property
    def neurons(self) -> int:
        return self.alpha.shape[0]

    def scales(self, step: float) -> tuple[float, float]:
        """The factors of the incoming and outgoing weights at ``step``."""
        if self.linear:
            return 1.0, step
        root = math.sqrt(step)
        return root, root


class GrowableLayer(Protocol):
    """A place that can receive units: what the growth engine reads and changes.

    Attributes:
        index: its position among the network's growable layers (events and plots name it).
        fan_in: inputs a new unit reads (without its bias).
        fan_out: outputs a new unit writes to.
        width: units it has now.
        activation: σ of its units.
    """

    index: int

    @property
    def fan_in(self) -> int: ...

    @property
    def fan_out(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def activation(self) -> Activation: ...

    def unit_cost(self) -> int:
        """Parameters one more unit costs: its weights in, its bias, its weights out."""
        ...

    def outgoing(self) -> Tensor:
        """(fan_out, width) the weights from the existing units to the next layer."""
        ...

    def sample(self, cache: ForwardCache, gradients: list[Tensor]) -> LayerSample:
        """This layer's rows of one forward pass (``cache``) and its backward pass
        (``gradients``: ∂L/∂a of every layer, per row)."""
        ...

    def extended_output(
        self, cache: ForwardCache, candidate: Candidate
    ) -> Callable[[float], Tensor]:
        """``t ↦`` the network's output on ``cache``'s rows with ``candidate`` added at step t,
        the network itself untouched."""
        ...

    def add_units(
        self, incoming: Tensor, bias: Tensor, outgoing: Tensor, optimizer: Optimizer | None
    ) -> None:
        """Append k units: ``incoming`` (k, fan_in) and ``bias`` (k,) in, ``outgoing``
        (fan_out, k) out; their optimizer moments start at zero, the others are kept."""
        ...

    def move_outgoing(self, update: Tensor) -> None:
        """Add ``update`` (fan_out, width + 1, bias last) to the next layer's weights."""
        ...
