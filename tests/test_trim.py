"""Trimming after growth (growth.trim): removal is exact, the greedy rule keeps validation within
its tolerance and stops at the first removal that costs more, dead and duplicate neurons go,
a trimmed network that fine-tunes worse is given back, and the run records it all."""

import json

import numpy as np
import pytest
import torch
from growml.cli import app
from typer.testing import CliRunner

import growml
from growml.config import resolve_config
from growml.events import EpochEnd, TrimEnd, TrimStep, kept_epoch
from growml.growth import removal, trim
from growml.nn.mlp import GrowingMLP
from growml.train import trainer as trainer_module
from growml.train.hooks import Hook


def _network(widths, activation="relu", seed=0):
    generator = torch.Generator().manual_seed(seed)
    return GrowingMLP(3, widths, 2, activation, generator=generator).double()


def _numpy_forward(model, x, without=(), rows=None):
    """The network's output recomputed in float64 numpy with the neurons ``without`` deleted
    from their layer and, given training ``rows``, the kept neurons' outgoing weights (and the
    next bias) moved by the least-squares fit of the deleted ones' activations on those rows
    (the untrimmed network's activations)."""
    layers = [(w.detach().numpy().copy(), b.detach().numpy().copy()) for w, b in model._layers]
    hidden, activations, h = len(layers) - 1, [], rows
    for w, b in layers[:-1] if rows is not None else []:
        h = np.maximum(h @ w.T + b, 0)
        activations.append(h)
    for layer in range(hidden):
        gone = [i for k, i in without if k == layer]
        kept = [i for i in range(len(layers[layer][1])) if i not in gone]
        w, b = layers[layer + 1]
        if gone and rows is not None:
            z = np.hstack([activations[layer][:, kept], np.ones((len(rows), 1))])
            beta, *_ = np.linalg.lstsq(z, activations[layer][:, gone], rcond=None)
            w[:, kept] += w[:, gone] @ beta[:-1].T
            b = b + w[:, gone] @ beta[-1]
        layers[layer + 1] = (w[:, kept], b)
        layers[layer] = (layers[layer][0][kept], layers[layer][1][kept])
    h = x
    for index, (w, b) in enumerate(layers):
        h = h @ w.T + b if index == hidden else np.maximum(h @ w.T + b, 0)
    return h


@pytest.mark.parametrize("without", [[(0, 2)], [(1, 0), (1, 3)], [(0, 0), (0, 4), (1, 1)]])
def test_trimming_is_exactly_the_network_without_the_neurons_and_the_rest_refitted(without):
    model = _network([5, 4])
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(50, 3, generator=generator, dtype=torch.float64)
    rows = torch.randn(80, 3, generator=generator, dtype=torch.float64)
    reconstruction = removal.Reconstruction(model, rows, ridge=0.0)
    expected = _numpy_forward(model, x.numpy(), without, rows.numpy())
    full = model(x).detach().numpy()
    np.testing.assert_allclose(full, _numpy_forward(model, x.numpy()), rtol=1e-12, atol=1e-12)
    with torch.no_grad(), removal.trimmed(model, without, reconstruction):
        np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(model(x).detach().numpy(), full)  # restored exactly
    assert not np.allclose(full, expected, atol=1e-6)  # the trimmed neurons did contribute
    removal.remove(model, without, reconstruction, None)
    assert model.hidden_widths == [
        5 - sum(k == 0 for k, _ in without),
        4 - sum(k == 1 for k, _ in without),
    ]
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=1e-9, atol=1e-9)


