"""Soft-set confusion-matrix losses, class weights, stratified batches and the threshold."""

import json

import numpy as np
import pytest
import torch
from growml.cli import app
from sklearn.metrics import f1_score, fbeta_score
from typer.testing import CliRunner

import growml
from growml.events import GrowthStep, PruneStep
from growml.losses import BinaryCrossEntropy, CrossEntropy, Loss
from growml.losses.softset import (
    DELTA,
    MacroSoftF1,
    SoftSetLoss,
    accuracy,
    auroc,
    f_beta,
    heaviside,
    soft_confusion,
)
from growml.losses.threshold import GRID, choose_threshold, threshold_curves
from growml.train.trainer import stratified_order

TAUS = [0.1, 0.3, 0.5, 0.8]


@pytest.mark.parametrize("tau", TAUS)
def test_heaviside_properties(tau):
    p = torch.linspace(0, 1, 2001, dtype=torch.float64, requires_grad=True)
    h = heaviside(p, tau)
    values = h.detach()
    assert float(values[0]) == 0.0 and float(values[-1]) == pytest.approx(1.0, abs=1e-12)
    assert float(heaviside(torch.tensor(tau, dtype=torch.float64), tau)) == pytest.approx(0.5)
    assert bool((values[1:] > values[:-1]).all())  # strictly increasing
    half_width = min(tau, 1 - tau) / 2
    for knot in (tau - half_width, tau, tau + half_width):  # continuous at every knot
        sides = heaviside(torch.tensor([knot - 1e-12, knot + 1e-12], dtype=torch.float64), tau)
        assert float(sides[1] - sides[0]) < 1e-9
    (grad,) = torch.autograd.grad(h.sum(), p)
    assert bool((grad > 0).all())  # the gradient is never zero
    reflected = heaviside(1 - p.detach(), 1 - tau)
    torch.testing.assert_close(reflected, 1 - h.detach(), atol=1e-12, rtol=0)


def _knots_heaviside(p, tau, delta=DELTA):
    """H by numpy's linear interpolation through the knots of Tsoi et al."""
    half_width = min(tau, 1 - tau) / 2
    knots = [0.0, tau - half_width, tau, tau + half_width, 1.0]
    return np.interp(p, knots, [0.0, delta, 0.5, 1 - delta, 1.0])


@pytest.mark.parametrize("tau", TAUS)
def test_heaviside_runs_through_the_papers_knots(tau):
    p = np.linspace(0, 1, 1001)
    values = heaviside(torch.tensor(p), tau).numpy()
    assert values == pytest.approx(_knots_heaviside(p, tau), abs=1e-12)


def _soft_scores(p, y, tau):
    """Soft F1, F2 and accuracy of numpy arrays at τ, from the interpolated H."""
    s = _knots_heaviside(p, tau)
    tp, fn, fp, tn = (
        (y * s).sum(),
        (y * (1 - s)).sum(),
        ((1 - y) * s).sum(),
        ((1 - y) * (1 - s)).sum(),
    )
    return {
        "f1": 2 * tp / (2 * tp + fn + fp),
        "fbeta": 5 * tp / (5 * tp + 4 * fn + fp),
        "accuracy": (tp + tn) / len(y),
    }


@pytest.mark.parametrize("metric", ["f1", "fbeta", "accuracy"])
def test_soft_losses_are_one_minus_the_metric_averaged_over_tau_one_to_nine_tenths(metric):
    generator = np.random.default_rng(3)
    logits = generator.normal(size=(50, 1)) * 2
    labels = (generator.random(50) < 0.3).astype(np.float64)
    p = 1 / (1 + np.exp(-logits[:, 0]))
    loss = SoftSetLoss(metric, beta=2.0)
    value = float(loss(torch.tensor(logits), loss.prepare_target(labels).double()))
    taus = np.arange(1, 10) / 10
    assert value == pytest.approx(1 - np.mean([_soft_scores(p, labels, t)[metric] for t in taus]))
    at_one_tau = SoftSetLoss(metric, beta=2.0, tau=0.3)
    value = float(at_one_tau(torch.tensor(logits), at_one_tau.prepare_target(labels).double()))
    assert value == pytest.approx(1 - _soft_scores(p, labels, 0.3)[metric])


