"""The feature gate: its gradients and penalty against autograd in float64, the folded weights
against the gated network, the penalty waiting for growth, noise columns fading out, and a
gated run through the files, the report, export, SynFlow and resume."""

import json

import numpy as np
import pytest
import torch
from growml.cli import app
from resuming import assert_same_end, interrupted_then_resumed
from typer.testing import CliRunner

import growml
from growml.nn import GrowingMLP
from growml.nn.embeddings import PeriodicEmbedding, PiecewiseEmbedding
from growml.nn.mlp import GATE_MULTIPLIER
from growml.prune.scores import synflow_weight_scores
from growml.tune.space import default_space

runner = CliRunner()


def _gated(embedding=None, widths=(7, 4), seed=0):
    generator = torch.Generator().manual_seed(seed)
    model = GrowingMLP(5, list(widths), 3, feature_gate=True, embedding=embedding)
    model = model.double()
    with torch.no_grad():  # a gate away from its starting 1, each column its own value
        model.gate.mul_(
            0.5 + torch.rand(model.gate.shape, generator=generator, dtype=torch.float64)
        )
    return model


def _rows(n=23, seed=1):
    return torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


EMBEDDINGS = {
    "none": lambda: None,
    "periodic": lambda: PeriodicEmbedding(5, [0, 2, 3], frequencies=4, sigma=0.5, width=3),
}


@pytest.mark.parametrize("kind", list(EMBEDDINGS))
def test_hand_backward_matches_autograd_for_the_gate_and_everything_below(kind):
    model = _gated(EMBEDDINGS[kind]())
    x = _rows()
    output = model(x)
    output_grad = torch.randn_like(output)
    (output * output_grad).sum().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        cache = model.forward_cached(x)
        model.backward(cache, output_grad)
    torch.testing.assert_close(cache.output, output.detach(), rtol=0, atol=1e-12)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-10, atol=1e-12)


def test_the_first_layer_reads_the_gated_row():
    model = _gated()
    x = _rows()
    with torch.no_grad():
        cache = model.forward_cached(x)
    g = model.gate.detach() * GATE_MULTIPLIER
    torch.testing.assert_close(cache.inputs[0], x * g, rtol=0, atol=0)
    torch.testing.assert_close(cache.ungated, x, rtol=0, atol=0)


def test_the_penalty_is_the_gradient_of_l1_on_g():
    model = _gated()
    strength = 0.01
    model.gate.grad = torch.zeros_like(model.gate)
    model.add_gate_penalty(strength)
    theta = model.gate.detach().clone().requires_grad_(True)
    (strength * (GATE_MULTIPLIER * theta).abs().sum()).backward()
    torch.testing.assert_close(model.gate.grad, theta.grad, rtol=1e-12, atol=0)


def test_folded_layers_compute_the_gated_network_without_the_gate():
    model = _gated()
    x = _rows()
    h = x
    layers = model.folded_layers()
    for index, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        h = h if index == len(layers) - 1 else torch.relu(h)
    torch.testing.assert_close(h, model(x).detach(), rtol=1e-12, atol=1e-12)


def test_an_inserted_layer_leaves_a_gated_network_unchanged():
    model = _gated()
    x = _rows()
    before = model(x).detach()
    model.insert_layer(1)
    torch.testing.assert_close(model(x).detach(), before, rtol=0, atol=0)


def test_synflow_scores_of_a_gated_network_are_those_of_its_folded_weights():
    model = _gated()
    plain = GrowingMLP(5, model.hidden_widths, 3).double()
    with torch.no_grad():
        for (weight, bias), target_weight, target_bias in zip(
            model.folded_layers(), plain.weights, plain.biases, strict=True
        ):
            target_weight.copy_(weight)
            target_bias.copy_(bias)
    for gated, folded in zip(
        synflow_weight_scores(model), synflow_weight_scores(plain), strict=True
    ):
        torch.testing.assert_close(gated, folded, rtol=1e-12, atol=0)


