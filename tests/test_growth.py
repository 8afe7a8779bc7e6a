"""The growth engine: the line search's extended network, the loop, budgets, methods, numerics."""

import json
import math

import numpy as np
import pytest
import torch

import growml
from growml.config import DataConfig, GrowthConfig, TrainConfig
from growml.data import load_table, prepare
from growml.events import GrowthStep
from growml.growth.engine import GrowthEngine, apply_candidate
from growml.growth.line_search import Candidate, armijo, extended_loss
from growml.growth.statistics import collect_statistics
from growml.growth.tiny import tiny_proposal
from growml.losses import CrossEntropy, MeanSquaredError, default_loss
from growml.nn import GrowingMLP
from growml.train import Trainer


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("linear", [True, False])
def test_extended_loss_equals_the_loss_after_applying(layer, linear):
    generator = torch.Generator().manual_seed(0)
    model = GrowingMLP(6, [3, 4], 3, "tanh", generator=generator).double()
    x = torch.randn(50, 6, dtype=torch.float64, generator=generator)
    loss = CrossEntropy(3)
    target = loss.prepare_target(np.arange(50) % 3).double()
    proposal = tiny_proposal(collect_statistics(model, loss, x, target)[layer])
    candidate = Candidate(
        layer, proposal.alpha[:2], proposal.omega[:, :2], proposal.weight_update, linear
    )
    with torch.no_grad():
        loss_at = extended_loss(model, model.forward_cached(x), loss, target, candidate)
        predicted = loss_at(0.7)
        apply_candidate(model, None, candidate, 0.7)
        assert model.hidden_widths[layer] == [3, 4][layer] + 2
        assert predicted == pytest.approx(float(loss(model(x), target)), rel=1e-12)


def test_armijo_accepts_a_sufficient_decrease_within_the_largest_step():
    def quadratic(t):  # L(t) = 1 − t + t²/4: first-order slope 1, minimum at t = 2
        return 1 - t + t * t / 4

    step, value = armijo(quadratic, 1.0, first_order=1.0)
    assert value < 1 - 0.1 * step * 1.0
    assert 1.0 <= step <= 4.0
    capped, _ = armijo(quadratic, 1.0, first_order=1.0, largest=0.25)
    assert capped <= 0.25
    from_one, _ = armijo(quadratic, 1.0, first_order=1.0, start=1.0)
    assert from_one == 2.0  # accepted at 1, doubled once to the minimum, not beyond
    assert armijo(quadratic, 1.0, first_order=-1.0) == (0.0, 1.0)
    assert armijo(lambda t: 2.0, 1.0, first_order=1.0) == (0.0, 1.0)


@pytest.fixture(scope="module")
def digits():
    return prepare(load_table("digits"), DataConfig(), seed=0)


def _grow(data, growth=None, train=None, widths=(1,), task="classification"):
    n_outputs = data.target_encoder.n_outputs
    model = GrowingMLP(
        data.x_train.shape[1], list(widths), n_outputs, generator=torch.Generator().manual_seed(0)
    )
    loss = default_loss(task, n_outputs)
    events = []
    trainer = Trainer(
        TrainConfig(**(train or {"epochs": 60})),
        loss,
        task,
        observers=[events.append],
        growth=GrowthEngine(GrowthConfig(**(growth or {})), loss),
    )
    result = trainer.run(model, data.x_train, data.y_train, data.x_val, data.y_val)
    steps = [e for e in events if isinstance(e, GrowthStep)]
    return model, trainer, result, steps


@pytest.mark.parametrize("method", ["pool", "tiny"])
def test_growth_from_width_one_adds_neurons_that_lower_the_loss(digits, method):
    model, trainer, result, steps = _grow(
        digits, growth={"method": method}, train={"epochs": 60, "early_stopping": False}
    )
    added = [s for s in steps if s.added]
    assert added and model.hidden_widths[0] > 1
    for step in added:
        assert step.predicted_first_order > 0 and step.gamma > 0
        assert step.loss_after < step.loss_before
        assert step.lambdas == sorted(step.lambdas, reverse=True)
        assert all(math.isfinite(b) for b in step.bottleneck_before + step.bottleneck_after)
        assert all(score > step.noise_floor for score in step.lambdas)
        if method == "tiny":
            assert step.added % 2 == 0  # TINY's ReLU neurons come in pairs by default
    # The optimizer was never rebuilt and its state matches every parameter's shape.
    for param in model.parameters():
        for value in trainer.optimizer_.state[param].values():
            if value.dim():
                assert value.shape == param.shape
    assert result.best_validation["accuracy"] > 0.85