def test_the_soft_auroc_loss_is_one_minus_the_trapezoid_area_under_the_soft_rates():
    generator = np.random.default_rng(5)
    logits = generator.normal(size=(80, 1)) * 2
    labels = (generator.random(80) < 0.4).astype(np.float64)
    p = 1 / (1 + np.exp(-logits[:, 0]))
    points = [(0.0, 0.0), (1.0, 1.0)]
    for tau in np.arange(1, 10) / 10:
        s = _knots_heaviside(p, tau)
        points.append(
            ((s * (1 - labels)).sum() / (1 - labels).sum(), (s * labels).sum() / labels.sum())
        )
    fpr, tpr = np.array(sorted(points)).T
    loss = SoftSetLoss("auroc")
    value = float(loss(torch.tensor(logits), loss.prepare_target(labels).double()))
    assert value == pytest.approx(1 - np.trapezoid(tpr, fpr), abs=1e-9)


def test_macro_soft_f1_is_one_minus_the_mean_of_each_classes_soft_f1():
    generator = np.random.default_rng(4)
    logits = generator.normal(size=(60, 3)) * 2
    labels = generator.integers(0, 3, 60)
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    loss = MacroSoftF1(3)
    value = float(loss(torch.tensor(logits), loss.prepare_target(labels).double()))
    scores = [
        _soft_scores(probabilities[:, c], (labels == c).astype(np.float64), tau)["f1"]
        for c in range(3)
        for tau in np.arange(1, 10) / 10
    ]
    assert value == pytest.approx(1 - np.mean(scores))


@pytest.mark.parametrize("tau", TAUS)
def test_soft_counts_add_up_exactly(tau):
    generator = torch.Generator().manual_seed(0)
    p = torch.rand(500, dtype=torch.float64, generator=generator)
    y = (torch.rand(500, dtype=torch.float64, generator=generator) < 0.1).double()
    counts = soft_confusion(p, y, tau)
    assert float(counts.tp + counts.fn) == pytest.approx(float(y.sum()), abs=1e-9)
    assert float(counts.fp + counts.tn) == pytest.approx(float((1 - y).sum()), abs=1e-9)


