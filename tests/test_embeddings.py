"""Numeric embeddings: the formulas against float64 re-derivations, the hand backward against
autograd, and an embedded network through every command (fit, resume, pruning, compare, tune,
export, the estimators)."""

import json
import math
import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch
from growml.cli import app
from resuming import assert_same_end, interrupted_then_resumed
from sklearn.datasets import load_wine
from typer.testing import CliRunner

import growml
from growml.compare import compare
from growml.data import Preprocessor
from growml.errors import ConfigError, RunError
from growml.events import GrowthStep
from growml.nn import GrowingMLP
from growml.nn.embeddings import PeriodicEmbedding, PiecewiseEmbedding
from growml.sklearn import GrowingMLPClassifier
from growml.tune import resolve_tune_config, tune

runner = CliRunner()
# Small periodic embeddings keep the fits to seconds.
SMALL = [("model.embedding_frequencies", 4), ("model.embedding_width", 3)]
EMBEDDINGS = {
    "periodic": [("model.embedding", "periodic"), *SMALL],
    "piecewise": [("model.embedding", "piecewise"), ("model.embedding_bins", 6)],
}


def rows(n=40, columns=5, seed=0):
    return torch.randn(n, columns, generator=torch.Generator().manual_seed(seed))


def config(source, *settings, epochs=6):
    overrides = [("data.source", str(source)), ("train.epochs", epochs), *settings]
    return growml.resolve_config(overrides=overrides)


# --- formulas -------------------------------------------------------------------------------


def test_periodic_forward_is_the_plr_formula_in_float64():
    x = rows()
    embedding = PeriodicEmbedding(5, [0, 2, 3], frequencies=4, sigma=0.3, width=6)
    c = embedding.frequencies.detach().double().numpy()
    w, b = embedding.weight.detach().double().numpy(), embedding.bias.detach().double().numpy()
    xd = x.double().numpy()
    expected = []
    for j, column in enumerate([0, 2, 3]):
        angle = 2 * math.pi * xd[:, column : column + 1] * c[j]
        expected.append(np.maximum(np.hstack([np.cos(angle), np.sin(angle)]) @ w.T + b, 0.0))
    expected = np.hstack([*expected, xd[:, [1, 4]]])
    assert embedding.output_size == 3 * 6 + 2
    np.testing.assert_allclose(embedding(x).detach().double().numpy(), expected, atol=1e-5)


def test_periodic_frequencies_start_normal_with_sigma_cut_at_three():
    embedding = PeriodicEmbedding(
        200, range(200), frequencies=48, sigma=0.05, generator=torch.Generator().manual_seed(0)
    )
    c = embedding.frequencies.detach().numpy()
    assert abs(c.std() - 0.05) < 0.003 and np.abs(c).max() <= 0.15 and abs(c.mean()) < 0.002


def test_piecewise_bins_are_training_quantiles_and_the_encoding_is_the_ple_formula():
    x = rows(200)
    x[:, 4] = 1.5  # a constant column: one bin, not clipped
    x[:, 2] = torch.round(x[:, 2])  # few values: equal quantiles merge
    embedding = PiecewiseEmbedding.fit(x.numpy(), [0, 2, 4], max_bins=8)
    assert embedding.bins[0] == 8 and embedding.bins[1] < 8 and embedding.bins[2] == 1
    test = rows(60, seed=1) * 3  # beyond the training range on both sides
    xd, out = test.double().numpy(), embedding(test).double().numpy()
    expected = []
    for column, bins in zip([0, 2, 4], embedding.bins, strict=True):
        values = x[:, column].double().numpy()
        edges = np.unique(np.quantile(values, np.linspace(0, 1, 9)).astype(np.float32))
        if edges.size == 1:
            edges = np.array([edges[0], edges[0] + 1])
        assert edges.size == bins + 1
        for t in range(1, bins + 1):
            e = (xd[:, column] - edges[t - 1]) / (edges[t] - edges[t - 1])
            if t > 1:
                e = np.where(xd[:, column] < edges[t - 1], 0.0, e)
            if t < bins:
                e = np.where(xd[:, column] >= edges[t], 1.0, e)
            expected.append(e)
    expected = np.column_stack([*expected, xd[:, [1, 3]]])
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # Quantiles that differ in float64 only are one edge, never a bin of width 0.
    close = x.clone()
    close[:, 0] = 1.0 + torch.arange(200) % 2 * 1e-9
    assert bool((PiecewiseEmbedding.fit(close.double().numpy(), [0], 8).bin_widths > 0).all())
    # The first bin extends below, the last above: values outside the training range.
    assert out[:, 0].min() < 0 and out[:, embedding.bins[0] - 1].max() > 1


