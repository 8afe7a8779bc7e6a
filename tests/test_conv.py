"""The convolutional network and its growable blocks, checked against independent float64
computations: torch's own Conv1d / Conv2d, autograd, and the dense formulas on the unfolded
patches (docs/conv-growth.md)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from growml.growth.engine import apply_candidate
from growml.losses import default_loss
from growml.nn.conv import ConvLayer, GrowingConvNet, network_from_spec
from growml.nn.growable import Candidate, pooled_mean
from growml.nn.mlp import HiddenLayer, ModelSpec

# (input shape, hidden widths, conv layers, kernel, stride, head)
ARCHITECTURES = [
    ((1, 20), [3, 4, 5], 2, 5, 2, "pool"),  # a signal: two blocks and a dense layer
    ((2, 9), [3, 2], 2, 3, 1, "pool"),  # two channels, stride 1, no dense hidden layer
    ((1, 7, 6), [3, 4, 2], 2, 3, 2, "pool"),  # an image, rectangular
    ((3, 5, 5), [4], 1, 3, 1, "pool"),  # one block straight into the output
    ((1, 20), [3, 4, 5], 2, 5, 2, "flatten"),
    ((1, 7, 6), [3, 4, 2], 2, 3, 2, "flatten"),
    ((3, 5, 5), [4], 1, 3, 1, "flatten"),  # the flattened map straight into the output
]


def _network(
    shape, widths, blocks, kernel, stride, head="pool", outputs=3, seed=0
) -> GrowingConvNet:
    generator = torch.Generator().manual_seed(seed)
    net = GrowingConvNet(
        shape, widths, outputs, blocks, kernel, stride, generator=generator, head=head
    )
    return net.double()


def _rows(shape, n=6, seed=1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    size = 1
    for dim in shape:
        size *= dim
    return torch.randn(n, size, generator=generator, dtype=torch.float64)


def _torch_reference(net: GrowingConvNet) -> nn.Module:
    """The same network built from torch's own layers (Conv1d for a signal)."""
    signal = len(net.input_shape) == 2
    layers: list[nn.Module] = [nn.Unflatten(1, net.input_shape)]
    for index, (weight, bias) in enumerate(zip(net.weights, net.biases, strict=True)):
        if index < net.conv_layers:
            kernel = net.kernel_size
            conv_class = nn.Conv1d if signal else nn.Conv2d
            conv = conv_class(
                weight.shape[1], weight.shape[0], kernel, net.block_strides[index], kernel // 2
            ).double()
            conv.weight.data = weight.detach()[:, :, 0] if signal else weight.detach().clone()
            conv.bias.data = bias.detach().clone()
            layers += [conv, nn.ReLU()]
            if index == net.conv_layers - 1 and net.head == "pool":
                layers += [nn.Flatten(2), nn.AdaptiveAvgPool1d(1), nn.Flatten()]
            elif index == net.conv_layers - 1:
                layers += [nn.Flatten()]
        else:
            weight = weight.detach().flatten(1)  # a flatten head's (out, channels, positions)
            linear = nn.Linear(weight.shape[1], weight.shape[0]).double()
            linear.weight.data, linear.bias.data = weight.clone(), bias.detach().clone()
            layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_forward_is_torch_convolution(architecture):
    net = _network(*architecture)
    x = _rows(architecture[0])
    expected = _torch_reference(net)(x)
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(net.forward_cached(x).output, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_backward_matches_autograd(architecture):
    net = _network(*architecture)
    x = _rows(architecture[0])
    upstream = torch.randn(x.shape[0], 3, dtype=torch.float64)
    with torch.no_grad():
        cache = net.forward_cached(x)
        grads = net.backward(cache, upstream)
    hand = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    output = net(x)
    (output * upstream).sum().backward()
    for mine, theirs in zip(hand, [p.grad for p in net.parameters()], strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    # ∂L/∂a of every hidden layer, against autograd through the cached pre-activations.
    for layer in range(net.n_hidden_layers):
        with torch.enable_grad():
            a = cache.preactivations[layer].clone().requires_grad_(True)
            out = net.continue_from(layer, a)
            (gradient,) = torch.autograd.grad((out * upstream).sum(), a)
        torch.testing.assert_close(grads[layer], gradient, rtol=1e-10, atol=1e-12)


def _candidate(layer, units: int, seed: int, update: bool = True) -> Candidate:
    generator = torch.Generator().manual_seed(seed)
    alpha = torch.randn(units, layer.fan_in + 1, generator=generator, dtype=torch.float64)
    omega = torch.randn(layer.fan_out, units, generator=generator, dtype=torch.float64)
    # The move of the next layer's weights that read this layer: under a flatten head, one
    # per (channel, position).
    following = layer.model.weights[layer.index + 1]
    moved = following.shape[1] * (following.shape[2] if following.dim() == 3 else 1)
    move = torch.randn(layer.fan_out, moved + 1, generator=generator, dtype=torch.float64)
    return Candidate(layer.index, alpha, omega, move if update else None, linear=True)


def _grown(net: GrowingConvNet, candidate: Candidate, step: float) -> GrowingConvNet:
    """A copy of ``net`` with ``candidate`` added at ``step``, as the engine adds it."""
    grown = copy.deepcopy(net)
    apply_candidate(grown, None, candidate, step)
    return grown


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_extended_output_is_the_grown_network(architecture):
    net = _network(*architecture)
    x = _rows(architecture[0])
    with torch.no_grad():
        cache = net.forward_cached(x)
    for layer in net.growable_layers():
        for linear in (True, False):
            candidate = _candidate(layer, units=2, seed=layer.index)
            if not linear:
                candidate = Candidate(
                    candidate.layer, candidate.alpha, candidate.omega, candidate.weight_update
                )
            output_at = layer.extended_output(cache, candidate)
            for step in (0.0, 0.3, 2.0):
                grown = _grown(net, candidate, step)
                torch.testing.assert_close(output_at(step), grown(x), rtol=1e-10, atol=1e-10)
                assert grown.hidden_widths[layer.index] == layer.width + 2


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_new_channels_with_zero_outgoing_leave_the_function(architecture):
    net = _network(*architecture)
    x = _rows(architecture[0])
    before = net(x)
    for layer in net.growable_layers():
        generator = torch.Generator().manual_seed(3)
        incoming = torch.randn(3, layer.fan_in, generator=generator, dtype=torch.float64)
        layer.add_units(
            incoming, torch.ones(3, dtype=torch.float64), torch.zeros(layer.fan_out, 3), None
        )
    torch.testing.assert_close(net(x), before, rtol=0, atol=1e-12)
    assert net.n_parameters() == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_statistics_rows_give_the_first_order_change(architecture):
    """The dense first-order formula on a block's rows — the mean over examples of
    Σ_rows ⟨g, ω h + ΔW·current⟩, h = σ(α·patch) (averaged over the patches of a pooled row) —
    is the derivative of the loss of the grown network at step 0, for a block read by a block
    (centre taps) and one read by the pooling."""
    net = _network(*architecture, outputs=3)
    x = _rows(architecture[0], n=8)
    target = nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), 3).double()
    loss = default_loss("multiclass", 3)
    with torch.no_grad():
        cache = net.forward_cached(x)
        _, output_grad = loss.value_and_grad(cache.output, target)
        gradients = net.backward(cache, output_grad * x.shape[0], parameter_grads=False)
    for layer in net.growable_layers():
        sample = layer.sample(cache, gradients)
        assert sample.current.shape[0] == x.shape[0] * sample.positions
        assert sample.below.shape[0] == sample.current.shape[0] * sample.pooled
        candidate = _candidate(layer, units=2, seed=10 + layer.index)
        alpha, omega, move = candidate.alpha, candidate.omega, candidate.weight_update
        features = pooled_mean(
            torch.relu(sample.below @ alpha[:, :-1].T + alpha[:, -1]), sample.pooled
        )
        change = features @ omega.T + sample.current @ move[:, :-1].T + move[:, -1]
        examples = sample.current.shape[0] / sample.positions
        predicted = float((sample.gradient * change).sum()) / examples
        output_at = layer.extended_output(cache, candidate)
        step = 1e-6
        measured = (
            float(loss(output_at(step), target)) - float(loss(output_at(-step), target))
        ) / (2 * step)
        assert predicted == pytest.approx(measured, rel=1e-6, abs=1e-9)


