"""The growable convolutional network: convolution blocks, a pooling or flatten head, dense layers.

``input (C, L) or (C, H, W) → conv blocks → mean over positions, or flatten → dense hidden layers
→ output``

Each block is a convolution (an odd kernel k, a stride, zero padding k // 2) followed by the
activation; the first ``conv_layers`` hidden widths are the blocks' output channels, the rest
the dense head's widths. Rows arrive flat (C·L or C·H·W values, channel-major, as numpy's
``reshape`` reads them) and are reshaped inside. A signal is convolved as an image of height 1
with a 1 × k kernel, so one code path serves both.

Every block's output channels and every dense layer's neurons grow. ``ConvLayer`` is a block as
a ``GrowableLayer``: a new channel's kernel reads an input patch, so the growth math runs
unchanged on the unfolded patches, one statistics row per (example, position)
(docs/conv-growth.md). The weights of all layers live in ``weights`` / ``biases`` as in
``GrowingMLP`` (kernels of shape (out, in, kh, kw) first), so growth, shrinking, optimizer state
and checkpoints treat them alike; the dense layers are ``HiddenLayer``s. Under the flatten head,
the first dense weight is (out, channels, positions): its second axis is the last block's
channels, as a block's next kernel's is, so adding, removing and merging a channel act on one
index there too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.grad import conv2d_input, conv2d_weight
from torch.optim import Optimizer

from growml.nn.activations import ACTIVATIONS, Activation, get_activation
from growml.nn.growable import Candidate, ForwardCache, LayerSample
from growml.nn.mlp import GrowingMLP, HiddenLayer, ModelSpec


@dataclass
class ConvCache(ForwardCache):
    """``ForwardCache`` of a convolutional network: ``inputs[k]`` of a block is its input map,
    ``inputs[conv_layers]`` the vector the head reads (pooled, or the flattened map);
    ``last_map`` the last block's output before pooling or flattening."""

    last_map: Tensor | None = None