def test_parameter_budget_is_never_exceeded(digits):
    model, _, _, steps = _grow(
        digits, growth={"max_params": 600}, train={"epochs": 80, "early_stopping": False}
    )
    assert model.n_parameters() <= 600
    assert any(step.reason == "parameter budget reached" for step in steps)


def test_growth_stops_after_steps_that_do_not_improve_validation():
    loss = CrossEntropy(2)
    engine = GrowthEngine(GrowthConfig(max_failures=2, noise_factor=1e-6), loss)
    model = GrowingMLP(3, [2], 2, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] * x[:, 1] > 0).long().numpy())
    reasons = [engine.step(model, optimizer, x, target, epoch)[-1].reason for epoch in range(4)]
    assert reasons[-1].startswith("validation stopped improving")
    assert engine.finished_
    assert not engine.wants_step(10, 1.0, 100)


@pytest.mark.parametrize("method", ["pool", "tiny", "tiny-noproj", "gradmax", "random"])
def test_every_method_grows_through_the_same_engine(digits, method):
    model, _, _, steps = _grow(
        digits, growth={"method": method, "every": 5}, train={"epochs": 16, "early_stopping": False}
    )
    assert any(step.added for step in steps) and all(s.method == method for s in steps)
    assert model.hidden_widths[0] > 1


@pytest.mark.parametrize("where", ["all", "round-robin"])
def test_two_hidden_layers_both_grow(digits, where):
    model, _, _, steps = _grow(
        digits,
        growth={"where": where, "every": 4},
        widths=(1, 1),
        train={"epochs": 17, "early_stopping": False},
    )
    grown_layers = {step.layer for step in steps if step.added}
    assert grown_layers == {0, 1}


def test_regression_grows_with_squared_error():
    data = prepare(load_table("friedman"), DataConfig(), seed=0)
    model, _, result, steps = _grow(
        data, task="regression", growth={"every": 5}, train={"epochs": 40, "early_stopping": False}
    )
    assert any(step.added for step in steps) and model.hidden_widths[0] > 1
    assert result.best_validation["r2"] > 0.5


def test_degenerate_columns_grow_without_nan():
    generator = np.random.default_rng(0)
    x = generator.normal(size=(300, 6)).astype(np.float32)
    x[:, 2] = 0.0  # constant after standardisation
    x[:, 3] = x[:, 4]  # duplicated
    y = ((x[:, 0] * x[:, 1]) > 0).astype(np.int64)
    model = GrowingMLP(6, [1], 1, generator=torch.Generator().manual_seed(0))
    loss = default_loss("classification", 1)
    engine = GrowthEngine(GrowthConfig(), loss)
    Trainer(
        TrainConfig(epochs=40, early_stopping=False), loss, "classification", growth=engine
    ).run(model, x[:200], y[:200], x[200:], y[200:])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert engine.steps_ > 0