def test_a_column_gate_is_the_strongest_of_its_embedded_outputs():
    x = np.random.default_rng(0).normal(size=(200, 5))
    embedding = PiecewiseEmbedding.fit(x, [1, 3], max_bins=4)
    model = GrowingMLP(5, [3], 2, embedding=embedding, feature_gate=True)
    with torch.no_grad():
        model.gate.copy_(torch.arange(1.0, model.gate.numel() + 1) / GATE_MULTIPLIER)
    values = model.gate_values().tolist()
    columns = embedding.output_columns()
    expected = [max(v for v, c in zip(values, columns, strict=True) if c == j) for j in range(5)]
    assert model.gate_by_column() == pytest.approx(expected)
    assert columns[:4] == [1] * 4 and columns[-3:] == [0, 2, 4]


# --- training ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_csv(tmp_path_factory):
    """4 informative columns (the label a sum of them with one product) and 16 of noise."""
    rng = np.random.default_rng(0)
    n = 800
    signal = rng.normal(size=(n, 4))
    label = (signal[:, 0] + signal[:, 1] - signal[:, 2] * signal[:, 3] > 0).astype(int)
    noise = rng.normal(size=(n, 16))
    names = [f"signal{i}" for i in range(4)] + [f"noise{i}" for i in range(16)]
    path = tmp_path_factory.mktemp("gate") / "noisy.csv"
    header = ",".join([*names, "label"])
    rows = [
        ",".join(f"{v:.5f}" for v in [*s, *z]) + f",{y}"
        for s, z, y in zip(signal, noise, label, strict=True)
    ]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _config(source, *settings, epochs=60):
    overrides = [
        ("data.source", str(source)),
        ("data.target", "label"),
        ("train.epochs", epochs),
        *settings,
    ]
    return growml.resolve_config(overrides=overrides)


def test_the_gate_fades_noise_columns_and_metrics_rank_the_signal_first(noisy_csv, tmp_path):
    fixed = [("growth.enabled", False), ("model.hidden_widths", [16]), ("train.lr", 0.01)]
    result = growml.fit(_config(noisy_csv, *fixed, epochs=80), out=tmp_path / "run")
    gate = result.metrics["feature_gate"]
    signal = np.mean([gate[f"signal{i}"] for i in range(4)])
    noise = np.mean([gate[f"noise{i}"] for i in range(16)])
    assert noise < 0.25 * signal
    assert {name for name in list(gate)[:4]} == {f"signal{i}" for i in range(4)}
    assert list(gate.values()) == sorted(gate.values(), reverse=True)
    without = [*fixed, ("model.feature_gate", False)]
    plain = growml.fit(_config(noisy_csv, *without, epochs=80), out=tmp_path / "plain")
    assert "feature_gate" not in plain.metrics
    assert result.metrics["test"]["accuracy"] >= plain.metrics["test"]["accuracy"]


def test_the_gate_waits_for_growth_to_finish(tmp_path, monkeypatch):
    """While the network grows the gate stays at 1; then it learns with its penalty."""
    calls = []  # per training step: ("hold", gate) or ("penalty", strength)
    hold, penalty = GrowingMLP.hold_gate, GrowingMLP.add_gate_penalty

    def record_hold(self):
        calls.append(("hold", self.gate_values().detach().clone()))
        hold(self)

    def record_penalty(self, strength):
        calls.append(("penalty", strength))
        penalty(self, strength)

    monkeypatch.setattr(GrowingMLP, "hold_gate", record_hold)
    monkeypatch.setattr(GrowingMLP, "add_gate_penalty", record_penalty)
    epochs = []
    # many-features' growth ends on validation well before training does.
    settings = [("data.source", "many-features"), ("growth.trim", False), ("seed", 0)]
    result = growml.fit(
        growml.resolve_config(overrides=settings),
        out=tmp_path / "run",
        observers=[lambda event: epochs.append(event) if type(event).__name__ == "EpochEnd" else 0],
    )
    assert len(calls) % len(epochs) == 0  # one call per step, the same steps every epoch
    per_epoch = len(calls) // len(epochs)
    steps = [e for e in result.run.history() if type(e).__name__ == "GrowthStep"]
    assert steps[-1].finished
    growing = steps[-1].epoch * per_epoch  # the steps of the epochs up to the last growth step
    assert all(kind == "hold" for kind, _ in calls[:growing])
    assert all(torch.equal(gate, torch.ones_like(gate)) for _, gate in calls[:growing])
    assert calls[growing:] and all(call == ("penalty", 1e-3) for call in calls[growing:])
    assert not torch.equal(result.run.model.gate_values(), torch.ones_like(result.run.model.gate))


