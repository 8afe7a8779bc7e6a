"""The growable MLP: fully connected layers whose hidden widths change during training.

Shape changes swap a parameter's ``.data`` and keep the ``Parameter`` object itself, so an
optimizer that holds it never needs rebuilding; each change returns ``ParamResize`` records
that ``growml.nn.optimizer_state`` applies to the optimizer's state. Each hidden layer is a
``HiddenLayer``: the ``GrowableLayer`` (``growml/nn/growable.py``) the growth engine grows.

Training uses ``forward_cached`` + ``backward``: a hand-derived backward pass that writes every
parameter's ``.grad`` and returns the pre-activation gradients ``∂ℓ/∂a_l`` of every layer (what
the growth statistics need). For tiny networks it is about 1.4× faster per step than autograd,
whose per-node overhead dominates at these sizes. ``forward`` is plain differentiable torch
for everything else (evaluation, export, tests against autograd).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from growml.nn.activations import ACTIVATIONS, Activation, get_activation
from growml.nn.births import Births
from growml.nn.embeddings import NumericEmbedding, embedding_from_spec
from growml.nn.growable import Candidate, ForwardCache, LayerSample, ParamResize
from growml.nn.optimizer_state import carry_state

# The feature gate's learning-rate multiplier: its parameter θ is g / GATE_MULTIPLIER, so that
# Adam, whose steps do not depend on a gradient's scale, moves g this many times as fast as a
# weight. Measured in docs/feature-gate.md.
GATE_MULTIPLIER = 6.0


@dataclass(frozen=True)
class ModelSpec:
    """The architecture: enough to rebuild the network before loading its weights."""

    input_size: int
    hidden_widths: tuple[int, ...]
    output_size: int
    activation: str = "relu"
    embedding: dict[str, Any] | None = None  # NumericEmbedding.spec(); None: raw inputs
    feature_gate: bool = False
    # A convolutional network (nn/conv.py): the input's (C, L) or (C, H, W), how many of
    # hidden_widths are convolution blocks, their kernel, each block's stride and how the
    # dense layers read the last map (pool or flatten). 0 blocks: an MLP.
    input_shape: tuple[int, ...] | None = None
    conv_layers: int = 0
    kernel_size: int = 0
    strides: tuple[int, ...] = ()
    head: str = "pool"

    def to_dict(self) -> dict[str, Any]:
        data = {
            **asdict(self),
            "hidden_widths": list(self.hidden_widths),
            "strides": list(self.strides),
        }
        if self.embedding is None:
            del data["embedding"]
        if not self.feature_gate:
            del data["feature_gate"]
        if self.conv_layers:
            data["input_shape"] = list(self.input_shape or ())
        else:
            for name in ("input_shape", "conv_layers", "kernel_size", "strides", "head"):
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            input_size=int(data["input_size"]),
            hidden_widths=tuple(int(w) for w in data["hidden_widths"]),
            output_size=int(data["output_size"]),
            activation=str(data["activation"]),
            embedding=data.get("embedding"),
            feature_gate=bool(data.get("feature_gate", False)),
            input_shape=tuple(int(n) for n in data["input_shape"])
            if "input_shape" in data
            else None,
            conv_layers=int(data.get("conv_layers", 0)),
            kernel_size=int(data.get("kernel_size", 0)),
            strides=tuple(int(s) for s in data.get("strides", ())),
            head=str(data.get("head", "pool")),
        )


class GrowingMLP(nn.Module):
    """An MLP ``input → hidden_widths → output`` whose hidden widths can grow and shrink.

    Args:
        input_size: number of input features.
        hidden_widths: width of each hidden layer (at least one layer, each width ≥ 1).
        output_size: number of outputs (classes, 1 for binary or regression).
        activation: one of ``relu``, ``tanh``, ``gelu``, ``selu``.
        init_scale: multiplier on PyTorch's default ``nn.Linear`` initialisation.
        generator: random generator for the initial weights (for reproducible runs).
        embedding: what the first hidden layer reads in place of the raw inputs
            (``growml/nn/embeddings.py``); None: the inputs themselves.
        feature_gate: a trained scale on each column the first hidden layer reads
            (docs/feature-gate.md): that layer reads ``x ⊙ g``. ``g = GATE_MULTIPLIER·θ`` with
            ``θ`` the parameter ``gate``, so that Adam moves ``g`` ``GATE_MULTIPLIER`` times as
            fast as a weight; ``g`` starts at 1.
    """

    # Convolution blocks below the dense layers (growml/nn/conv.py); an MLP has none.
    conv_layers: int = 0
    # Each weight's value when it was born (growml.diagnose), when recorded.
    births: Births | None = None

    def __init__(
        self,
        input_size: int,
        hidden_widths: list[int] | tuple[int, ...],
        output_size: int,
        activation: str = "relu",
        init_scale: float = 1.0,
        generator: torch.Generator | None = None,
        embedding: NumericEmbedding | None = None,
        feature_gate: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        if embedding is not None and embedding.input_size != input_size:
            raise ValueError(f"the embedding reads {embedding.input_size} inputs, not {input_size}")
        first = input_size if embedding is None else embedding.output_size
        sizes = [first, *hidden_widths, output_size]
        if len(hidden_widths) < 1 or min(sizes) < 1:
            raise ValueError(f"every layer needs at least one unit (got {sizes})")
        self.input_size = input_size
        self.output_size = output_size
        self.activation = get_activation(activation)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            # PyTorch's nn.Linear default: U(−1/√fan_in, 1/√fan_in) for weight and bias.
            bound = init_scale / math.sqrt(fan_in)
            weight = torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=generator)
            bias = torch.empty(fan_out).uniform_(-bound, bound, generator=generator)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))
        self.embedding = embedding
        self._trained_embedding = embedding is not None and embedding.trained
        self.gate = (
            nn.Parameter(torch.full((first,), 1.0 / GATE_MULTIPLIER)) if feature_gate else None
        )
        # Parameters keep their identity across shape changes, so this tuple stays valid.
        self._layers = tuple(zip(self.weights, self.biases, strict=True))
        # Unstructured pruning: 0/1 per weight, re-applied after every optimizer step.
        self.masks: list[Tensor] | None = None

    # ----------------------------------------------------------------------------- structure

    @property
    def hidden_widths(self) -> list[int]:
        return [weight.shape[0] for weight, _ in self._layers[:-1]]

    @property
    def n_hidden_layers(self) -> int:
        return len(self._layers) - 1

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def growable_layers(self) -> list[HiddenLayer]:
        """The hidden layers, as the growth engine grows them."""
        return [HiddenLayer(self, index) for index in range(self.n_hidden_layers)]

    def spec(self) -> ModelSpec:
        return ModelSpec(
            self.input_size,
            tuple(self.hidden_widths),
            self.output_size,
            self.activation.name,
            None if self.embedding is None else self.embedding.spec(),
            self.gate is not None,
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> GrowingMLP:
        """An uninitialised network of this architecture, ready for ``load_state_dict``."""
        embedding = (
            None if spec.embedding is None else embedding_from_spec(spec.input_size, spec.embedding)
        )
        return cls(
            spec.input_size,
            spec.hidden_widths,
            spec.output_size,
            spec.activation,
            embedding=embedding,
            feature_gate=spec.feature_gate,
        )

    def gate_values(self) -> Tensor | None:
        """``g``, the scale on each column the first hidden layer reads (None without a gate)."""
        return None if self.gate is None else self.gate * GATE_MULTIPLIER

    def gate_by_column(self) -> list[float] | None:
        """The gate of each prepared input column: the largest |g| over the inputs it gives the
        first hidden layer (one without an embedding, its embedded outputs with one); None
        without a gate."""
        if self.gate is None:
            return None
        values = self.gate_values().detach().abs().tolist()
        if self.embedding is None:
            return values
        strongest = [0.0] * self.input_size
        for column, value in zip(self.embedding.output_columns(), values, strict=True):
            strongest[column] = max(strongest[column], value)
        return strongest

    def folded_layers(self) -> list[tuple[Tensor, Tensor]]:
        """Every layer's (weight, bias), detached, the gate folded into the first weight
        (``W₀(g ⊙ x) = (W₀ diag g) x``): the same function without the gate."""
        layers = [(weight.detach(), bias.detach()) for weight, bias in self._layers]
        if self.gate is not None:
            layers[0] = (layers[0][0] * self.gate_values().detach(), layers[0][1])
        return layers

    # ------------------------------------------------------------------------------ forward

    def forward(self, x: Tensor) -> Tensor:
        """The network's output (logits for classification)."""
        return self.forward_from(0, self.layer_input(x, 0))

    def layer_input(self, x: Tensor, layer: int) -> Tensor:
        """What layer ``layer`` (0 … ``n_hidden_layers``, the output layer last) reads for
        the rows ``x``: the embedded, gated inputs for the first, the activations of the
        layer below for the others. With ``forward_from``, the forward pass in two parts."""
        h = x if self.embedding is None else self.embedding(x)
        if self.gate is not None:
            h = h * self.gate_values()
        for weight, bias in self._layers[:layer]:
            h = self.activation.fn(torch.addmm(bias, h, weight.t()))
        return h

    def forward_from(self, layer: int, h: Tensor) -> Tensor:
        """The network's output given what layer ``layer`` reads (``layer_input``)."""
        last = len(self._layers) - 1
        for index in range(layer, len(self._layers)):
            weight, bias = self._layers[index]
            a = torch.addmm(bias, h, weight.t())
            h = a if index == last else self.activation.fn(a)
        return h

    def forward_cached(self, x: Tensor) -> ForwardCache:
        """Forward pass keeping what ``backward`` needs. Call under ``torch.no_grad()``.

        ``inputs[0]`` is what the first hidden layer reads: the embedding's output when the
        network has one, times the gate when it has one (``ungated`` keeps it before)."""
        inputs, preactivations = [], []
        h, embedded, ungated = x, None, None
        if self.embedding is not None:
            h, embedded = self.embedding.forward_cached(x)
        if self.gate is not None:
            ungated, h = h, h * self.gate_values()
        for weight, bias in self._layers[:-1]:
            inputs.append(h)
            a = torch.addmm(bias, h, weight.t())
            preactivations.append(a)
            h = self.activation.fn(a)
        inputs.append(h)
        weight, bias = self._layers[-1]
        output = torch.addmm(bias, h, weight.t())
        return ForwardCache(inputs, preactivations, output, embedded, ungated)

    def backward(
        self, cache: ForwardCache, output_grad: Tensor, parameter_grads: bool = True
    ) -> list[Tensor]:
        """Backpropagate ``output_grad = ∂L/∂output``: set every ``.grad`` (unless
        ``parameter_grads`` is false) and return ``∂L/∂a_l``.

        The returned list has one entry per layer (hidden layers, then the output layer), each
        of shape (batch, width). With a gate, ∂L/∂θ = GATE_MULTIPLIER·Σ_rows (δ₀ W₀) ⊙ u, u what
        the gate scales. A trained embedding gets its gradients from ∂L/∂(its outputs) =
        δ₀ W₀ (its columns of W₀), times the gate when there is one. Call under
        ``torch.no_grad()``.
        """
        activation = self.activation
        preactivation_grads: list[Tensor] = [output_grad] * len(self._layers)
        delta = output_grad
        for index in range(len(self._layers) - 1, -1, -1):
            weight, bias = self._layers[index]
            layer_input = cache.inputs[index]
            preactivation_grads[index] = delta
            if parameter_grads:
                weight.grad = torch.mm(delta.t(), layer_input)
                bias.grad = delta.sum(0)
            if index > 0:
                delta = activation.backprop(
                    torch.mm(delta, weight), cache.preactivations[index - 1], layer_input
                )
            elif parameter_grads and (self.gate is not None or self._trained_embedding):
                self._input_backward(cache, delta, weight)
        return preactivation_grads

    def _input_backward(self, cache: ForwardCache, delta: Tensor, weight: Tensor) -> None:
        """The gate's and the embedding's gradients from δ₀, the first layer's."""
        input_grad = torch.mm(delta, weight)
        if self.gate is not None:
            self.gate.grad = (input_grad * cache.ungated).sum(0).mul_(GATE_MULTIPLIER)
            input_grad = input_grad * self.gate_values()
        if self._trained_embedding:
            embedding = self.embedding
            embedding.backward(cache.embedding, input_grad[:, : embedding.embedded_size])

    def hold_gate(self) -> None:
        """Zero the gate's gradient, so that the optimizer step leaves it where it is (Adam's
        moments of a gradient that was always zero are zero)."""
        if self.gate is not None:
            self.gate.grad.zero_()

    def add_gate_penalty(self, strength: float) -> None:
        """Add the gradient of ``strength·Σ|g|`` (an L1 penalty on the gate) to the gate's."""
        if self.gate is not None and strength > 0:
            self.gate.grad.add_(self.gate.sign(), alpha=strength * GATE_MULTIPLIER)

    def unit_activations(self, cache: ForwardCache, layer: int) -> Tensor:
        """Hidden layer ``layer``'s activations in ``cache``, (rows, neurons), as the next
        layer reads them."""
        return cache.inputs[layer + 1]

    # ------------------------------------------------------------------------ shape changes

    def add_neurons(
        self,
        layer: int,
        incoming: Tensor,
        incoming_bias: Tensor,
        outgoing: Tensor,
        optimizer: Optimizer | None = None,
    ) -> list[ParamResize]:
        """Append k neurons to hidden layer ``layer`` (0-based).

        Args:
            incoming: (k, fan_in) rows of the layer's weight ((k, in, kh, kw) kernels of a
                convolution block).
            incoming_bias: (k,) entries of its bias.
            outgoing: (fan_out, k) columns of the next layer's weight ((fan_out, k, kh, kw)
                when it is a block). Zero columns leave the network's function unchanged.
            optimizer: the optimizer training the network: the new neurons' moments start at
                zero, the others are kept.
        """
        self._check_hidden(layer)
        weight, bias = self._layers[layer]
        next_weight = self._layers[layer + 1][0]
        k = incoming.shape[0]
        shape_in = (k, *weight.shape[1:])
        if incoming.shape != shape_in or incoming_bias.shape != (k,):
            raise ValueError(
                f"incoming weights must be {shape_in} with a ({k},) bias, "
                f"got {tuple(incoming.shape)} and {tuple(incoming_bias.shape)}"
            )
        shape_out = (next_weight.shape[0], k, *next_weight.shape[2:])
        if outgoing.shape != shape_out:
            raise ValueError(f"outgoing weights must be {shape_out}, got {tuple(outgoing.shape)}")
        resizes = [
            ParamResize(weight, 0, weight.shape[0], append=k),
            ParamResize(bias, 0, bias.shape[0], append=k),
            ParamResize(next_weight, 1, next_weight.shape[1], append=k),
        ]
        with torch.no_grad():
            weight.data = torch.cat([weight.data, incoming.to(weight)], 0)
            bias.data = torch.cat([bias.data, incoming_bias.to(bias)], 0)
            next_weight.data = torch.cat([next_weight.data, outgoing.to(next_weight)], 1)
        return self._resized(resizes, optimizer)

    def remove_neurons(
        self, layer: int, indices: Tensor | list[int], optimizer: Optimizer | None = None
    ) -> list[ParamResize]:
        """Remove the neurons at ``indices`` from hidden layer ``layer``; at least one must stay.
        ``optimizer``: the optimizer training the network, whose state of them goes too."""
        self._check_hidden(layer)
        weight, bias = self._layers[layer]
        next_weight = self._layers[layer + 1][0]
        width = weight.shape[0]
        drop = torch.as_tensor(indices, dtype=torch.long, device=weight.device).unique()
        if drop.numel() and (drop.min() < 0 or drop.max() >= width):
            raise IndexError(f"neuron indices must lie in [0, {width}), got {drop.tolist()}")
        mask = torch.ones(width, dtype=torch.bool, device=weight.device)
        mask[drop] = False
        keep = mask.nonzero().flatten()
        if keep.numel() == 0:
            raise ValueError(f"cannot remove all {width} neurons of hidden layer {layer}")
        resizes = [
            ParamResize(weight, 0, width, keep=keep),
            ParamResize(bias, 0, width, keep=keep),
            ParamResize(next_weight, 1, width, keep=keep),
        ]
        with torch.no_grad():
            weight.data = weight.data.index_select(0, keep)
            bias.data = bias.data.index_select(0, keep)
            next_weight.data = next_weight.data.index_select(1, keep)
        return self._resized(resizes, optimizer)

    def insert_layer(self, position: int, optimizer: Optimizer | None = None) -> None:
        """Insert a hidden layer at ``position`` (1 … ``n_hidden_layers``: above hidden layer
        ``position − 1``) that leaves the network's function unchanged: as wide as the layer
        below, identity weights and zero biases. The layer below's outputs are ReLU outputs,
        never negative, so ReLU(I·h + 0) = h exactly; other activations have no such identity.

        ``optimizer``: the optimizer training the network; the new parameters join its group
        (their moments start at zero) in the network's parameter order, so that a checkpoint
        of the optimizer restores into a network rebuilt from its widths.
        """
        if self.activation.name != "relu":
            raise ValueError(f"an identity layer needs relu, not {self.activation.name}")
        if not 1 <= position <= self.n_hidden_layers:
            raise IndexError(
                f"a layer is inserted above a hidden layer: position 1 … {self.n_hidden_layers}, "
                f"got {position}"
            )
        width = self.hidden_widths[position - 1]
        below = self.weights[position - 1]
        weight = torch.eye(width, dtype=below.dtype, device=below.device)
        self._insert_parameters(position, weight, below.new_zeros(width), optimizer)

    def _insert_parameters(
        self, position: int, weight: Tensor, bias: Tensor, optimizer: Optimizer | None
    ) -> None:
        """Make ``weight`` and ``bias`` layer ``position``'s parameters, the layers from there
        on moving up one; they join ``optimizer``'s group in the network's parameter order."""
        weights, biases = list(self.weights), list(self.biases)
        # Ordinary tensors even when training (in inference mode) inserts the layer: a
        # parameter made of an inference tensor could never be changed outside it.
        with torch.inference_mode(False):
            weights.insert(position, nn.Parameter(weight.clone()))
            biases.insert(position, nn.Parameter(bias.clone()))
        self.weights, self.biases = nn.ParameterList(weights), nn.ParameterList(biases)
        self._layers = tuple(zip(self.weights, self.biases, strict=True))
        if self.masks is not None:
            self.masks.insert(position, torch.ones_like(weight))
        if self.births is not None:
            self.births.added([self.weights[position], self.biases[position]])
        if optimizer is not None:
            optimizer.param_groups[0]["params"] = list(self.parameters())

    def match_layers(
        self, weights: Mapping[str, Tensor], optimizer: Optimizer | None = None
    ) -> None:
        """Insert or drop hidden layers so that the network has the layers of ``weights``
        (named parameters of this network at another time: the best epoch's, a checkpoint's),
        ready for them to be loaded. Depth growth inserts layers only below the output, so
        the first hidden layers are the ones both share; a layer inserted here is an identity
        layer (``insert_layer``) until the weights replace it. ``optimizer``: its group
        follows the network's parameters."""
        layers = sum(name.startswith("weights.") for name in weights) - 1
        while self.n_hidden_layers < layers:
            self.insert_layer(self.n_hidden_layers, optimizer)
        self._keep_layers([*range(layers), self.n_hidden_layers], optimizer)

    def _keep_layers(self, keep: list[int], optimizer: Optimizer | None) -> None:
        """Keep only layers ``keep`` (indices, in order, the output layer's last); ``optimizer``'s
        group follows the network's parameters, and forgets the state of those that go."""
        gone = set(range(len(self.weights))) - set(keep)
        if optimizer is not None:
            for index in gone:
                optimizer.state.pop(self.weights[index], None)
                optimizer.state.pop(self.biases[index], None)
        if self.births is not None:
            self.births.dropped(p for k in gone for p in (self.weights[k], self.biases[k]))
        self.weights = nn.ParameterList([self.weights[k] for k in keep])
        self.biases = nn.ParameterList([self.biases[k] for k in keep])
        self._layers = tuple(zip(self.weights, self.biases, strict=True))
        if self.masks is not None:
            self.masks = [self.masks[k] for k in keep]
        if optimizer is not None:
            optimizer.param_groups[0]["params"] = list(self.parameters())

    def _resized(
        self, resizes: list[ParamResize], optimizer: Optimizer | None
    ) -> list[ParamResize]:
        for resize in resizes:
            resize.param.grad = None
        if optimizer is not None:
            carry_state(optimizer, resizes)
        if self.births is not None:
            self.births.resized(resizes)
        return resizes

    def _check_hidden(self, layer: int) -> None:
        if not 0 <= layer < self.n_hidden_layers:
            raise IndexError(f"hidden layer {layer} does not exist ({self.n_hidden_layers} layers)")


