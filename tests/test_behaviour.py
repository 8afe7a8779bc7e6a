"""Behaviour, not presence: what the growth rules and pruning do, checked on their effect."""

import math

import numpy as np
import pytest
import torch

import growml
from growml.config import GrowthConfig
from growml.growth.engine import GrowthEngine
from growml.growth.line_search import Candidate
from growml.growth.methods import Option
from growml.losses import default_loss
from growml.nn import GrowingMLP
from growml.prune.scores import synflow_weight_scores


def _option(layer, neurons, fan_in, fan_out, gain):
    candidate = Candidate(
        layer, torch.zeros(neurons, fan_in + 1), torch.zeros(fan_out, neurons), linear=True
    )
    return Option(candidate, first_order=gain, gain=gain, scores=[1.0], bar=0.0, bottleneck=1.0)


def test_where_best_grows_the_layer_with_the_largest_gain_per_parameter():
    model = GrowingMLP(20, [4, 4], 2, generator=torch.Generator().manual_seed(0))
    # Layer 0's neurons cost 20 + 1 + 4 parameters, layer 1's 4 + 1 + 2: equal total gains
    # favour layer 1; layer 0 wins only with more than (25 / 7)× the gain.
    assert [layer.unit_cost() for layer in model.growable_layers()] == [25, 7]
    engine = GrowthEngine(GrowthConfig(where="best"), default_loss("classification", 2))
    for gains, expected in (((1.0, 1.0), 1), ((3.0, 1.0), 1), ((4.0, 1.0), 0)):
        options = {
            0: _option(0, 2, 20, 4, gains[0]),
            1: _option(1, 2, 4, 2, gains[1]),
        }
        assert engine._choose(model, options) == [expected], gains


def test_where_auto_ranks_an_mlps_layers_and_lets_a_convolutional_networks_take_turns():
    from growml.growth.engine import where_rule
    from growml.nn.conv import GrowingConvNet

    mlp = GrowingMLP(20, [4, 4], 2)
    conv = GrowingConvNet((1, 12), [2, 2, 3], 2, conv_layers=2, kernel_size=3)
    assert where_rule("auto", mlp) == "best" and where_rule("auto", conv) == "round-robin"
    assert where_rule("all", conv) == "all" and where_rule("best", conv) == "best"
    engine = GrowthEngine(GrowthConfig(), default_loss("classification", 2))
    options = {layer: _option(layer, 1, 3, 2, gain=1.0 + layer) for layer in range(3)}
    turns = []
    for step in range(3):
        engine.steps_ = step
        turns += engine._choose(conv, options)
    assert turns == [0, 1, 2]  # each layer in turn, whatever the gains


def _step(method, **settings):
    generator = torch.Generator().manual_seed(3)
    model = GrowingMLP(5, [3], 2, generator=generator)
    loss = default_loss("classification", 2)
    x = torch.randn(256, 5, generator=generator)
    labels = ((x[:, 0] * x[:, 1]) > 0).long().numpy()
    target = loss.prepare_target(labels)
    engine = GrowthEngine(GrowthConfig(method=method, every=1, **settings), loss, seed=1)
    optimizer = torch.optim.Adam(model.parameters())
    with torch.no_grad():
        before = model(x).clone()
    events = engine.step(model, optimizer, x, target, epoch=1)
    with torch.no_grad():
        after = model(x)
    return model, events, before, after


def test_gradmax_adds_neurons_without_changing_the_function():
    model, events, before, after = _step("gradmax")
    assert sum(event.added for event in events) > 0 and model.hidden_widths[0] > 3
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    new = model.weights[0][3:]
    assert float(new.abs().max()) == 0.0  # zero incoming weights
    assert float(model.weights[1][:, 3:].abs().max()) > 0  # the gradient's outgoing weights


def test_tinys_relu_neurons_come_as_mirrored_pairs():
    model, events, _, _ = _step("tiny", pairing="always", noise_factor=1e-6)
    added = sum(event.added for event in events)
    assert added >= 2 and added % 2 == 0
    incoming = torch.cat([model.weights[0][3:], model.biases[0][3:, None]], 1)
    outgoing = model.weights[1][:, 3:]
    half = added // 2
    torch.testing.assert_close(incoming[half:], -incoming[:half])
    torch.testing.assert_close(outgoing[:, half:], -outgoing[:, :half])


def test_synflow_scores_survive_an_overflowing_flow_with_the_same_ranking():
    widths = [6] * 11  # twelve layers: (6 × 1e30)^12 overflows float64 (float32 weights: 1e-6)
    huge = GrowingMLP(4, widths, 1, generator=torch.Generator().manual_seed(0))
    plain = GrowingMLP(4, widths, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for big, unit in zip(huge.weights, plain.weights, strict=True):
            sign = torch.sign(unit)
            big.copy_(sign * 1e30 * (1 + unit.abs()))
            unit.copy_(sign * (1 + unit.abs()))
    flow = math.prod(float(w.detach().double().abs().sum(1).max()) for w in huge.weights)
    assert not math.isfinite(flow)  # the plain flow of the huge network overflows
    rescued = synflow_weight_scores(huge)
    reference = synflow_weight_scores(plain)
    for big, unit in zip(rescued, reference, strict=True):
        assert bool(torch.isfinite(big).all())
        np.testing.assert_allclose(
            (big / big.sum()).numpy(), (unit / unit.sum()).numpy(), rtol=1e-6, atol=1e-12
        )


def test_soft_f1_beats_a_constant_predictor_and_the_untrained_network(tmp_path):
    from sklearn.metrics import f1_score

    from growml.data import load_table, split_rows

    config = growml.resolve_config(
        overrides=[("data.source", "imbalanced"), ("loss.name", "soft-f1")]
    )
    result = growml.fit(config, out=tmp_path / "run")
    table = load_table("imbalanced")
    test = split_rows(table, config.data, config.seed)[2]
    labels = np.asarray(table.target.take(test).to_pylist())
    positive = (labels == result.run.classes[1]).mean()
    all_positive = 2 * positive / (1 + positive)  # F1 of predicting every row positive
    untrained = growml.fit(
        growml.resolve_config(
            overrides=[
                ("data.source", "imbalanced"),
                ("loss.name", "soft-f1"),
                ("train.epochs", 1),
                ("train.lr", 1e-9),
                ("growth.enabled", False),
                ("model.hidden_widths", [1]),
            ]
        ),
        out=tmp_path / "untrained",
    )
    trained_f1 = result.metrics["test"]["f1"]
    predicted = result.run.predict(table.features.take(test))
    assert trained_f1 == pytest.approx(
        f1_score(labels, predicted, pos_label=result.run.classes[1]), abs=1e-12
    )
    assert trained_f1 > all_positive + 0.2
    assert trained_f1 > untrained.metrics["test"]["f1"] + 0.2