def test_block_rows_are_the_unfolded_patches():
    """A block's ``below`` rows are its input patches as a dense layer over them reads them:
    its kernel flattened, times a row, is the block's pre-activation at that position; read
    by the pooling, its ``current`` rows are the pooled activations."""
    net = _network((2, 6, 5), [3, 2], 1, 3, 1)
    x = _rows((2, 6, 5), n=4)
    with torch.no_grad():
        cache = net.forward_cached(x)
        gradients = net.backward(cache, torch.ones(4, 3, dtype=torch.float64), False)
    sample = net.growable_layers()[0].sample(cache, gradients)
    weight, bias = net.weights[0], net.biases[0]
    dense = sample.below @ weight.detach().reshape(weight.shape[0], -1).T + bias.detach()
    preactivation = cache.preactivations[0]
    expected = preactivation.flatten(2).transpose(1, 2).reshape(-1, weight.shape[0])
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-12)
    pooled = pooled_mean(torch.relu(expected), 30)
    torch.testing.assert_close(sample.current, pooled, rtol=0, atol=1e-12)
    assert sample.positions == 1 and sample.pooled == 30


def test_blocks_halve_their_input_down_to_eight_positions_unless_told():
    from growml.nn.conv import default_strides

    assert default_strides((1, 40), 5, 3) == [2, 2, 2]  # 40 → 20 → 10 → 5
    assert default_strides((1, 8, 8), 3, 3) == [1, 1, 1]  # small enough already
    assert default_strides((1, 28, 28), 3, 3) == [2, 2, 1]  # 28 → 14 → 7 → 7
    assert default_strides((3, 9, 40), 3, 2) == [2, 1]  # the shorter side decides
    assert default_strides((1, 17), 3, 4) == [2, 2, 1, 1]