def test_a_neuron_the_others_express_on_the_rows_goes_without_changing_the_function():
    """Where every neuron is active, each is an affine function of the 3 inputs: four of them
    and the bias span all such functions, so a fifth is theirs exactly."""
    model = _network([5])
    x = torch.randn(60, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    with torch.no_grad():
        model.biases[0].fill_(10.0)  # all active on the rows
    before = model(x).detach()
    reconstruction = removal.Reconstruction(model, x, ridge=0.0)
    with torch.no_grad(), removal.trimmed(model, [(0, 4)], reconstruction):
        torch.testing.assert_close(model(x), before, rtol=1e-9, atol=1e-9)
    with torch.no_grad():  # silenced alone, it would have changed the output
        model.weights[1][:, 4] = 0
        assert not torch.allclose(model(x), before, atol=1e-3)


@pytest.mark.parametrize(("activation", "scale"), [("relu", 2.5), ("relu", 1.0), ("tanh", 1.0)])
def test_twins_are_merged_without_changing_the_function(activation, scale):
    model = _network([4, 3], activation)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        incoming = scale * model.weights[0][1:2].clone()
        bias = scale * model.biases[0][1:2].clone()
    model.add_neurons(0, incoming, bias, torch.randn(3, 1, dtype=torch.float64))
    before = model(x).detach()
    assert removal.merge_twins(model, None) == [1, 0]
    assert model.hidden_widths == [4, 3]
    torch.testing.assert_close(model(x).detach(), before, rtol=1e-12, atol=1e-12)


def test_a_scaled_copy_is_no_twin_for_tanh():
    model = _network([4], "tanh")
    with torch.no_grad():
        incoming, bias = 2 * model.weights[0][:1].clone(), 2 * model.biases[0][:1].clone()
    model.add_neurons(0, incoming, bias, torch.ones(2, 1, dtype=torch.float64))
    assert removal.merge_twins(model, None) == [0]


def _mse_score(model, x, target):
    reconstruction = removal.Reconstruction(model, x)

    def score(without):
        with torch.no_grad(), removal.trimmed(model, without, reconstruction):
            return (float(((model(x) - target) ** 2).mean()),)

    return score


def test_dead_neurons_go_and_trimming_stops_at_the_first_removal_that_costs():
    """A teacher's every neuron matters; dead neurons added to it carry nothing."""
    model = _network([6])
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        model.biases[0].fill_(0.5)  # every neuron active on most rows
        target = model(x).clone()
    dead_in = torch.zeros(3, 3, dtype=torch.float64)
    model.add_neurons(0, dead_in, torch.full((3,), -1.0, dtype=torch.float64), torch.ones(2, 3))
    score = _mse_score(model, x, target)
    # Zero up to the float64 matmul's rounding: wider blocks may sum in another order.
    assert score([])[0] == pytest.approx(0.0, abs=1e-24)
    removed = trim.trim_neurons(model, score, trim.Criterion((1e-6,), 0.01, (False,)))
    assert sorted(removed) == [(0, 6), (0, 7), (0, 8)]


def test_what_trimming_removes_keeps_validation_within_tolerance():
    model = _network([12, 8], seed=4)
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    teacher = _network([3], seed=6)
    with torch.no_grad():
        target = teacher(x)
        model.weights[-1].mul_(0.05)  # many neurons of small contribution
    score = _mse_score(model, x, target)
    criterion = trim.Criterion(score([]), 0.05, (False,))
    removed = trim.trim_neurons(model, score, criterion, exact=5)
    assert removed and criterion.accepts(score(removed))
    assert all(
        sum(1 for k, _ in removed if k == layer) < width for layer, width in [(0, 12), (1, 8)]
    )
    # The next removal, least harm first, would cost more than the tolerance allows.
    ranked = trim.rank_neurons(model, score, criterion, removed)
    assert not ranked or not criterion.accepts(ranked[0][0])


@pytest.mark.parametrize(
    ("scores", "accepted"),
    [
        ((0.9901, 1.009), True),
        ((0.9899, 1.009), False),  # validation accuracy 1 % lower
        ((0.9901, 1.011), False),  # training loss 1 % higher
        ((1.0, 0.5), True),
    ],
)
def test_both_scores_must_stay_within_the_tolerance_relative_to_their_size(scores, accepted):
    criterion = trim.Criterion((1.0, 1.0), 0.01, (True, False))
    assert criterion.accepts(scores) is accepted
    assert criterion.accepts_first(scores) is (scores[0] >= 0.99)


def _fit(tmp_path, *overrides, observers=(), resume=False, checkpoints=True):
    config = resolve_config(
        overrides=[
            ("data.source", "circles"),
            ("train.epochs", 60),
            ("train.threads", 1),
            ("train.checkpoint_seconds", 0),
            ("growth.trim", True),
            *overrides,
        ]
    )
    return growml.fit(
        config, out=tmp_path / "run", observers=observers, resume=resume, checkpoints=checkpoints
    )


def test_a_grown_network_is_trimmed_and_the_run_records_it(tmp_path):
    result = _fit(tmp_path)
    history = result.run.history()
    steps = [e for e in history if isinstance(e, TrimStep)]
    ends = [e for e in history if isinstance(e, TrimEnd)]
    assert len(steps) == len(ends) == 1
    step, end = steps[0], ends[0]
    summary = result.metrics["trim"]
    assert summary["removed"] == step.removed and sum(step.removed) > 0
    assert summary["parameters_before"] > summary["parameters_after"] == step.parameters
    assert end.kept and result.metrics["parameters"] == summary["parameters_after"]
    assert result.metrics["hidden_widths"] == step.hidden_widths
    # Validation and the training loss no worse than untrimmed, within the tolerance, after
    # removal; validation after fine-tuning too.
    for name in ("validation", "training_loss"):
        limit = summary[f"{name}_before"] * (1 + summary["tolerance"])
        assert summary[f"{name}_after_removal"] <= limit
    assert summary["validation_after"] <= summary["validation_before"] * 1.01
    assert result.metrics["validation"]["log_loss"] == pytest.approx(
        summary["validation_after"], rel=1e-4
    )
    # The kept epoch is the fine-tuning's, after the trim events.
    kept = kept_epoch(history, final=True)
    assert kept.hidden_widths == step.hidden_widths
    assert history.index(kept) > history.index(step)
    reloaded = growml.load_run(result.path)
    assert reloaded.metrics_record.trim.kept and reloaded.model.hidden_widths == step.hidden_widths


class _Spoil(Hook):
    """Fine-tuning that ruins the network: after every step it predicts one constant."""

    def on_step_end(self, loop):
        loop.model.weights[-1].data.zero_()
        loop.model.biases[-1].data.fill_(3.0)


def test_a_trimmed_network_worse_after_fine_tuning_gives_way_to_the_untrimmed(
    tmp_path, monkeypatch
):
    def spoiling(self):
        return trainer_module.Trainer(
            self.config, self.loss, self.task, self.observers, self.seed, hooks=[_Spoil()]
        )

    reference = _fit(tmp_path / "reference", ("growth.trim", False))
    monkeypatch.setattr(trainer_module.Trainer, "fine_tuning", spoiling)
    result = _fit(tmp_path)
    summary = result.metrics["trim"]
    assert not summary["kept"] and summary["parameters_after"] < summary["parameters_before"]
    assert result.metrics["hidden_widths"] == reference.metrics["hidden_widths"]
    for split in ("validation", "test"):
        for name, value in reference.metrics[split].items():
            assert result.metrics[split][name] == pytest.approx(value, abs=1e-6), (split, name)
    assert result.metrics["best_epoch"] == reference.metrics["best_epoch"]
    history = result.run.history()
    assert kept_epoch(history, final=True) == kept_epoch(history)
    assert [e.kept for e in history if isinstance(e, TrimEnd)] == [False]


def test_a_comparison_trims_its_growing_runs_and_never_its_fixed_widths():
    from growml.compare.members import plan

    members = plan(resolve_config(overrides=[("data.source", "circles")]), [[8], [16]], [0, 1])
    for member in members:
        growth = member.config["growth"]
        assert (growth["enabled"] and growth["trim"]) is (member.kind == "grown")


def test_fixed_widths_are_not_trimmed(tmp_path):
    result = _fit(tmp_path, ("growth.enabled", False), ("model.hidden_widths", [16]))
    assert "trim" not in result.metrics
    assert not any(isinstance(e, TrimStep) for e in result.run.history())


class _Interrupt:
    """Ctrl-C while trimming (the training's checkpoints are written)."""

    def __call__(self, event):
        if isinstance(event, TrimStep):
            raise KeyboardInterrupt


def _without_seconds(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in event.items() if k != "seconds"} for event in lines]