def test_soft_metrics_equal_hard_ones_for_certain_probabilities():
    generator = np.random.default_rng(0)
    y = generator.integers(0, 2, 200)
    predicted = generator.integers(0, 2, 200)
    p, labels = torch.tensor(predicted, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    for tau in TAUS:
        counts = soft_confusion(p, labels, tau)
        assert float(f_beta(counts)) == pytest.approx(f1_score(y, predicted), abs=1e-9)
        assert float(f_beta(counts, 2.0)) == pytest.approx(fbeta_score(y, predicted, beta=2.0))
        assert float(accuracy(counts)) == pytest.approx(float(np.mean(y == predicted)))


def test_reference_check_values():
    y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    p = torch.full((3,), 0.5, dtype=torch.float64)
    counts = soft_confusion(p, y, 0.5)
    for beta, expected in ((1, 0.4), (2, 0.4545), (3, 0.4762)):
        assert float(f_beta(counts, beta)) == pytest.approx(expected, abs=1e-4)


def test_gradients_push_positives_up_and_negatives_down():
    logits = torch.tensor([[0.2], [-0.4], [1.0], [0.0], [-1.5]], requires_grad=True)
    target = torch.tensor([[1.0], [1.0], [0.0], [0.0], [0.0]])
    for loss in (
        SoftSetLoss("f1"),
        SoftSetLoss("f1", tau=0.5),
        SoftSetLoss("fbeta", beta=2),
        SoftSetLoss("accuracy"),
        SoftSetLoss("auroc"),
    ):
        _, grad = loss.value_and_grad(logits, target)
        assert bool((grad[:2] < 0).all()), loss.name  # raising a positive's logit lowers the loss
        assert bool((grad[2:] > 0).all()), loss.name


def test_a_batch_without_positives_gives_no_nan():
    logits = torch.randn(16, 1)
    for loss in (SoftSetLoss("f1"), SoftSetLoss("auroc"), MacroSoftF1(3)):
        target = torch.zeros(16, 3 if isinstance(loss, MacroSoftF1) else 1)
        if isinstance(loss, MacroSoftF1):
            target[:, 0] = 1
            output = torch.randn(16, 3)
        else:
            output = logits
        value, grad = loss.value_and_grad(output, target)
        assert torch.isfinite(value) and torch.isfinite(grad).all()


def test_auroc_surrogate_ends():
    y = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    taus = tuple(round(0.1 * k, 1) for k in range(1, 10))
    assert float(auroc(y.clone(), y, taus)) == pytest.approx(1.0)
    assert float(auroc(1 - y, y, taus)) == pytest.approx(0.0, abs=1e-12)


def test_macro_soft_f1_of_certain_predictions_is_the_macro_f1():
    labels = np.array([0, 1, 2, 2, 1, 0, 0, 2])
    predicted = np.array([0, 2, 2, 2, 1, 1, 0, 0])
    loss = MacroSoftF1(3, tau=0.5)
    output = torch.nn.functional.one_hot(torch.tensor(predicted), 3).double() * 60  # softmax ≈ 1
    value = float(loss(output, loss.prepare_target(labels).double()))
    assert 1 - value == pytest.approx(f1_score(labels, predicted, average="macro"), abs=1e-6)


@pytest.mark.parametrize(
    "loss",
    [BinaryCrossEntropy(positive_weight=7.0), CrossEntropy(3, torch.tensor([0.5, 2.0, 1.0]))],
    ids=["weighted bce", "weighted cross-entropy"],
)
def test_class_weighted_gradients_equal_autograd(loss):
    generator = torch.Generator().manual_seed(0)
    n_outputs = 1 if isinstance(loss, BinaryCrossEntropy) else 3
    output = torch.randn(12, n_outputs, dtype=torch.float64, generator=generator)
    labels = np.arange(12) % (2 if n_outputs == 1 else 3)
    target = loss.prepare_target(labels).double()
    value, grad = loss.value_and_grad(output.clone(), target)
    reference_value, reference_grad = Loss.value_and_grad(loss, output.clone(), target)
    torch.testing.assert_close(value, reference_value)
    torch.testing.assert_close(grad, reference_grad)


@pytest.mark.parametrize("loss", [SoftSetLoss("f1"), MacroSoftF1(2)], ids=["soft-f1", "macro"])
def test_soft_set_losses_train_on_batches_large_enough_to_hold_positives(loss):
    from growml.config import TrainConfig
    from growml.train import Trainer
    from growml.train.trainer import MIN_POSITIVES

    generator = np.random.default_rng(0)
    x = generator.normal(size=(400, 3)).astype(np.float32)
    labels = np.array([1] * 10 + [0] * 390)  # 2.5 % positives
    model = growml.nn.GrowingMLP(3, [4], 1 if isinstance(loss, SoftSetLoss) else 2)
    config = TrainConfig(epochs=1, batch_size=32, early_stopping=False)
    trainer = Trainer(config, loss, "classification")
    trainer.run(model, x, labels, x[:50], labels[:50])
    assert trainer.batch_size_ == MIN_POSITIVES * 40  # 4 positives in a batch on average
    plain = Trainer(config, BinaryCrossEntropy(), "classification")
    plain.run(growml.nn.GrowingMLP(3, [4], 1), x, labels, x[:50], labels[:50])
    assert plain.batch_size_ == 32


def test_f_beta_without_beta_is_f1():
    logits = torch.randn(30, 1, generator=torch.Generator().manual_seed(0))
    target = (torch.rand(30, 1, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    assert float(SoftSetLoss("fbeta")(logits, target)) == float(SoftSetLoss("f1")(logits, target))


def test_stratified_batches_hold_every_class():
    labels = torch.tensor([1] * 20 + [0] * 380)
    order = stratified_order(labels, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(400))
    for start in range(0, 400, 80):
        assert 3 <= int(labels[order[start : start + 80]].sum()) <= 5


@pytest.mark.parametrize(("metric", "beta"), [("f1", 1.0), ("fbeta", 2.0), ("accuracy", 1.0)])
def test_threshold_curves_equal_scikit_learn_plain_and_resampled(metric, beta):
    from sklearn.metrics import accuracy_score, fbeta_score

    generator = np.random.default_rng(0)
    labels = (generator.random(60) < 0.3).astype(np.int64)
    probability = np.clip(0.3 * labels + generator.random(60) * 0.7, 0, 1)
    counts = generator.multinomial(60, np.full(60, 1 / 60), size=3)

    def reference(tau, weight):
        predicted = (probability >= tau).astype(np.int64)
        if metric == "accuracy":
            return accuracy_score(labels, predicted, sample_weight=weight)
        return fbeta_score(labels, predicted, beta=beta, sample_weight=weight, zero_division=0)

    if metric == "fbeta":  # β is 1 unless given
        f1 = threshold_curves(probability, labels, "f1")
        assert threshold_curves(probability, labels, "fbeta").tolist() == f1.tolist()
    # β is passed only to F-beta: the default of the others is their own metric.
    plain = threshold_curves(probability, labels, metric, *([beta] if metric == "fbeta" else []))
    resampled = threshold_curves(probability, labels, metric, beta, counts)
    for k, tau in enumerate(GRID):
        assert plain[k] == pytest.approx(reference(tau, None), abs=1e-12)
        for r in range(3):
            assert resampled[r, k] == pytest.approx(reference(tau, counts[r]), abs=1e-12)


def test_the_candidate_thresholds_are_the_hundredths_inside_zero_and_one():
    assert GRID.tolist() == [k / 100 for k in range(1, 100)]
    curve = threshold_curves(np.array([0.2, 0.7]), np.array([0, 1]), "f1")
    assert len(curve) == 99 and curve[GRID.tolist().index(0.5)] == 1.0


def test_without_positives_the_f_score_is_zero_at_every_threshold_as_in_scikit_learn():
    probability, labels = np.array([0.05, 0.3, 0.6]), np.zeros(3, dtype=np.int64)
    with np.errstate(all="raise"):  # no 0/0 is ever computed
        curve = threshold_curves(probability, labels, "f1")
    expected = [f1_score(labels, probability >= t, zero_division=0) for t in GRID]
    assert curve.tolist() == expected


def test_a_tied_plateau_gives_its_middle_threshold_and_one_containing_half_gives_half():
    # Perfectly separated at 0.1 and 0.9: F1 is 1 for every τ in (0.1, 0.9].
    probability = np.array([0.1] * 30 + [0.9] * 10)
    labels = np.array([0] * 30 + [1] * 10)
    # Within 0.60 … 0.95 the plateau is 0.60 … 0.90, 31 thresholds: the middle is 0.75.
    assert choose_threshold(probability, labels, "f1", bounds=(0.6, 0.95)).value == 0.75
    # Within the default bounds its middle is 0.51, no better than ½ in any resample: ½.
    choice = choose_threshold(probability, labels, "f1")
    assert (choice.value, choice.gain, choice.spread, choice.kept_half) == (0.5, 0.0, 0.0, True)


def test_a_gain_within_half_its_spread_keeps_half():
    generator = np.random.default_rng(12)
    labels = (generator.random(40) < 0.3).astype(np.int64)  # 40 rows: a noisy curve
    probability = np.clip(0.35 + 0.2 * labels + 0.25 * generator.normal(size=40), 0.01, 0.99)
    choice = choose_threshold(probability, labels, "f1")
    assert 0 < choice.gain <= 0.5 * choice.spread  # some gain, but within half its spread
    assert choice.kept_half and choice.value == 0.5


def test_a_probability_equal_to_the_threshold_counts_as_positive():
    probability, labels = np.array([0.3, 0.5, 0.7]), np.array([0, 1, 1])
    curve = threshold_curves(probability, labels, "f1")
    assert curve[GRID.tolist().index(0.5)] == 1.0 and curve[GRID.tolist().index(0.7)] == 2 / 3


def test_a_clear_best_threshold_is_chosen_within_the_bounds():
    generator = np.random.default_rng(1)
    labels = (generator.random(4000) < 0.1).astype(np.int64)
    # Calibrated probabilities of a weak signal: the F1-optimal τ is far below ½.
    score = generator.normal(size=4000) + 1.5 * labels
    probability = 1 / (1 + np.exp(-(score * 1.5 - 3.5)))
    choice = choose_threshold(probability, labels, "f1")
    best = GRID[choice.curve.argmax()]
    assert not choice.kept_half and abs(choice.value - best) <= 0.05 and choice.value < 0.4
    assert choice.gain > choice.spread > 0
    assert choose_threshold(probability, labels, "f1", bounds=(0.45, 0.9)).value >= 0.45
    # Bounds are inclusive, and ½ outside them is never the fallback.
    narrow = choose_threshold(probability, labels, "f1", bounds=(0.3, 0.3))
    assert (narrow.value, narrow.gain, narrow.spread, narrow.kept_half) == (0.3, 0.0, 0.0, False)
    # F-beta's β is 1 unless given: F1's choice.
    assert choose_threshold(probability, labels, "fbeta").value == choice.value


def _scored_rows(rows, shift, generator):
    """Rows with 10 % positives and a probability of a noisy score, 0 or 1 labels."""
    labels = (generator.random(rows) < 0.1).astype(np.int64)
    score = generator.normal(size=rows) + 2.0 * labels
    return 1 / (1 + np.exp(-(2.0 * score + shift))), labels


@pytest.mark.parametrize("shift", [-4.4, -3.0])
def test_thresholds_chosen_on_small_splits_do_well_on_the_population(shift):
    """Splits of 200 rows (about 20 positives), scored on a population of 200 000: the chosen
    τ does as well as the plain arg-max of each split, and much better than ½ where ½ is poor
    (shift −4.4: population optimum 0.25); where ½ is near the optimum (−3.0: 0.58) the
    resamples keep ½ on some splits."""
    generator = np.random.default_rng(0)
    population = threshold_curves(*_scored_rows(200_000, shift, generator), "f1")

    def on_population(tau):
        return population[np.isclose(GRID, tau)][0]

    chosen, plain, kept = [], [], 0
    for k in range(100):
        choice = choose_threshold(*_scored_rows(200, shift, generator), "f1", seed=k)
        chosen.append(on_population(choice.value))
        plain.append(on_population(GRID[choice.curve.argmax()]))
        kept += choice.kept_half
    assert np.mean(chosen) >= np.mean(plain) - 0.005
    if shift == -4.4:
        assert np.mean(chosen) > on_population(0.5) + 0.03
    else:
        assert kept > 0


def test_fit_with_soft_f1_stores_and_reports_the_threshold(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "fit",
            "imbalanced",
            "--fixed",
            "16",
            "--epochs",
            "20",
            "--set",
            "loss.name=soft-f1",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["threshold"]["metric"] == "f1" and 0.1 <= metrics["threshold"]["value"] <= 0.9
    assert {"f1", "f1_at_0.5"} <= set(metrics["test"])
    model = json.loads((out / "model.json").read_text())
    assert model["threshold"] == metrics["threshold"]["value"]
    assert (out / "plots" / "threshold.png").is_file()
    history = [json.loads(line) for line in (out / "history.jsonl").open()]
    losses = [event["train_loss"] for event in history if event["event"] == "epoch"]
    assert losses[-1] < losses[0]  # 1 − soft F1 goes down
    assert growml.load_run(out).threshold == metrics["threshold"]["value"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["--set", "loss.name=soft-fbeta"], "binary"),
        (["--set", "loss.name=mse"], "regression"),
        (["--set", "loss.name=bce"], "binary"),
    ],
)
def test_losses_that_do_not_fit_the_task_are_refused(tmp_path, settings, message):
    result = CliRunner().invoke(app, ["fit", "iris", *settings, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "r").exists()


def test_warmup_trains_with_cross_entropy_first():
    from growml.config import TrainConfig
    from growml.events import EpochEnd
    from growml.nn import GrowingMLP
    from growml.train import Trainer

    class Counting(BinaryCrossEntropy):
        calls = 0

        def value_and_grad(self, output, target):
            Counting.calls += 1
            return super().value_and_grad(output, target)

    generator = np.random.default_rng(0)
    x = generator.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] > 1.2).astype(np.int64)
    events = []
    trainer = Trainer(
        TrainConfig(epochs=4, early_stopping=False, batch_size=50),
        SoftSetLoss("f1"),
        "classification",
        observers=[events.append],
        warmup=Counting(),
        warmup_epochs=2,
    )
    trainer.run(GrowingMLP(3, [4], 1), x, y, x, y)
    assert Counting.calls == 2 * 4  # two epochs of four batches each, then soft F1 only
    assert trainer.batch_size_ >= 4 / y.mean()  # batches hold 4 positives on average
    assert len([e for e in events if isinstance(e, EpochEnd)]) == 4


def test_growth_and_pruning_work_with_soft_f1(tmp_path):
    config = growml.resolve_config(
        overrides=[
            ("data.source", "imbalanced"),
            ("loss.name", "soft-f1"),
            ("train.epochs", 25),
            ("growth.every", 5),
            ("prune.method", "synflow"),
            ("prune.compression", 1.5),
            ("prune.structured", True),
            ("prune.iterations", 3),
        ]
    )
    result = growml.fit(config, out=tmp_path / "run")
    history = result.run.history()
    assert any(isinstance(event, GrowthStep) and event.added for event in history)
    assert any(isinstance(event, PruneStep) for event in history)
    assert np.isfinite(result.metrics["test"]["f1"])


def test_threshold_report_uses_the_score_at_the_chosen_tau(tmp_path):
    config = growml.resolve_config(
        overrides=[
            ("data.source", "imbalanced"),
            ("loss.name", "soft-auroc"),
            ("growth.enabled", False),
            ("model.hidden_widths", [8]),
            ("train.epochs", 10),
        ]
    )
    result = growml.fit(config, out=tmp_path / "run")
    threshold = result.metrics["threshold"]
    assert threshold["metric"] == "f1"  # a ranking loss's probabilities are not calibrated
    probability = result.run.predict_proba(
        result.data.raw_test.slice(0, 0)
    )  # the run predicts from raw rows
    assert probability.shape == (0, 2)
    from sklearn.metrics import f1_score

    with torch.no_grad():
        logits = result.run.model(torch.as_tensor(result.data.x_val))
    predicted = (torch.sigmoid(logits[:, 0]).numpy() >= threshold["value"]).astype(int)
    assert threshold["validation_score"] == pytest.approx(f1_score(result.data.y_val, predicted))