def test_a_layer_with_unusable_statistics_is_skipped_with_a_reason():
    loss = MeanSquaredError()
    model = GrowingMLP(3, [2, 2], 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.weights[0][0, 0] = math.inf  # layer 0's outputs, and so its statistics, break
    engine = GrowthEngine(GrowthConfig(noise_factor=1e-6), loss)
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
    events = engine.step(model, torch.optim.Adam(model.parameters()), x, torch.randn(32, 1), 1)
    assert events[-1].skipped and "non-finite" in next(iter(events[-1].skipped.values()))


def test_fit_grows_by_default_and_records_every_step(tmp_path):
    config = growml.resolve_config(overrides=[("data.source", "digits"), ("train.epochs", 60)])
    assert config.growth.enabled and config.model.hidden_widths == [1]
    result = growml.fit(config, out=tmp_path / "run")
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").open()]
    steps = [event for event in history if event["event"] == "growth"]
    assert steps and steps[0]["hidden_widths"][0] > 1
    for key in (
        "layer",
        "added",
        "lambdas",
        "predicted_first_order",
        "loss_before",
        "loss_after",
        "gamma",
        "bottleneck_before",
        "bottleneck_after",
        "hidden_widths",
        "parameters",
        "seconds",
    ):
        assert key in steps[0]
    assert result.metrics["hidden_widths"][0] > 1


@pytest.mark.parametrize(
    ("train", "says"),
    [
        ({"epochs": 6, "early_stopping": False}, "the epoch budget ran out while growing"),
        ({"epochs": 200, "patience": 2}, "training stopped early while growing"),
    ],
)
def test_the_summary_says_what_ended_growth(tmp_path, train, says):
    overrides = [("data.source", "digits"), ("growth.max_failures", 50)]
    overrides += [(f"train.{key}", value) for key, value in train.items()]
    result = growml.fit(growml.resolve_config(overrides=overrides), out=tmp_path / "run")
    assert result.metrics["growth"]["stopped"].startswith(says)
    assert result.metrics["epochs"] < 200 or not train.get("early_stopping", True)


def test_restoring_pre_growth_weights_keeps_the_optimizer_consistent():
    """Best weights from before growth come back with their shapes; optimizer state that no
    longer fits them is dropped (fused kernels would silently misalign it), the rest is kept."""
    from growml.nn.optimizer_state import forget_stale_state
    from growml.prune import SynFlow, prune_neurons
    from growml.train import make_optimizer

    model = GrowingMLP(4, [3], 2, generator=torch.Generator().manual_seed(0))
    optimizer = make_optimizer(model.parameters(), TrainConfig())
    for _ in range(2):
        model(torch.randn(8, 4)).sum().backward()
        optimizer.step()
    best = [p.detach().clone() for p in model.parameters()]
    model.add_neurons(0, torch.randn(2, 4), torch.zeros(2), torch.zeros(2, 2), optimizer)
    for param, saved in zip(model.parameters(), best, strict=True):
        param.data = saved
    forget_stale_state(optimizer)
    params = dict(model.named_parameters())
    assert params["weights.0"] not in optimizer.state  # grown, then restored: state dropped
    assert params["biases.1"] in optimizer.state  # untouched by growth: state kept
    prune_neurons(model, optimizer, SynFlow(), compression=1.5, iterations=2)
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    for param in model.parameters():
        for value in optimizer.state.get(param, {}).values():
            if value.dim():
                assert value.shape == param.shape


def test_budget_limits_whole_relu_pairs(digits):
    model, _, _, steps = _grow(
        digits,
        growth={"max_params": 420, "every": 2, "method": "tiny"},
        train={"epochs": 12, "early_stopping": False},
    )
    assert model.n_parameters() <= 420
    assert all(step.added % 2 == 0 for step in steps)


def test_no_growth_while_warming_up():
    from growml.losses import SoftSetLoss

    generator = np.random.default_rng(0)
    x = generator.normal(size=(300, 4)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1]) > 0.8).astype(np.int64)
    loss = SoftSetLoss("f1")
    events = []
    Trainer(
        TrainConfig(epochs=8, early_stopping=False),
        loss,
        "classification",
        observers=[events.append],
        growth=GrowthEngine(GrowthConfig(every=1), loss),
        warmup=default_loss("classification", 1),
        warmup_epochs=4,
    ).run(GrowingMLP(4, [1], 1), x, y, x, y)
    assert all(event.epoch > 4 for event in events if isinstance(event, GrowthStep))
    assert any(isinstance(event, GrowthStep) for event in events)


def test_settings_that_cannot_work_together_are_refused():
    from growml.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot follow a growing network"):
        growml.resolve_config(
            overrides=[
                ("prune.method", "synflow"),
                ("prune.compression", 2),
                ("prune.when", "at-init"),
            ]
        )
    with pytest.raises(ConfigError, match="growth.statistics_rows"):
        growml.resolve_config(overrides=[("growth.statistics_rows", 2)])