def test_a_run_interrupted_while_trimming_resumes_to_the_uninterrupted_result(tmp_path):
    reference = _fit(tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, observers=[_Interrupt()])
    assert not (tmp_path / "run").exists()
    resumed = _fit(tmp_path, resume=True)
    for split in ("train", "validation", "test"):
        for name, value in reference.metrics[split].items():
            assert resumed.metrics[split][name] == pytest.approx(value, abs=1e-6), (split, name)
    for key in ("hidden_widths", "parameters", "epochs", "best_epoch"):
        assert resumed.metrics[key] == reference.metrics[key]
    assert _without_seconds(resumed.path / "history.jsonl") == _without_seconds(
        reference.path / "history.jsonl"
    )


def test_trimming_from_the_command_line_and_in_the_report(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    fit = ["fit", "circles", "--epochs", "60", "--out"]
    result = runner.invoke(app, [*fit, str(out)])  # on by default
    assert result.exit_code == 0, result.output
    assert "trimmed " in result.output and "trimming kept the trimmed network" in result.output
    off = runner.invoke(app, [*fit, str(tmp_path / "off"), "--set", "growth.trim=false"])
    assert off.exit_code == 0 and "trimmed " not in off.output
    assert "trim" not in json.loads((tmp_path / "off" / "metrics.json").read_text())
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and "Trimming" in report.output
    bad = runner.invoke(app, ["fit", "circles", "--set", "growth.trim_tolerance=1.5"])
    assert bad.exit_code == 2 and "growth.trim_tolerance" in bad.output
    listed = runner.invoke(app, ["settings"])
    assert "growth.trim" in listed.output


def test_the_estimators_trim_with_set(tmp_path):
    from sklearn.datasets import make_circles

    from growml.sklearn import GrowingMLPClassifier

    x, y = make_circles(400, noise=0.05, factor=0.5, random_state=0)
    estimator = GrowingMLPClassifier(epochs=60, random_state=0, set={"growth.trim": True})
    estimator.fit(x, y)
    ends = [e for e in estimator.history_ if isinstance(e, TrimEnd)]
    assert len(ends) == 1 and ends[0].hidden_widths == estimator.run_.model.hidden_widths
    assert any(isinstance(e, EpochEnd) for e in estimator.history_)
    assert estimator.score(x, y) > 0.9


def _conv_network(head):
    from growml.nn.conv import GrowingConvNet

    generator = torch.Generator().manual_seed(0)
    return GrowingConvNet((1, 6, 6), [4, 3, 5], 3, 2, 3, 2, generator=generator, head=head)


@pytest.mark.parametrize("kind", ["mlp", "pool", "flatten"])
def test_a_ranking_round_runs_on_from_the_layer_a_neuron_feeds_with_the_same_scores(kind):
    """Scoring each neuron from what the layer above it reads gives, to the last bit, the
    whole network's scores without it, with neurons already removed below and above."""
    from growml.losses import default_loss
    from growml.train import Trainer

    model = (
        GrowingMLP(3, [5, 4, 6], 3, generator=torch.Generator().manual_seed(0))
        if kind == "mlp"
        else _conv_network(kind)
    )
    generator = np.random.default_rng(1)
    columns = model.input_size
    x_val, x_train = generator.normal(size=(40, columns)), generator.normal(size=(50, columns))
    y_val, y_train = generator.integers(0, 3, 40), generator.integers(0, 3, 50)
    loss = default_loss("multiclass", 3)
    trainer = Trainer(
        resolve_config(overrides=[("data.source", "iris")]).train, loss, "classification"
    )
    validation = trainer_module.Validation(trainer, x_val, y_val, None)
    rows = torch.as_tensor(x_train, dtype=torch.float32)
    training = (rows, loss.prepare_target(y_train, None), loss)
    reconstruction = removal.Reconstruction(model, rows)
    score = trim.TrimmingScores(model, validation, "loss", reconstruction, training)
    removed = [(0, 1), (2, 0)]
    candidates = [(0, 3), (1, 0), (1, 2), (2, 4), (0, 0)]
    each = score.each_added(removed, candidates)
    whole = [score([*removed, neuron]) for neuron in candidates]
    assert each == whole
    assert len(set(each)) == len(each)  # the neurons do differ
