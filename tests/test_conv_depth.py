"""Depth growth in a convolutional network: an inserted block (stride 1, identity centre tap)
leaves the function exactly unchanged and is an ordinary block afterwards (torch's own
convolutions, autograd), blocks and dense layers go again or come back when a network takes
the layers of weights from another time, and the engine inserts a block only where
``growth.max_blocks`` allows it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from growml.cli import app
from resuming import assert_same_end, interrupted_then_resumed
from test_conv import _network, _rows, _torch_reference
from test_conv_fit import _signal_csv
from typer.testing import CliRunner

import growml
from growml.config import GrowthConfig
from growml.events import GrowthStep
from growml.growth.engine import _deeper_position
from growml.nn.conv import GrowingConvNet, network_from_spec
from growml.nn.mlp import GrowingMLP, ModelSpec
from growml.train.stopping import EarlyStopping

# (input shape, hidden widths, conv layers, kernel, stride, head)
ARCHITECTURES = [
    ((1, 20), [3, 4, 5], 2, 5, 2, "pool"),  # a signal: two blocks and a dense layer
    ((1, 7, 6), [3, 4, 2], 2, 3, 2, "pool"),  # an image, rectangular
    ((3, 5, 5), [4], 1, 3, 1, "pool"),  # one block straight into the output
    ((1, 7, 6), [3, 4, 2], 2, 3, 2, "flatten"),  # the block on top keeps the head's positions
]


def _perturb(net, generator_seed=2):
    generator = torch.Generator().manual_seed(generator_seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator).double())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_an_inserted_block_leaves_the_function_exactly_unchanged(architecture):
    shape, widths, blocks, kernel, stride, head = architecture
    for position in range(1, blocks + 1):
        net = _network(shape, widths, blocks, kernel, stride, head)
        x = 3 * _rows(shape, n=20)
        before = net(x)
        net.insert_layer(position)
        assert net.conv_layers == blocks + 1
        assert net.block_strides == [*[stride] * position, 1, *[stride] * (blocks - position)]
        assert net.hidden_widths[position] == widths[position - 1]
        assert net.map_shapes[position] == net.map_shapes[position - 1]
        assert torch.equal(net(x), before)
        # Trained a little, it is an ordinary block: torch's own layers and autograd agree.
        _perturb(net)
        torch.testing.assert_close(net(x), _torch_reference(net)(x))
        cache = net.forward_cached(x)
        output_grad = torch.randn_like(cache.output)
        net.backward(cache, output_grad)
        hand = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        net(x).backward(output_grad)
        for a, b in zip(hand, (p.grad for p in net.parameters()), strict=True):
            torch.testing.assert_close(a, b)


def test_a_block_is_inserted_only_above_a_block_and_only_with_relu():
    net = _network((1, 20), [3, 4, 5], 2, 5, 2)
    with pytest.raises(IndexError, match="position 1"):
        net.insert_layer(0)
    tanh = GrowingConvNet((1, 12), [2, 2], 2, 2, 3, 2, activation="tanh")
    with pytest.raises(ValueError, match="relu"):
        tanh.insert_layer(1)


def test_the_strides_survive_the_spec_and_the_inserted_block_its_optimizer():
    net = _network((1, 7, 6), [3, 4, 2], 2, 3, 2).float()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    x = _rows((1, 7, 6)).float()
    net.insert_layer(2, optimizer)
    assert optimizer.param_groups[0]["params"] == list(net.parameters())
    net(x).square().mean().backward()
    optimizer.step()
    spec = ModelSpec.from_dict(net.spec().to_dict())
    assert spec.strides == (2, 2, 1) and spec.conv_layers == 3
    rebuilt = network_from_spec(spec)
    rebuilt.load_state_dict(net.state_dict())
    assert torch.equal(rebuilt(x), net(x))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_network_takes_the_layers_of_weights_from_before_or_after_an_insertion(architecture):
    shape, widths, blocks, kernel, stride, head = architecture
    x = _rows(shape, n=10)
    start = _network(shape, widths, blocks, kernel, stride, head)
    deep = _network(shape, widths, blocks, kernel, stride, head)
    optimizer = torch.optim.Adam(deep.parameters())
    deep.insert_layer(blocks, optimizer)  # a block on top of the blocks
    if deep.n_hidden_layers > deep.conv_layers:  # and a dense layer below the output
        deep.insert_layer(deep.n_hidden_layers, optimizer)
    _perturb(deep)
    # The starting network takes the deepened one's layers ...
    grown = _network(shape, widths, blocks, kernel, stride, head)
    weights = dict(deep.named_parameters())
    grown.match_layers(weights)
    grown.load_state_dict(deep.state_dict())
    assert grown.block_strides == deep.block_strides
    assert torch.equal(grown(x), deep(x))
    # ... and the deepened one gives them back, as restoring its best epoch does.
    stopping = EarlyStopping("loss", patience=5)
    stopping.update(1, {"loss": 0.5}, start)
    stopping.restore_best(deep, optimizer)
    assert deep.hidden_widths == widths and deep.block_strides == [stride] * blocks
    assert torch.equal(deep(x), start(x))
    assert optimizer.param_groups[0]["params"] == list(deep.parameters())


def test_depth_grows_a_block_first_then_dense_layers_within_their_limits():
    conv = _network((1, 20), [3, 4, 5], 2, 5, 2)
    head_less = _network((3, 5, 5), [4], 1, 3, 1)
    mlp = GrowingMLP(4, [3], 2)
    assert _deeper_position(conv, GrowthConfig()) is None
    assert _deeper_position(conv, GrowthConfig(max_blocks=3)) == 2
    assert _deeper_position(conv, GrowthConfig(max_blocks=2, max_depth=2)) == 3
    assert _deeper_position(conv, GrowthConfig(max_blocks=2)) is None
    # No dense layer to copy: the head is never given one.
    assert _deeper_position(head_less, GrowthConfig(max_depth=3)) is None
    assert _deeper_position(head_less, GrowthConfig(max_blocks=2)) == 1
    assert _deeper_position(mlp, GrowthConfig(max_depth=2)) == 1
    assert _deeper_position(mlp, GrowthConfig(max_blocks=4)) is None


def test_max_blocks_on_an_mlp_is_refused_in_one_sentence(tmp_path):
    out = tmp_path / "run"
    arguments = ["fit", "digits", "--set", "growth.max_blocks=3", "--out", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert "growth.max_blocks" in result.output and "model.arch=conv" in result.output
    assert "Traceback" not in result.output and not out.exists()


def _deepening_config(source):
    # Known to insert a block (at epoch 38) and keep it: two-channel signals from one block,
    # which growth widens until validation stops improving; then a second block comes on top.
    # The recipe is spelt out so that a change of the convolutional defaults leaves it be.
    return growml.resolve_config(
        overrides=[
            ("data.source", str(source)),
            ("data.target", "label"),
            ("model.arch", "conv"),
            ("model.input_shape", [2, 16]),
            ("model.channels", [1]),
            ("growth.max_blocks", 2),
            ("growth.max_failures", 1),
            ("train.optimizer", "adamw"),
            ("train.lr", 0.01),
            ("train.weight_decay", 0.1),
        ]
    )


@pytest.fixture(scope="module")
def signals(tmp_path_factory):
    return _signal_csv(tmp_path_factory.mktemp("signals") / "signals.csv", length=16)


@pytest.fixture(scope="module")
def deepened(tmp_path_factory, signals):
    out = tmp_path_factory.mktemp("deep") / "run"
    return growml.fit(_deepening_config(signals), out=out), out


def test_growth_inserts_a_block_that_exports_predicts_and_reports(deepened, tmp_path):
    result, out = deepened
    model = json.loads((out / "model.json").read_text())
    growth = result.metrics["growth"]
    assert model["conv_layers"] == 2 and model["strides"] == [2, 1]
    assert growth["layers_inserted"] == [1]
    assert len(growth["neurons_added"]) == len(model["hidden_widths"]) == 3
    steps = [
        e
        for e in result.run.history()
        if isinstance(e, GrowthStep) and e.inserted_layer is not None
    ]
    assert steps[0].added > 0 and steps[0].loss_after < steps[0].loss_before
    assert result.metrics["test"]["accuracy"] > 0.9
    exported = growml.export_run(out, tmp_path / "model.onnx")
    assert exported.parity.agrees and exported.parity.max_difference <= 1e-5
    rows = result.data.raw_test
    np.testing.assert_array_equal(
        growml.load_onnx(exported.path).predict(rows), growml.load_run(out).predict(rows)
    )
    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "2 blocks, kernel 5, strides 2, 1" in report.output and "2 (new)" in report.output


def test_a_run_interrupted_after_inserting_a_block_resumes_to_the_same_end(
    deepened, signals, tmp_path
):
    reference, _ = deepened
    config = _deepening_config(signals)
    resumed = interrupted_then_resumed(config, tmp_path / "resumed", epoch=42)
    assert_same_end(resumed, reference)
