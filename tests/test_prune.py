"""SynFlow and its baselines: closed form, conservation laws, layer collapse, exactness."""

import copy

import numpy as np
import pytest
import torch

from growml.config import TrainConfig
from growml.events import PruneStep
from growml.nn import GrowingMLP
from growml.prune import (
    Magnitude,
    RandomPruner,
    SynFlow,
    prune_neurons,
    prune_weights,
    synaptic_flow,
)
from growml.prune.scores import synflow_neuron_scores, synflow_weight_scores
from growml.train import make_optimizer


def _relu_network(sizes=(5, 7, 6, 3), seed=0):
    generator = torch.Generator().manual_seed(seed)
    model = GrowingMLP(sizes[0], list(sizes[1:-1]), sizes[-1], generator=generator).double()
    with torch.no_grad():
        for bias in model.biases:
            bias.zero_()
        model.weights[1][0, 0] = -0.7  # signs must not matter, and must survive scoring
    return model


def _flows(model):
    """Closed form: forward flows a_l = |W_l| a_{l-1} (a_0 = 1), backward b_{l-1} = |W_l|ᵀ b_l."""
    weights = [w.detach().abs().numpy() for w in model.weights]
    forward = [np.ones(weights[0].shape[1])]
    for w in weights:
        forward.append(w @ forward[-1])
    backward = [np.ones(weights[-1].shape[0])]
    for w in reversed(weights):
        backward.insert(0, w.T @ backward[0])
    return weights, forward, backward


def test_scores_equal_the_closed_form():
    model = _relu_network()
    weights, forward, backward = _flows(model)
    for layer, score in enumerate(synflow_weight_scores(model)):
        expected = np.outer(backward[layer + 1], forward[layer]) * weights[layer]
        np.testing.assert_allclose(score.numpy(), expected, rtol=1e-12)


def test_conservation_laws():
    model = _relu_network()
    scores = synflow_weight_scores(model)
    total = synaptic_flow(model)
    for score in scores:  # every layer carries the whole flow
        assert float(score.sum()) == pytest.approx(total, rel=1e-9)
    neuron_scores = synflow_neuron_scores(model)
    _, forward, backward = _flows(model)
    for layer, neurons in enumerate(neuron_scores):
        incoming = scores[layer].sum(1)
        outgoing = scores[layer + 1].sum(0)
        np.testing.assert_allclose(incoming.numpy(), outgoing.numpy(), rtol=1e-9)
        np.testing.assert_allclose(neurons.numpy(), incoming.numpy(), rtol=1e-9)
        np.testing.assert_allclose(
            neurons.numpy(), forward[layer + 1] * backward[layer + 1], rtol=1e-9
        )
    # Removing neuron j lowers R by exactly a_j · b_j.
    smaller = copy.deepcopy(model)
    smaller.remove_neurons(1, [2])
    assert total - synaptic_flow(smaller) == pytest.approx(float(neuron_scores[1][2]), rel=1e-9)


def test_scoring_leaves_weights_signs_and_gradients_untouched():
    model = _relu_network()
    before = [p.detach().clone() for p in model.parameters()]
    synflow_weight_scores(model)
    synflow_neuron_scores(model)
    for param, original in zip(model.parameters(), before, strict=True):
        assert torch.equal(param, original) and param.grad is None
    assert model.weights[1][0, 0] == -0.7


def test_ranking_is_invariant_to_rescaling_a_layer():
    model = _relu_network()
    rescaled = copy.deepcopy(model)
    with torch.no_grad():
        rescaled.weights[1].mul_(13.0)
    for original, scaled in zip(
        synflow_weight_scores(model), synflow_weight_scores(rescaled), strict=True
    ):
        np.testing.assert_allclose(scaled.numpy(), 13.0 * original.numpy(), rtol=1e-9)
    first = prune_weights(copy.deepcopy(model), SynFlow(), 5.0, iterations=10)[0]
    second = prune_weights(copy.deepcopy(rescaled), SynFlow(), 5.0, iterations=10)[0]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("pruner", [SynFlow(), Magnitude(), RandomPruner(0)], ids=lambda p: p.name)
@pytest.mark.parametrize("compression", [3.0, 20.0])
def test_kept_count_is_exact_and_masks_are_applied(pruner, compression):
    model = _relu_network(sizes=(20, 30, 30, 4))
    total = sum(w.numel() for w in model.weights)
    masks, records = prune_weights(model, pruner, compression, iterations=20)
    assert sum(int(m.sum()) for m in masks) == round(total / compression)
    assert all(int(m.sum()) >= 1 for m in masks)
    assert len(records) == 20 and records[-1].kept_weights == [int(m.sum()) for m in masks]
    for weight, mask in zip(model.weights, masks, strict=True):
        assert not weight[mask == 0].any()


def test_synflow_avoids_the_layer_collapse_of_one_shot_magnitude_pruning():
    """A 6-layer width-100 MLP at 1000× compression: magnitude pruning in one shot empties the
    first layer (its fan-in of 784 makes its weights the smallest); iterative SynFlow keeps every
    layer connected."""
    generator = torch.Generator().manual_seed(0)
    network = GrowingMLP(784, [100] * 5, 10, generator=generator)
    magnitude = copy.deepcopy(network)
    masks, _ = prune_weights(magnitude, Magnitude(), 1000.0, iterations=1, min_per_layer=0)
    assert min(int(mask.sum()) for mask in masks) == 0
    assert synaptic_flow(magnitude, masks) == 0.0
    synflow = copy.deepcopy(network)
    masks, _ = prune_weights(synflow, SynFlow(), 1000.0, iterations=100, min_per_layer=0)
    assert min(int(mask.sum()) for mask in masks) >= 1
    assert synaptic_flow(synflow, masks) > 0.0