def conv_output_length(length: int, kernel: int, stride: int) -> int:
    """Positions a convolution with zero padding ``kernel // 2`` gives along one axis."""
    return (length + 2 * (kernel // 2) - kernel) // stride + 1


# A block halves its input while the input is longer than this along its shorter side.
HALVING_ABOVE = 8


def default_strides(input_shape: Sequence[int], kernel: int, blocks: int) -> list[int]:
    """Each block's stride when the settings give none: 2 while the block's input is longer
    than ``HALVING_ABOVE`` along its shorter side (a signal's length), then 1, so that a small
    image keeps its resolution and a large one is halved down to it."""
    side, strides = min(input_shape[1:]), []
    for _ in range(blocks):
        strides.append(2 if side > HALVING_ABOVE else 1)
        side = conv_output_length(side, kernel, strides[-1])
    return strides


# How the dense layers read the last block's map: its mean over positions, or every value.
HEADS = ("pool", "flatten")


class GrowingConvNet(GrowingMLP):
    """Convolution blocks, global average pooling (or flattening) and a dense head, whose
    channels and widths can grow and shrink.

    Args:
        input_shape: (channels, length) of a signal or (channels, height, width) of an image.
        hidden_widths: the blocks' output channels, then the dense hidden widths (each ≥ 1).
        output_size: number of outputs.
        conv_layers: how many of ``hidden_widths`` are convolution blocks (at least one).
        kernel_size: the blocks' kernel length (odd).
        stride: the blocks' stride, one for all or one per block (a block inserted by depth
            growth has stride 1, ``insert_layer``).
        activation, init_scale, generator: as ``GrowingMLP``'s; kernels are initialised as
            PyTorch's ``nn.Conv2d``, U(±1/√fan_in) with fan_in = in_channels × kernel area.
        head: ``pool``, the dense layers read each channel's mean over the last block's
            positions; ``flatten``, every value of the last map (channel-major, as
            ``torch.flatten`` reads it).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] | list[int],
        hidden_widths: list[int] | tuple[int, ...],
        output_size: int,
        conv_layers: int,
        kernel_size: int,
        stride: int | Sequence[int] = 1,
        activation: str = "relu",
        init_scale: float = 1.0,
        generator: torch.Generator | None = None,
        head: str = "pool",
    ) -> None:
        nn.Module.__init__(self)
        shape = tuple(int(n) for n in input_shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"input_shape must be (C, L) or (C, H, W), got {shape}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        if not 1 <= conv_layers <= len(hidden_widths):
            raise ValueError(
                f"conv_layers must lie in 1 … {len(hidden_widths)} (the hidden layers), "
                f"got {conv_layers}"
            )
        strides = [stride] * conv_layers if isinstance(stride, int) else [int(s) for s in stride]
        if kernel_size < 1 or kernel_size % 2 == 0 or len(strides) != conv_layers:
            raise ValueError(
                f"kernel_size must be odd and there must be one stride per block (got "
                f"{kernel_size}, {strides} for {conv_layers} blocks)"
            )
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if min(strides) < 1:
            raise ValueError(f"every stride must be at least 1, got {strides}")
        if min([*hidden_widths, output_size]) < 1:
            raise ValueError(f"every layer needs at least one unit (got {list(hidden_widths)})")
        self.input_shape = shape
        self.input_size = math.prod(shape)
        self.output_size = output_size
        self.conv_layers = conv_layers
        self.kernel_size = kernel_size
        self.block_strides = strides
        self.head = head
        self.activation = get_activation(activation)
        signal = len(shape) == 2
        self.image_shape = (shape[0], 1, shape[1]) if signal else shape
        self.kernel = (1, kernel_size) if signal else (kernel_size, kernel_size)
        self.padding = (0, kernel_size // 2) if signal else (kernel_size // 2,) * 2
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        channels = [shape[0], *hidden_widths[:conv_layers]]
        area = math.prod(self.kernel)
        shapes = [
            (out, inp, *self.kernel) for inp, out in zip(channels, channels[1:], strict=False)
        ]
        sizes = [channels[-1], *hidden_widths[conv_layers:], output_size]
        shapes += [(out, inp) for inp, out in zip(sizes, sizes[1:], strict=False)]
        if head == "flatten":
            shapes[conv_layers] = (*shapes[conv_layers], math.prod(self.map_shapes[-1]))
        for weight_shape in shapes:
            fan_in = (
                math.prod(weight_shape[1:]) if len(weight_shape) < 4 else weight_shape[1] * area
            )
            bound = init_scale / math.sqrt(fan_in)
            weight = torch.empty(weight_shape).uniform_(-bound, bound, generator=generator)
            bias = torch.empty(weight_shape[0]).uniform_(-bound, bound, generator=generator)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))
        self.embedding = None
        self._trained_embedding = False
        self.gate = None
        self._layers = tuple(zip(self.weights, self.biases, strict=True))
        self.masks = None

    # ----------------------------------------------------------------------------- structure

    @property
    def map_shapes(self) -> list[tuple[int, int]]:
        """(height, width) of each block's output (height 1 for a signal)."""
        height, width = self.image_shape[1:]
        shapes = []
        for step_h, step_w in self.strides:
            height = conv_output_length(height, self.kernel[0], step_h)
            width = conv_output_length(width, self.kernel[1], step_w)
            shapes.append((height, width))
        return shapes

    @property
    def strides(self) -> list[tuple[int, int]]:
        """Each block's (vertical, horizontal) stride (1 vertically for a signal)."""
        signal = len(self.input_shape) == 2
        return [(1, s) if signal else (s, s) for s in self.block_strides]

    @property
    def channels(self) -> list[int]:
        """The blocks' output channels."""
        return self.hidden_widths[: self.conv_layers]

    def growable_layers(self) -> list[ConvLayer | HiddenLayer]:
        """The blocks, then the dense hidden layers."""
        return [
            ConvLayer(self, index) if index < self.conv_layers else HiddenLayer(self, index)
            for index in range(self.n_hidden_layers)
        ]

    def spec(self) -> ModelSpec:
        return ModelSpec(
            self.input_size,
            tuple(self.hidden_widths),
            self.output_size,
            self.activation.name,
            input_shape=self.input_shape,
            conv_layers=self.conv_layers,
            kernel_size=self.kernel_size,
            strides=tuple(self.block_strides),
            head=self.head,
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> GrowingConvNet:
        assert spec.input_shape is not None
        return cls(
            spec.input_shape,
            spec.hidden_widths,
            spec.output_size,
            spec.conv_layers,
            spec.kernel_size,
            spec.strides,
            spec.activation,
            head=spec.head,
        )

    def insert_layer(self, position: int, optimizer: Optimizer | None = None) -> None:
        """Insert a layer that leaves the network's function unchanged.

        ``position`` 1 … ``conv_layers``: a block above block ``position − 1``, as many
        channels as that block, stride 1, a kernel whose centre tap is the identity and zero
        bias. Its input is a ReLU map, never negative, and the padding keeps its positions, so
        the block gives back its input exactly. ``position`` above ``conv_layers``: a dense
        identity layer above dense layer ``position − 1`` (``GrowingMLP.insert_layer``); a
        dense layer is never inserted directly above the pooling. ``optimizer``: as
        ``GrowingMLP.insert_layer``'s.
        """
        if position > self.conv_layers:
            super().insert_layer(position, optimizer)
            return
        if self.activation.name != "relu":
            raise ValueError(f"an identity block needs relu, not {self.activation.name}")
        if position < 1:
            raise IndexError(
                f"a block is inserted above a block: position 1 … {self.conv_layers}, "
                f"got {position}"
            )
        reference = self.weights[position - 1]
        channels = reference.shape[0]
        kernel = reference.new_zeros(channels, channels, *self.kernel)
        centre_h, centre_w = self.kernel[0] // 2, self.kernel[1] // 2
        kernel[:, :, centre_h, centre_w] = torch.eye(
            channels, dtype=reference.dtype, device=reference.device
        )
        self.block_strides.insert(position, 1)
        self.conv_layers += 1
        self._insert_parameters(position, kernel, reference.new_zeros(channels), optimizer)

    def match_layers(
        self, weights: Mapping[str, Tensor], optimizer: Optimizer | None = None
    ) -> None:
        """``GrowingMLP.match_layers`` for blocks and dense layers apart: depth growth puts
        new blocks on top of the blocks (``insert_layer`` at ``conv_layers``) and new dense
        layers below the output, so the first blocks and the first dense layers are the
        ones both networks share."""
        kernels = [name for name in weights if name.startswith("weights.")]
        blocks = sum(weights[name].dim() == 4 for name in kernels)
        dense = len(kernels) - 1 - blocks
        while self.conv_layers < blocks:
            self.insert_layer(self.conv_layers, optimizer)
        while self.n_hidden_layers - self.conv_layers < dense:
            self.insert_layer(self.n_hidden_layers, optimizer)
        keep = [
            *range(blocks),
            *range(self.conv_layers, self.conv_layers + dense),
            self.n_hidden_layers,
        ]
        del self.block_strides[blocks:]
        self.conv_layers = blocks
        self._keep_layers(keep, optimizer)

    def unit_activations(self, cache: ForwardCache, layer: int) -> Tensor:
        """A block's output maps (rows, channels, H, W), as the next block reads them. The
        last block's: its means over the positions under the pooling head (all that head
        reads), its maps under the flatten head."""
        if layer == self.conv_layers - 1 and self.head == "flatten":
            assert isinstance(cache, ConvCache) and cache.last_map is not None
            return cache.last_map
        return cache.inputs[layer + 1]

    # ------------------------------------------------------------------------------ forward

    def _conv(self, h: Tensor, weight: Tensor, bias: Tensor, block: int) -> Tensor:
        return F.conv2d(h, weight, bias, self.strides[block], self.padding)

    def image(self, x: Tensor) -> Tensor:
        """Flat rows as (N, C, H, W) maps (H = 1 for a signal)."""
        return x.reshape(x.shape[0], *self.image_shape)

    def continue_from(self, layer: int, preactivation: Tensor) -> Tensor:
        """The network's output given hidden layer ``layer``'s pre-activation (the output's
        when ``layer`` is the output layer)."""
        a = preactivation
        for index in range(layer + 1, len(self._layers)):
            h = self.activation.fn(a)
            if index == self.conv_layers:
                h = self._head_input(h)
            a = self._preactivation(index, h)
        return a

    def _head_input(self, last_map: Tensor) -> Tensor:
        """What the dense layers read of the last block's map (N, C, H, W): (N, C) means or
        (N, C·H·W) values."""
        return last_map.flatten(1) if self.head == "flatten" else last_map.mean((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """The network's output (logits for classification)."""
        return self.forward_from(0, self.image(x))

    def layer_input(self, x: Tensor, layer: int) -> Tensor:
        """``GrowingMLP.layer_input``: a block's input map, or the vector a dense layer reads
        (the head's first: pooled or flattened)."""
        h = self.image(x)
        for index in range(layer):
            h = self.activation.fn(self._preactivation(index, h))
            if index == self.conv_layers - 1:
                h = self._head_input(h)
        return h

    def forward_from(self, layer: int, h: Tensor) -> Tensor:
        """``GrowingMLP.forward_from``."""
        return self.continue_from(layer, self._preactivation(layer, h))

    def _preactivation(self, layer: int, h: Tensor) -> Tensor:
        weight, bias = self._layers[layer]
        if layer < self.conv_layers:
            return self._conv(h, weight, bias, layer)
        return torch.addmm(bias, h, weight.flatten(1).t())

    def forward_cached(self, x: Tensor) -> ConvCache:
        """Forward pass keeping what ``backward`` and the growth statistics need."""
        inputs, preactivations = [], []
        h, last_map = self.image(x), None
        for index, (weight, bias) in enumerate(self._layers[:-1]):
            if index == self.conv_layers:
                last_map, h = h, self._head_input(h)
            inputs.append(h)
            if index < self.conv_layers:
                a = self._conv(h, weight, bias, index)
            else:
                a = h @ weight.flatten(1).t() + bias
            preactivations.append(a)
            h = self.activation.fn(a)
        if self.conv_layers == self.n_hidden_layers:
            last_map, h = h, self._head_input(h)
        inputs.append(h)
        weight, bias = self._layers[-1]
        output = torch.addmm(bias, h, weight.flatten(1).t())
        return ConvCache(inputs, preactivations, output, last_map=last_map)

    def backward(
        self, cache: ForwardCache, output_grad: Tensor, parameter_grads: bool = True
    ) -> list[Tensor]:
        """``GrowingMLP.backward`` through the blocks: ∂L/∂a of every layer (maps of shape
        (batch, channels, H, W) for the blocks), every ``.grad`` set unless
        ``parameter_grads`` is false. Call under ``torch.no_grad()``."""
        assert isinstance(cache, ConvCache)
        derivative = self.activation.derivative
        grads: list[Tensor] = [output_grad] * len(self._layers)
        delta = output_grad
        for index in range(len(self._layers) - 1, -1, -1):
            weight, bias = self._layers[index]
            layer_input = cache.inputs[index]
            grads[index] = delta
            conv = index < self.conv_layers
            if parameter_grads:
                if conv:
                    weight.grad = conv2d_weight(
                        layer_input, weight.shape, delta, self.strides[index], self.padding
                    )
                    bias.grad = delta.sum((0, 2, 3))
                else:
                    weight.grad = torch.mm(delta.t(), layer_input).reshape(weight.shape)
                    bias.grad = delta.sum(0)
            if index == 0:
                break
            if conv:
                delta = conv2d_input(
                    layer_input.shape, weight, delta, self.strides[index], self.padding
                )
            elif index == self.conv_layers:
                last = cache.last_map
                delta = torch.mm(delta, weight.flatten(1))
                if self.head == "flatten":
                    delta = delta.reshape(last.shape)
                else:  # the pooled vector is the mean of the map over its positions
                    delta = delta[:, :, None, None].expand_as(last) / (
                        last.shape[2] * last.shape[3]
                    )
                layer_input = last
            else:
                delta = torch.mm(delta, weight)
            delta = delta * derivative(cache.preactivations[index - 1], layer_input)
        return grads


class ConvLayer:
    """Block ``index`` of a ``GrowingConvNet`` as a ``GrowableLayer``: a unit is an output
    channel, its incoming weights a kernel (flattened in ``unfold``'s order: channel, then
    kernel position), its outgoing weights the centre tap of the next block's kernel, or a
    column of the head's first weight after the pooling. Under the flatten head a new channel's
    outgoing weights start equal at every position, ``ω / P``: it then adds ``ω`` times its
    mean activation, the pooled head's feature, so it is scored as there (docs/conv-growth.md)."""

    def __init__(self, model: GrowingConvNet, index: int) -> None:
        if not 0 <= index < model.conv_layers:
            raise IndexError(f"block {index} does not exist ({model.conv_layers} blocks)")
        self.model = model
        self.index = index

    @property
    def _weight(self) -> nn.Parameter:
        return self.model.weights[self.index]

    @property
    def _next(self) -> nn.Parameter:
        return self.model.weights[self.index + 1]

    @property
    def reads_block(self) -> bool:
        """Whether the next layer is a block (else the head)."""
        return self.index + 1 < self.model.conv_layers

    @property
    def _flattened(self) -> bool:
        """Whether the next layer is the dense layer of a flatten head."""
        return not self.reads_block and self.model.head == "flatten"

    @property
    def fan_in(self) -> int:
        return math.prod(self._weight.shape[1:])

    @property
    def fan_out(self) -> int:
        return self._next.shape[0]

    @property
    def width(self) -> int:
        return self._weight.shape[0]

    @property
    def activation(self) -> Activation:
        return self.model.activation

    def unit_cost(self) -> int:
        return self.fan_in + 1 + math.prod(self._next.shape[2:]) * self.fan_out

    def _centre(self) -> tuple[int, int]:
        return self._next.shape[2] // 2, self._next.shape[3] // 2

    def outgoing(self) -> Tensor:
        if self.reads_block:
            return self._next.detach()[:, :, self._centre()[0], self._centre()[1]]
        if self._flattened:  # what a channel's mean activation meets, as a new one's ω
            return self._next.detach().sum(2)
        return self._next.detach()

    def _centres(self, maps: Tensor) -> Tensor:
        """The positions of this block's output that the next block's kernel centres sit on,
        one per position of the next block's output."""
        height, width = self.model.map_shapes[self.index + 1]
        step_h, step_w = self.model.strides[self.index + 1]
        return maps[:, :, ::step_h, ::step_w][:, :, :height, :width]

    def sample(self, cache: ForwardCache, gradients: list[Tensor]) -> LayerSample:
        model, k = self.model, self.index
        below = cache.inputs[k]
        patches = F.unfold(below, model.kernel, padding=model.padding, stride=model.strides[k])
        height, width = model.map_shapes[k]
        patches = patches.reshape(below.shape[0], self.fan_in, height, width)
        if self.reads_block:
            rows = map_rows(self._centres(patches))
            current = map_rows(self._centres(cache.inputs[k + 1]))
            gradient = map_rows(gradients[k + 1])
            return LayerSample(rows, current, gradient, positions=rows.shape[0] // len(below))
        # Read through the pooling: one statistics row per example, its patches averaged.
        return LayerSample(
            map_rows(patches), cache.inputs[k + 1], gradients[k + 1], pooled=height * width
        )

    def extended_output(
        self, cache: ForwardCache, candidate: Candidate
    ) -> Callable[[float], Tensor]:
        model, k = self.model, self.index
        activation = model.activation.fn
        following = cache.preactivations[k + 1] if k + 1 < model.n_hidden_layers else cache.output
        dtype = following.dtype
        alpha, omega = candidate.alpha.to(dtype), candidate.omega.to(dtype)
        kernels = alpha[:, :-1].reshape(alpha.shape[0], *self._weight.shape[1:])
        new_preactivation = model._conv(cache.inputs[k], kernels, alpha[:, -1], k)
        current = cache.inputs[k + 1]
        if self.reads_block:
            new_preactivation, current = self._centres(new_preactivation), self._centres(current)
        weight_shift = None
        if candidate.weight_update is not None:
            update = candidate.weight_update.to(dtype)
            weight_shift = _mix(update[:, :-1], current) + _expand(update[:, -1], current)

        @torch.no_grad()
        def output_at(step: float) -> Tensor:
            incoming, outgoing = candidate.scales(step)
            new = activation(incoming * new_preactivation)
            if not self.reads_block:
                new = new.mean((2, 3))
            a = following + outgoing * _mix(omega, new)
            if weight_shift is not None:
                a = a + step * weight_shift
            return model.continue_from(k + 1, a)

        return output_at

    def add_units(
        self, incoming: Tensor, bias: Tensor, outgoing: Tensor, optimizer: Optimizer | None
    ) -> None:
        units = incoming.shape[0]
        kernels = incoming.reshape(units, *self._weight.shape[1:])
        if self.reads_block:
            taps = outgoing.new_zeros(self.fan_out, units, *self._next.shape[2:])
            taps[:, :, self._centre()[0], self._centre()[1]] = outgoing
            outgoing = taps
        elif self._flattened:
            positions = self._next.shape[2]
            outgoing = outgoing[:, :, None].expand(-1, -1, positions) / positions
        self.model.add_neurons(self.index, kernels, bias, outgoing, optimizer)

    def move_outgoing(self, update: Tensor) -> None:
        weight, bias = self._next, self.model.biases[self.index + 1]
        with torch.no_grad():
            if self.reads_block:
                row, column = self._centre()
                weight[:, :, row, column] += update[:, :-1].to(weight.dtype)
            else:
                weight.add_(update[:, :-1].reshape(weight.shape).to(weight.dtype))
            bias.add_(update[:, -1].to(bias.dtype))


def map_rows(maps: Tensor) -> Tensor:
    """(N, F, H, W) maps (or (N, F, P)) as (N·H·W, F) rows, example-major."""
    return maps.flatten(2).transpose(1, 2).reshape(-1, maps.shape[1])


def _mix(weight: Tensor, h: Tensor) -> Tensor:
    """``weight`` (out, in) applied to the channels of maps (N, in, H, W) or vectors (N, in)."""
    if h.dim() == 2:
        return h @ weight.T
    return torch.einsum("oi,nihw->nohw", weight, h)


def _expand(bias: Tensor, like: Tensor) -> Tensor:
    """``bias`` (out,) broadcast against maps or vectors like ``like``."""
    return bias if like.dim() == 2 else bias[None, :, None, None]


def network_from_spec(spec: ModelSpec) -> GrowingMLP:
    """An uninitialised network of ``spec``'s architecture (an MLP or a convolutional
    network), ready for ``load_state_dict``."""
    return GrowingConvNet.from_spec(spec) if spec.conv_layers else GrowingMLP.from_spec(spec)