def test_layers_and_costs():
    net = _network((1, 20), [3, 4, 5], 2, 5, 2)
    first, second, dense = net.growable_layers()
    assert isinstance(first, ConvLayer) and isinstance(dense, HiddenLayer)
    assert (first.fan_in, first.fan_out, first.width) == (5, 4, 3)
    assert first.unit_cost() == 5 + 1 + 4 * 5  # kernel, bias, the next block's kernel slice
    assert second.unit_cost() == 3 * 5 + 1 + 5  # the head's column after the pooling
    assert net.map_shapes == [(1, 10), (1, 5)]
    before = net.n_parameters()
    first.add_units(torch.zeros(1, 5), torch.zeros(1), torch.zeros(4, 1), None)
    assert net.n_parameters() - before == first.unit_cost()


def test_spec_round_trip():
    net = _network((1, 7, 6), [3, 4, 2], 2, 3, 2)
    spec = net.spec()
    data = spec.to_dict()
    assert data["input_shape"] == [1, 7, 6] and data["conv_layers"] == 2
    rebuilt = network_from_spec(ModelSpec.from_dict(data))
    rebuilt.load_state_dict(net.state_dict())
    x = _rows((1, 7, 6))
    torch.testing.assert_close(rebuilt.double()(x), net(x))
    assert "conv_layers" not in ModelSpec(4, (2,), 1).to_dict()


def test_a_flatten_head_reads_every_position_and_a_channel_costs_them_all():
    net = _network((1, 7, 6), [3, 4, 2], 2, 3, 2, "flatten")
    first, second, dense = net.growable_layers()
    positions = 2 * 2  # 7 × 6 → 4 × 3 → 2 × 2
    assert net.map_shapes[-1] == (2, 2) and net.weights[2].shape == (2, 4, positions)
    assert dense.fan_in == 4 * positions
    assert second.unit_cost() == 3 * 9 + 1 + 2 * positions  # a column at every position
    before = net.n_parameters()
    second.add_units(torch.zeros(1, 27), torch.zeros(1), torch.ones(2, 1), None)
    assert net.n_parameters() - before == second.unit_cost()
    # A new channel meets the head with ω / P at each of its positions: ω times its mean.
    torch.testing.assert_close(net.weights[2][:, 4], torch.full((2, 4), 0.25, dtype=torch.float64))
    torch.testing.assert_close(second.outgoing()[:, 4], torch.ones(2, dtype=torch.float64))
    before = net.n_parameters()
    dense.add_units(torch.zeros(1, 5 * positions), torch.zeros(1), torch.zeros(3, 1), None)
    assert net.n_parameters() - before == dense.unit_cost() == 5 * positions + 1 + 3