class HiddenLayer:
    """Hidden layer ``index`` of a ``GrowingMLP`` as a ``GrowableLayer``: its neurons read the
    previous layer's output and write into the next layer's pre-activation."""

    def __init__(self, model: GrowingMLP, index: int) -> None:
        model._check_hidden(index)
        self.model = model
        self.index = index

    @property
    def fan_in(self) -> int:
        return math.prod(self.model.weights[self.index].shape[1:])

    @property
    def fan_out(self) -> int:
        return self.model.weights[self.index + 1].shape[0]

    @property
    def width(self) -> int:
        return self.model.weights[self.index].shape[0]

    @property
    def activation(self) -> Activation:
        return self.model.activation

    def unit_cost(self) -> int:
        return self.fan_in + 1 + self.fan_out

    def outgoing(self) -> Tensor:
        return self.model.weights[self.index + 1].detach()

    def sample(self, cache: ForwardCache, gradients: list[Tensor]) -> LayerSample:
        k = self.index
        return LayerSample(cache.inputs[k], cache.inputs[k + 1], gradients[k + 1])

    def extended_output(
        self, cache: ForwardCache, candidate: Candidate
    ) -> Callable[[float], Tensor]:
        model, layer = self.model, self.index
        activation = model.activation.fn
        below, current = cache.inputs[layer], cache.inputs[layer + 1]
        following = (
            cache.preactivations[layer + 1] if layer + 1 < model.n_hidden_layers else cache.output
        )
        dtype = following.dtype
        alpha, omega = candidate.alpha.to(dtype), candidate.omega.to(dtype)
        new_preactivation = torch.addmm(alpha[:, -1], below, alpha[:, :-1].T)
        weight_shift = None
        if candidate.weight_update is not None:
            update = candidate.weight_update.to(dtype)
            weight_shift = torch.addmm(update[:, -1], current, update[:, :-1].T)
        upper_layers = list(zip(model.weights, model.biases, strict=True))[layer + 2 :]

        @torch.no_grad()
        def output_at(step: float) -> Tensor:
            incoming, outgoing = candidate.scales(step)
            a = following + (outgoing * activation(incoming * new_preactivation)) @ omega.T
            if weight_shift is not None:
                a = a + step * weight_shift
            for weight, bias in upper_layers:
                a = torch.addmm(bias, activation(a), weight.T)
            return a

        return output_at

    def add_units(
        self, incoming: Tensor, bias: Tensor, outgoing: Tensor, optimizer: Optimizer | None
    ) -> None:
        # Rows of the (out, channels, positions) weight a flatten head's first layer has.
        incoming = incoming.reshape(len(incoming), *self.model.weights[self.index].shape[1:])
        self.model.add_neurons(self.index, incoming, bias, outgoing, optimizer)

    def move_outgoing(self, update: Tensor) -> None:
        weight, bias = self.model.weights[self.index + 1], self.model.biases[self.index + 1]
        with torch.no_grad():
            weight.add_(update[:, :-1].to(weight.dtype))
            bias.add_(update[:, -1].to(bias.dtype))