@pytest.mark.parametrize("kind", ["periodic", "piecewise"])
def test_hand_backward_matches_autograd_for_every_parameter(kind):
    x, target = rows(32, 6), rows(32, 3, seed=2)
    if kind == "periodic":
        embedding = PeriodicEmbedding(6, [1, 2, 4, 5], frequencies=5, sigma=0.5, width=4)
    else:
        embedding = PiecewiseEmbedding.fit(x.numpy(), [1, 2, 4, 5], max_bins=5)
    model = GrowingMLP(6, [7, 4], 3, embedding=embedding).double()
    x, target = x.double(), target.double()
    loss = ((model(x) - target) ** 2).sum() / 2
    expected = dict(
        zip(
            dict(model.named_parameters()),
            torch.autograd.grad(loss, list(model.parameters())),
            strict=True,
        )
    )
    with torch.no_grad():
        cache = model.forward_cached(x)
        model.backward(cache, cache.output - target)
    assert (kind == "periodic") == ("embedding.frequencies" in expected)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-9, atol=1e-12)


def test_only_standardised_numbers_are_embedded():
    table = pa.table(
        {
            "age": [30.0, None, 50.0, 41.0],
            "colour": ["red", "blue", "red", None],
            "member": [True, False, True, True],
            "income": [1.0, 2.0, 3.0, 4.0],
        }
    )
    preprocessor = Preprocessor.fit(table)
    names = preprocessor.output_names
    assert [names[i] for i in preprocessor.numeric_outputs] == ["age", "income"]


# --- through the commands -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["periodic", "piecewise"])
def embedded_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "run"
    settings = [*EMBEDDINGS[request.param], ("growth.max_new_neurons", 4)]
    result = growml.fit(config("wine", *settings, epochs=25), out=out)
    return request.param, result


def test_growth_feeds_the_first_layer_the_embedding_and_the_loss_goes_down(embedded_run):
    kind, result = embedded_run
    model = result.run.model
    assert model.embedding.kind == kind
    assert model.weights[0].shape[1] == model.embedding.output_size
    steps = [e for e in result.run.history() if isinstance(e, GrowthStep)]
    assert sum(step.added for step in steps) > 0 and model.hidden_widths[0] > 1
    losses = [e.train_loss for e in result.run.history() if type(e).__name__ == "EpochEnd"]
    assert losses[-1] < losses[0]
    assert result.metrics["test"]["accuracy"] > 0.8


def test_model_json_and_safetensors_round_trip(embedded_run):
    kind, result = embedded_run
    spec = json.loads((result.path / "model.json").read_text())["embedding"]
    assert spec["kind"] == kind and spec["numeric"] == list(range(13))
    loaded = growml.load_run(result.path)
    x = torch.as_tensor(result.data.x_test)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), result.run.model(x), rtol=0, atol=0)
    raw = result.data.raw_test
    np.testing.assert_array_equal(loaded.predict(raw), result.run.predict(raw))


def test_report_names_the_embedding(embedded_run):
    kind, result = embedded_run
    report = runner.invoke(app, ["report", str(result.path)])
    assert report.exit_code == 0 and f"{kind} (13 numeric columns)" in report.output


