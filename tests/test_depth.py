"""Depth growth: an inserted layer leaves the function unchanged, joins the optimizer in the
network's order, goes again when weights from before it are restored, and the engine inserts
one only where the settings allow it."""

import json

import numpy as np
import pytest
import torch
from growml.cli import app
from resuming import assert_same_end, interrupted_then_resumed
from typer.testing import CliRunner

import growml
from growml.config import DataConfig, GrowthConfig, TrainConfig, resolve_config
from growml.data import load_table, prepare
from growml.events import GrowthStep
from growml.growth.engine import GrowthEngine
from growml.losses import default_loss
from growml.nn import GrowingMLP, ModelSpec
from growml.train import Trainer
from growml.train.stopping import EarlyStopping


def _network(widths, activation="relu", dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    return GrowingMLP(4, widths, 3, activation, generator=generator).to(dtype)


@pytest.mark.parametrize(("widths", "position"), [([5], 1), ([3, 6], 1), ([3, 6], 2)])
def test_an_inserted_layer_leaves_the_function_exactly_unchanged(widths, position):
    model = _network(widths)
    x = 3 * torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    before = model(x)
    model.insert_layer(position)
    assert model.hidden_widths == [*widths[:position], widths[position - 1], *widths[position:]]
    assert torch.equal(model(x), before)
    # Once trained a little, the new layer is an ordinary one to backpropagation. (While it
    # is the identity its pre-activations are exactly 0 wherever the layer below is, and the
    # hand-derived backward takes relu'(0) = 1 where autograd takes 0.)
    with torch.no_grad():
        model.weights[position].add_(1e-3 * torch.randn_like(model.weights[position]))
        model.biases[position].add_(1e-3 * torch.randn_like(model.biases[position]))
    cache = model.forward_cached(x)
    output_grad = torch.randn_like(cache.output)
    model.backward(cache, output_grad)
    hand = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).backward(output_grad)
    for a, b in zip(hand, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(a, b)


def test_only_relu_layers_get_an_identity_layer_and_only_above_a_hidden_layer():
    with pytest.raises(ValueError, match="relu"):
        _network([3], "tanh").insert_layer(1)
    for position in (0, 2):
        with pytest.raises(IndexError, match="position 1"):
            _network([3]).insert_layer(position)


def test_the_new_parameters_join_the_optimizer_in_the_order_of_a_rebuilt_network():
    model = _network([3], dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randn(20, 4)
    model(x).square().mean().backward()
    optimizer.step()
    model.insert_layer(1, optimizer)
    assert optimizer.param_groups[0]["params"] == list(model.parameters())
    model.zero_grad()
    model(x).square().mean().backward()
    optimizer.step()  # the new parameters' moments start here
    rebuilt = GrowingMLP.from_spec(ModelSpec.from_dict(model.spec().to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    again = torch.optim.Adam(rebuilt.parameters(), lr=0.01)
    again.load_state_dict(optimizer.state_dict())
    for old, new in zip(model.parameters(), rebuilt.parameters(), strict=True):
        assert torch.equal(optimizer.state[old]["exp_avg"], again.state[new]["exp_avg"])


def test_restoring_weights_from_before_an_insertion_removes_the_layer_again():
    model = _network([3], dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(20, 4)
    kept = model(x)
    stopping = EarlyStopping("loss", patience=5)
    stopping.update(1, {"loss": 0.5}, model)
    model.insert_layer(1, optimizer)
    model.add_neurons(1, torch.ones(2, 3), torch.ones(2), torch.ones(3, 2), optimizer)
    assert not torch.equal(model(x), kept)
    stopping.restore_best(model, optimizer)
    assert model.hidden_widths == [3]
    assert torch.equal(model(x), kept)
    assert optimizer.param_groups[0]["params"] == list(model.parameters())


def _grow(data, max_depth, activation="relu", epochs=40):
    loss = default_loss("classification", 1)
    events = []
    model = GrowingMLP(
        data.x_train.shape[1], [2], 1, activation, generator=torch.Generator().manual_seed(0)
    )
    Trainer(
        TrainConfig(epochs=epochs, lr=0.02, early_stopping=False),
        loss,
        "classification",
        observers=[events.append],
        growth=GrowthEngine(GrowthConfig(max_depth=max_depth, max_failures=8), loss, seed=0),
    ).run(model, data.x_train, data.y_train, data.x_val, data.y_val)
    return model, [e for e in events if isinstance(e, GrowthStep)]


def _prepared(name):
    return prepare(load_table(name), DataConfig(), seed=0)


def test_growth_inserts_a_layer_once_widening_stops_paying_and_grows_it():
    model, steps = _grow(_prepared("spirals"), max_depth=2, epochs=50)
    inserted = [step for step in steps if step.inserted_layer is not None]
    assert len(inserted) == 1 and inserted[0].inserted_layer == 1
    assert inserted[0].added > 0 and inserted[0].loss_after < inserted[0].loss_before
    assert any(step.added for step in steps[: steps.index(inserted[0])])  # widened first
    assert model.n_hidden_layers == 2


def test_max_depth_one_never_inserts_a_layer():
    model, steps = _grow(_prepared("circles"), max_depth=1)
    assert model.n_hidden_layers == 1
    assert all(step.inserted_layer is None for step in steps)


def test_no_layer_is_inserted_into_a_network_without_an_identity():
    model, steps = _grow(_prepared("circles"), max_depth=3, activation="tanh")
    assert model.n_hidden_layers == 1
    assert all(step.inserted_layer is None for step in steps)


def test_a_deepened_run_exports_predicts_and_reports(tmp_path):
    runner = CliRunner()
    out = tmp_path / "deep"
    # A run known to insert a layer: xor without the feature gate (with it, width alone pays).
    settings = [
        "growth.max_depth=2",
        "train.lr=0.01",
        "train.epochs=60",
        "growth.trim=false",
        "model.feature_gate=false",
    ]
    flags = [part for setting in settings for part in ("--set", setting)]
    fitted = runner.invoke(app, ["fit", "xor", *flags, "--out", str(out)])
    assert fitted.exit_code == 0, fitted.output
    model = json.loads((out / "model.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    growth = metrics["growth"]
    assert len(model["hidden_widths"]) == len(growth["kept_widths"]) >= 2
    assert growth["layers_inserted"] and len(growth["neurons_added"]) >= 2
    exported = runner.invoke(app, ["export", str(out)])
    assert exported.exit_code == 0, exported.output
    rows = load_table("xor").features.to_pandas().head(20)
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, index=False)
    for engine in ("torch", "onnx"):
        predicted = runner.invoke(
            app, ["predict", str(out), str(csv), "--engine", engine, "--json"]
        )
        assert predicted.exit_code == 0, predicted.output
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and "2 (new)" in report.output
    assert "layers inserted: 2" in report.output
    assert np.isfinite(metrics["test"]["accuracy"])


def test_max_depth_below_one_is_refused_in_one_sentence():
    result = CliRunner().invoke(app, ["fit", "circles", "--set", "growth.max_depth=0"])
    assert result.exit_code == 2
    assert "growth.max_depth" in result.output


def test_a_run_interrupted_after_an_insertion_resumes_to_the_same_end(tmp_path):
    # xor inserts its second layer at epoch 6; the checkpoint of epoch 10 holds two layers,
    # which the network rebuilt at its starting depth takes before it loads them.
    config = resolve_config(
        overrides=[
            ("data.source", "xor"),
            ("growth.max_depth", 2),
            ("train.lr", 0.01),
            ("train.epochs", 30),
            ("growth.trim", False),
            ("model.feature_gate", False),
        ]
    )
    reference = growml.fit(config, out=tmp_path / "reference")
    assert reference.metrics["growth"]["layers_inserted"] == [1]
    resumed = interrupted_then_resumed(config, tmp_path / "resumed", epoch=10)
    assert_same_end(resumed, reference)