def test_a_flatten_head_survives_the_spec():
    net = _network((1, 7, 6), [3, 4, 2], 2, 3, 2, "flatten")
    data = net.spec().to_dict()
    assert data["head"] == "flatten"
    rebuilt = network_from_spec(ModelSpec.from_dict(data))
    rebuilt.load_state_dict(net.state_dict())
    x = _rows((1, 7, 6))
    torch.testing.assert_close(rebuilt.double()(x), net(x), rtol=0, atol=0)
    assert "head" not in ModelSpec(4, (2,), 1).to_dict()


def _expressed_channels(head: str) -> GrowingConvNet:
    """One block of four channels, all active on the rows (large biases), channel 3 an affine
    combination of channels 0 and 1 and channel 2 a positive multiple of channel 0."""
    net = _network((2, 5, 5), [4, 3], 1, 3, 1, head)
    with torch.no_grad():
        kernel, bias = net.weights[0], net.biases[0]
        bias[:2] = 20.0
        kernel[3], bias[3] = 0.5 * kernel[0] - 1.5 * kernel[1], 0.5 * bias[0] - 1.5 * bias[1] + 60
        kernel[2], bias[2] = 2.5 * kernel[0], 2.5 * bias[0]
    return net


@pytest.mark.parametrize("head", ["pool", "flatten"])
def test_a_channel_the_others_express_is_trimmed_and_a_twin_merged_leaving_the_function(head):
    """Every channel is an affine function of the patch wherever it is active, so channel 3
    is 0.5·channel 0 − 1.5·channel 1 + 60 at every (row, position): least squares finds
    that, and moving each position's column of the head (or the pooled column) alike keeps
    the function exactly."""
    from growml.growth import removal

    net = _expressed_channels(head)
    x = _rows((2, 5, 5), n=30)
    before = net(x).detach()
    reconstruction = removal.Reconstruction(net, x, ridge=0.0)
    removal.remove(net, [(0, 3)], reconstruction, None)
    assert net.hidden_widths == [3, 3]
    torch.testing.assert_close(net(x), before, rtol=1e-8, atol=1e-8)
    assert removal.merge_twins(net, None) == [1, 0]
    assert net.hidden_widths == [2, 3]
    torch.testing.assert_close(net(x), before, rtol=1e-8, atol=1e-8)


def test_remove_channels_keeps_the_others():
    net = _network((1, 20), [3, 4, 5], 2, 5, 2)
    x = _rows((1, 20))
    layer = net.growable_layers()[0]
    # Channel 1 silenced in the next block: removing it leaves the function.
    with torch.no_grad():
        net.weights[1][:, 1] = 0
    before = net(x)
    net.remove_neurons(0, [1])
    assert net.hidden_widths == [2, 4, 5] and layer.width == 2
    torch.testing.assert_close(net(x), before, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (((1, 20), [3], 2, 5, 2), "conv_layers"),
        (((1, 20), [3], 1, 4, 2), "odd"),
        (((20,), [3], 1, 3, 2), "input_shape"),
    ],
)
def test_bad_architectures(arguments, message):
    with pytest.raises(ValueError, match=message):
        GrowingConvNet(*arguments[:2], 3, *arguments[2:])


def test_a_block_is_scored_on_the_first_examples_within_the_row_budget(monkeypatch):
    from growml.growth import statistics

    net = _network((1, 20), [3, 4, 5], 2, 5, 1)  # stride 1: 20 positions per example
    x = _rows((1, 20), n=40)
    target = nn.functional.one_hot(torch.arange(40) % 3, 3).double()
    loss = default_loss("multiclass", 3)
    full = statistics.collect_rows(net, loss, x, target, batch_size=8)
    first = statistics.collect_rows(net, loss, x[:8], target[:8], batch_size=8)
    # 100 rows: 5 examples of 20 rows or patches, so the first whole batch of 8 examples.
    monkeypatch.setattr(statistics, "ROW_BUDGET", 100)
    capped = statistics.collect_rows(net, loss, x, target, batch_size=8)
    for block in (0, 1):  # read by a block (20 rows each), read by the pooling (20 patches)
        assert capped[block].below.shape[0] == 8 * 20
        assert torch.equal(capped[block].below, full[block].below[: 8 * 20])
        ours, reference = (
            statistics.statistics_of(capped[block]),
            statistics.statistics_of(first[block]),
        )
        for name in ("S1", "M", "S2", "M2", "P"):
            torch.testing.assert_close(getattr(ours, name), getattr(reference, name))
    # A dense layer has one row per example: all of them, whatever the budget.
    assert capped[2].current.shape[0] == full[2].current.shape[0] == 40