def test_a_damaged_embedding_in_model_json_is_a_run_error(embedded_run, tmp_path):
    _, result = embedded_run
    copy = tmp_path / "run"
    shutil.copytree(result.path, copy)
    info = json.loads((copy / "model.json").read_text())
    info["embedding"]["kind"] = "fourier"
    (copy / "model.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="damaged"):
        growml.load_run(copy)


def test_export_parity(embedded_run):
    _, result = embedded_run
    exported = growml.export_run(result.path)
    assert exported.parity.max_difference <= 1e-5
    model = growml.load_onnx(exported.path)
    run = growml.load_run(result.path)
    raw = result.data.raw_test
    np.testing.assert_array_equal(model.predict(raw), run.predict(raw))
    np.testing.assert_allclose(model.predict_proba(raw), run.predict_proba(raw), atol=1e-5)


@pytest.mark.parametrize("kind", ["periodic", "piecewise"])
def test_export_parity_with_categories_and_missing_values(tmp_path, kind):
    """Columns that pass through (one-hot, indicators, booleans) sit between the numbers in
    the preprocessing's order and apart from them in the graph's."""
    rng = np.random.default_rng(0)
    lines = ["age,income,colour,member,label"]
    for i in range(120):
        age = "" if i % 11 == 0 else f"{rng.normal(40, 12):.1f}"
        colour = "" if i % 13 == 0 else ["red", "green", "blue"][i % 3]
        member = "true" if rng.random() < 0.5 else "false"
        label = "yes" if (colour == "red") + (member == "true") >= 1 else "no"
        lines.append(f"{age},{rng.lognormal(10, 1):.2f},{colour},{member},{label}")
    source = tmp_path / "mixed.csv"
    source.write_text("\n".join(lines) + "\n")
    settings = [*EMBEDDINGS[kind], ("model.hidden_widths", [5]), ("growth.enabled", False)]
    result = growml.fit(config(source, *settings, ("data.target", "label")), out=tmp_path / "r")
    assert result.run.model.embedding.numeric == (0, 2)  # age, income; age_missing passes
    exported = growml.export_run(result.path)
    assert exported.parity.max_difference <= 1e-5


@pytest.mark.parametrize("kind", ["periodic", "piecewise"])
def test_synflow_pruning_after_growth_keeps_the_embedding(tmp_path, kind):
    settings = [*EMBEDDINGS[kind], ("prune.method", "synflow"), ("prune.compression", 2.0)]
    result = growml.fit(config("wine", *settings, epochs=10), out=tmp_path / "run")
    pruning = result.metrics["prune"]
    assert pruning["weights_after"] < pruning["weights_before"]
    assert result.run.model.embedding.kind == kind
    assert growml.export_run(result.path).parity.max_difference <= 1e-5


def test_a_resumed_run_ends_as_the_uninterrupted_one(tmp_path):
    settings = [*EMBEDDINGS["periodic"], ("train.checkpoint_seconds", 0)]
    reference = growml.fit(config("wine", *settings, epochs=12), out=tmp_path / "reference")
    resumed = interrupted_then_resumed(config("wine", *settings, epochs=12), tmp_path / "run", 7)
    assert_same_end(resumed, reference)


def test_compare_trains_the_fixed_widths_with_the_same_embedding(tmp_path):
    settings = EMBEDDINGS["piecewise"]
    result = compare(config("wine", *settings), widths=[[3]], seeds=1, jobs=1, out=tmp_path / "c")
    specs = [json.loads(p.read_text()) for p in sorted(result.path.rglob("model.json"))]
    assert len(specs) >= 2
    assert all(spec["embedding"]["kind"] == "piecewise" for spec in specs)


def test_tune_searches_the_embedding(tmp_path):
    space = {"space": {"model.embedding": ["none", "piecewise"]}}
    settings = [("data.source", "wine"), ("train.epochs", 4), ("model.embedding_bins", 4)]
    fit_config, tune_settings = resolve_tune_config({"tune": space}, settings)
    result = tune(fit_config, tune_settings, trials=4, out=tmp_path / "t")
    chosen = {trial["settings"]["model.embedding"] for trial in result.document["best"]}
    assert chosen <= {"none", "piecewise"} and chosen


@pytest.mark.parametrize("kind", ["periodic", "piecewise"])
def test_estimator_fits_and_predicts_with_an_embedding(kind):
    X, y = load_wine(return_X_y=True)
    estimator = GrowingMLPClassifier(
        epochs=10, lr=0.02, random_state=0, set=dict(EMBEDDINGS[kind])
    ).fit(X, y)
    assert estimator.run_.model.embedding.kind == kind
    assert (estimator.predict(X) == y).mean() > 0.8


# --- user errors ----------------------------------------------------------------------------


def test_unknown_embedding_is_exit_2():
    result = runner.invoke(app, ["fit", "wine", "--set", "model.embedding=fourier"])
    assert result.exit_code == 2 and "model.embedding" in result.output


@pytest.mark.parametrize(
    "setting",
    ["model.embedding_frequencies=0", "model.embedding_sigma=-1", "model.embedding_bins=1"],
)
def test_nonsense_embedding_numbers_are_exit_2(setting):
    result = runner.invoke(app, ["fit", "wine", "--set", setting])
    assert result.exit_code == 2 and setting.split("=")[0] in result.output


def test_embedding_data_without_numbers_is_a_config_error(write_csv, tmp_path):
    lines = ["colour,label"] + [f"{c},{c == 'red'}" for c in ["red", "blue", "green"] * 20]
    path = write_csv("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="numeric columns"):
        growml.fit(
            config(path, ("data.target", "label"), *EMBEDDINGS["periodic"]), out=tmp_path / "r"
        )


def test_the_memory_check_counts_what_the_embedding_gives_the_first_layer(tmp_path, monkeypatch):
    """A first layer of 2048 over 64 raw pixels fits in 50 MB; over their periodic embedding
    (64 outputs a pixel) it does not, and nothing is written."""
    import growml.fitting
    from growml.errors import TrainingError

    monkeypatch.setattr(growml.fitting, "_available_memory", lambda: 50 * 2**20)
    fixed = [("growth.enabled", False), ("model.hidden_widths", [2048])]
    embedded = [("model.embedding", "periodic"), ("model.embedding_width", 64)]
    with pytest.raises(TrainingError, match="GiB of memory is available"):
        growml.fit(config("digits", *fixed, *embedded, epochs=1), out=tmp_path / "embedded")
    assert not (tmp_path / "embedded").exists()
    growml.fit(config("digits", *fixed, epochs=1), out=tmp_path / "plain")