@pytest.fixture(scope="module")
def gated_run(noisy_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("gated") / "run"
    return growml.fit(_config(noisy_csv, ("growth.max_new_neurons", 4), epochs=30), out=out)


def test_model_json_records_the_gate_and_the_run_loads_the_same_network(gated_run):
    info = json.loads((gated_run.path / "model.json").read_text())
    assert info["feature_gate"] is True
    loaded = growml.load_run(gated_run.path)
    torch.testing.assert_close(loaded.model.gate, gated_run.run.model.gate, rtol=0, atol=0)
    raw = gated_run.data.raw_test
    np.testing.assert_array_equal(loaded.predict_proba(raw), gated_run.run.predict_proba(raw))


def test_a_run_without_the_gate_writes_model_json_as_before(noisy_csv, tmp_path):
    settings = [("model.feature_gate", False), ("growth.enabled", False)]
    result = growml.fit(_config(noisy_csv, *settings, epochs=2), out=tmp_path / "run")
    assert "feature_gate" not in json.loads((result.path / "model.json").read_text())
    assert growml.load_run(result.path).model.gate is None


def test_export_folds_the_gate_with_parity(gated_run):
    exported = growml.export_run(gated_run.path)
    assert exported.parity.max_difference <= 1e-5
    raw = gated_run.data.raw_test
    model = growml.load_onnx(exported.path)
    np.testing.assert_array_equal(model.predict(raw), growml.load_run(gated_run.path).predict(raw))


def test_the_report_counts_and_names_the_gated_columns(gated_run):
    report = runner.invoke(app, ["report", str(gated_run.path)])
    assert report.exit_code == 0
    line = next(line for line in report.output.splitlines() if "feature gate" in line)
    assert "of 20 columns" in line and "strongest: signal" in line


def test_synflow_pruning_of_a_gated_run_keeps_parity(noisy_csv, tmp_path):
    settings = [("prune.method", "synflow"), ("prune.compression", 2.0)]
    result = growml.fit(_config(noisy_csv, *settings, epochs=10), out=tmp_path / "run")
    assert result.metrics["prune"]["weights_after"] < result.metrics["prune"]["weights_before"]
    assert growml.export_run(result.path).parity.max_difference <= 1e-5


def test_a_resumed_gated_run_ends_as_the_uninterrupted_one(noisy_csv, tmp_path):
    settings = [("train.checkpoint_seconds", 0), ("growth.max_new_neurons", 4)]
    config = _config(noisy_csv, *settings, epochs=14)
    reference = growml.fit(config, out=tmp_path / "reference")
    resumed = interrupted_then_resumed(config, tmp_path / "run", 9)
    assert_same_end(resumed, reference)


def test_tune_searches_the_gate():
    space = default_space(growml.resolve_config(overrides=[("data.source", "wine")]))
    assert set(space["model.feature_gate"].choices) == {False, True}


@pytest.mark.parametrize(
    "setting", ["train.feature_gate_l1=-1", "train.feature_gate_l1=2", "model.feature_gate=maybe"]
)
def test_nonsense_gate_settings_are_exit_2(setting):
    result = runner.invoke(app, ["fit", "wine", "--set", setting])
    assert result.exit_code == 2 and setting.split("=")[0] in result.output
    assert "Traceback" not in result.output
