"""The diagnostics' experiments on small synthetic data: the table their settings imply, the
claim holding where the data is built for it, the same result for the same seed, progress
that adds up, and a PNG plot of each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from growml.config import FitConfig
from growml.diagnose import EXPERIMENTS, ExperimentResult, experiment_plot, run_experiment

_SMALL = {
    "seeds": 2,
    "rows": 60,
    "epochs": 600,
    "width_factors": [0.25, 1.0, 2.0],
    "init_scales": [0.5, 4.0],
    "width": 16,
    "confusion_widths": [4, 64],
    "confusion_depths": [1, 4],
    "probe": 16,
}


def _config(seed: int = 0, **diagnostics: object) -> FitConfig:
    return FitConfig(seed=seed, diagnostics={**_SMALL, **diagnostics})


def _gaussian(rows: int = 80, inputs: int = 8) -> tuple[np.ndarray, np.ndarray]:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(rows, inputs, generator=generator)
    y = (x[:, 0] - x[:, 1] > 0).long() + (x[:, 2] > 1).long()  # three classes
    return x.numpy(), y.numpy()


@pytest.fixture(scope="module")
def results() -> dict[str, ExperimentResult]:
    x, y = _gaussian()
    return {
        "width-bound": run_experiment("width-bound", x, y, "classification", 3, _config()),
        "init-scale": run_experiment("init-scale", x, y, "classification", 3, _config(epochs=100)),
        "confusion": run_experiment("confusion", x, y, "classification", 3, _config()),
    }


def test_random_targets_fit_at_the_width_bound_and_not_at_a_quarter_of_it(results):
    result = results["width-bound"]
    bound = result.settings["bound"]
    assert (result.settings["n"], result.settings["d"], bound) == (60, 8, 14)  # ⌈120/9⌉
    assert result.column("width") == [4, 14, 28]
    assert result.column("parameters") == [4 * 10 + 1, 14 * 10 + 1, 28 * 10 + 1]
    assert len(result.columns) == len(result.rows[0]) == 6
    losses = dict(zip(result.column("width"), result.column("mse_mean"), strict=True))
    assert losses[14] < 0.01 and losses[28] < 0.01 < 0.05 < losses[4]
    assert all(
        low <= mean <= high
        for low, mean, high in zip(
            result.column("mse_min"),
            result.column("mse_mean"),
            result.column("mse_max"),
            strict=True,
        )
    )
    assert result.holds
    assert result.settings["activation"] == "tanh"


def test_a_larger_initialisation_moves_the_weights_and_the_kernel_less(results):
    result = results["init-scale"]
    assert result.column("init_scale") == [0.5, 4.0]
    assert len(result.rows[0]) == len(result.columns) == 9
    small, large = result.rows
    for name in ("hidden_change", "output_change", "kernel_drift"):
        index = result.columns.index(name)
        assert small[index] > large[index] >= 0
    assert result.holds


def test_confusion_is_measured_for_each_width_and_depth(results):
    result = results["confusion"]
    assert result.column("kind") == ["width", "width", "depth", "depth"]
    assert result.column("value") == [4, 64, 1, 4]
    # One hidden layer of 16 (depth 1) against four: three more 16 × 16 layers and biases.
    parameters = result.column("parameters")
    assert parameters[3] - parameters[2] == 3 * (16 * 16 + 16)
    for low, fifth, mean in zip(
        result.column("min_cosine"),
        result.column("cosine_5th"),
        result.column("mean_cosine"),
        strict=True,
    ):
        assert -1 <= low <= fifth <= 1 and low <= mean <= 1
    assert result.settings["epochs"] == 0 and result.settings["probe"] == 16
    assert result.holds == ("both trends hold" in result.verdict)


def test_every_result_states_its_claim_rule_and_verdict_and_is_json_ready(results):
    for name, result in results.items():
        assert result.name == name
        assert "20" in result.claim  # the citation's year
        assert result.rule and result.verdict
        assert ("holds here" in result.verdict) == result.holds
        assert json.loads(json.dumps(result.to_dict()))["rows"] == result.rows


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_same_seed_gives_the_same_result_and_another_seed_another(name):
    x, y = _gaussian()
    settings = {"epochs": 20, "width_factors": [0.5, 1.0], "confusion_widths": [4, 8]}
    first = run_experiment(name, x, y, "classification", 3, _config(**settings))
    again = run_experiment(name, x, y, "classification", 3, _config(**settings))
    other = run_experiment(name, x, y, "classification", 3, _config(seed=1, **settings))
    assert first == again
    assert first.rows != other.rows


@pytest.mark.parametrize(("name", "networks"), [("width-bound", 2 * 3), ("confusion", 2 * 4)])
def test_progress_counts_every_network_from_zero(name, networks):
    x, y = _gaussian()
    calls = []
    run_experiment(
        name,
        x,
        y,
        "regression",
        1,
        _config(epochs=5),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(done, networks) for done in range(networks + 1)]


def test_regression_targets_use_squared_error():
    x, _ = _gaussian()
    y = (x[:, 0] * x[:, 1]).astype(np.float32)
    result = run_experiment("init-scale", x, y, "regression", 1, _config(epochs=20))
    assert result.settings["loss"] == "mse"
    assert len(result.rows) == 2


def test_each_plot_is_written_as_a_png(results, tmp_path):
    for name, result in results.items():
        path = tmp_path / f"{name}.png"
        experiment_plot(result, path)
        content = path.read_bytes()
        assert content.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(content) > 10_000


def test_an_unknown_experiment_is_refused():
    x, y = _gaussian()
    with pytest.raises(ValueError, match="width-bound"):
        run_experiment("depth-bound", x, y, "classification", 3, _config())