def test_pruned_weights_stay_zero_through_training():
    from growml.losses import MeanSquaredError
    from growml.train import Trainer

    model = _relu_network(sizes=(4, 16, 2)).float()
    masks, _ = prune_weights(model, SynFlow(), 4.0, iterations=5)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = x[:, :2] * 2
    Trainer(TrainConfig(epochs=3, early_stopping=False), MeanSquaredError(), "regression").run(
        model, x, y, x, y
    )
    for weight, mask in zip(model.weights, masks, strict=True):
        assert not weight.detach()[mask == 0].any()


@pytest.mark.parametrize("schedule", ["parameters", "neurons"])
@pytest.mark.parametrize("pruner", [SynFlow(), Magnitude(), RandomPruner(0)], ids=lambda p: p.name)
def test_neuron_pruning_leaves_a_compact_network(pruner, schedule):
    model = _relu_network(sizes=(10, 40, 30, 3)).float()
    optimizer = make_optimizer(model.parameters(), TrainConfig())
    x = torch.randn(8, 10)
    model(x).sum().backward()
    optimizer.step()
    weights_before = sum(w.numel() for w in model.weights)
    records = prune_neurons(
        model, optimizer, pruner, compression=4.0, iterations=10, schedule=schedule
    )
    weights_after = sum(w.numel() for w in model.weights)
    assert weights_after <= weights_before / 4 * 1.1 and min(model.hidden_widths) >= 1
    assert records[-1].hidden_widths == model.hidden_widths
    for param in model.parameters():  # the optimizer state was sliced with the network
        assert optimizer.state[param]["exp_avg"].shape == param.shape


def test_compact_network_equals_the_gated_one():
    model = _relu_network(sizes=(6, 12, 9, 3))
    x = torch.randn(20, 6, dtype=torch.float64)
    keep = [[0, 2, 3, 7, 11], [1, 4, 5, 8]]
    gated = copy.deepcopy(model)
    with torch.no_grad():  # a 0-gate on a neuron = zero its outgoing weights
        for layer, kept in enumerate(keep):
            gate = torch.zeros(gated.hidden_widths[layer], dtype=torch.float64)
            gate[kept] = 1
            gated.weights[layer + 1].mul_(gate)
    for layer, kept in enumerate(keep):
        model.remove_neurons(layer, [i for i in range(model.hidden_widths[layer]) if i not in kept])
    torch.testing.assert_close(model(x), gated(x), rtol=0, atol=1e-6)


def test_the_last_neuron_of_a_layer_is_never_removed():
    model = _relu_network(sizes=(5, 4, 4, 2)).float()
    prune_neurons(model, None, SynFlow(), compression=1000.0, iterations=5)
    assert model.hidden_widths == [1, 1]


def _fit(tmp_path, *settings):
    import growml

    config = growml.resolve_config(
        overrides=[("data.source", "digits"), ("train.epochs", 15), *settings]
    )
    return growml.fit(config, out=tmp_path / "run")


def test_fit_prunes_a_fixed_network_at_init_and_keeps_the_masks(tmp_path):
    from safetensors.torch import load_file

    result = _fit(
        tmp_path,
        ("growth.enabled", False),
        ("model.hidden_widths", [32]),
        ("prune.method", "synflow"),
        ("prune.compression", 10.0),
        ("prune.iterations", 20),
    )
    summary = result.metrics["prune"]
    assert summary["when"] == "at-init" and summary["weights_after"] == round(2368 / 10)
    weights = load_file(tmp_path / "run" / "model.safetensors")
    nonzero = sum(int((weights[f"weights.{i}"] != 0).sum()) for i in range(2))
    assert nonzero <= summary["weights_after"]
    steps = [e for e in result.run.history() if isinstance(e, PruneStep)]
    assert [s.iteration for s in steps] == list(range(1, 21))
    assert steps[-1].synaptic_flow > 0


def test_grow_then_prune_leaves_a_compact_network_that_reloads(tmp_path):
    import growml

    result = _fit(
        tmp_path,
        ("train.epochs", 60),
        ("prune.method", "synflow"),
        ("prune.structured", True),
        ("prune.compression", 2.0),
        ("prune.iterations", 10),
    )
    summary = result.metrics["prune"]
    assert summary["when"] == "after-growth"
    assert summary["parameters_after"] < summary["parameters_before"]
    assert result.metrics["parameters"] == summary["parameters_after"]
    loaded = growml.load_run(tmp_path / "run")
    assert loaded.model.hidden_widths == result.run.model.hidden_widths
    rows = result.data.raw_test
    np.testing.assert_array_equal(loaded.predict(rows), result.run.predict(rows))
    history = result.run.history()
    kinds = [event.event for event in history]
    # grow, prune, then fine-tune: a second training run follows the pruning steps
    assert kinds.index("prune") < len(kinds) - 1 - kinds[::-1].index("train_start")
