"""Row weights: a row of weight w counts as the row repeated w times, in the losses, the growth
statistics, the validation metrics, the threshold and the estimators' ``fit``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import f1_score

import growml
from growml.config import DataConfig, LossConfig, TrainConfig
from growml.data import load_table, prepare, split_indices
from growml.errors import DataError
from growml.events import EpochEnd
from growml.growth.pool import LayerRows, pool_proposal
from growml.growth.statistics import collect_statistics, statistics_of
from growml.losses import BinaryCrossEntropy, CrossEntropy, Loss, MeanSquaredError, make_loss
from growml.losses.softset import MacroSoftF1, SoftSetLoss
from growml.losses.threshold import GRID, choose_threshold, threshold_curves
from growml.nn import GrowingMLP
from growml.sklearn import GrowingMLPClassifier, GrowingMLPRegressor
from growml.train import Trainer
from growml.train.metrics import evaluate

ROWS = 12
COUNTS = np.array([1, 2, 3, 1, 1, 2, 4, 1, 3, 2, 1, 2])  # integer weights: repeatable rows
REPEATED = np.repeat(np.arange(ROWS), COUNTS)
LABELS3 = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 0, 1, 2])
LABELS2 = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0])

LOSSES = [
    (CrossEntropy(3), 3, LABELS3),
    (CrossEntropy(3, torch.tensor([1.0, 2.0, 0.5])), 3, LABELS3),
    (BinaryCrossEntropy(), 1, LABELS2),
    (BinaryCrossEntropy(positive_weight=2.5), 1, LABELS2),
    (MeanSquaredError(), 1, np.linspace(-2, 2, ROWS)),
    (SoftSetLoss("f1"), 1, LABELS2),
    (SoftSetLoss("accuracy", tau=0.3), 1, LABELS2),
    (SoftSetLoss("auroc"), 1, LABELS2),
    (MacroSoftF1(3), 3, LABELS3),
]
LOSS_IDS = [
    "cross-entropy", "class-weighted", "bce", "bce-positive-weight", "mse", "soft-f1",
    "soft-accuracy", "soft-auroc", "macro-soft-f1",
]  # fmt: skip


def _outputs(n_outputs: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(ROWS, n_outputs, dtype=torch.float64, generator=generator)


@pytest.mark.parametrize(("loss", "n_outputs", "labels"), LOSSES, ids=LOSS_IDS)
def test_weighted_loss_is_the_loss_of_the_repeated_batch(loss, n_outputs, labels) -> None:
    output = _outputs(n_outputs)
    weighted = loss.prepare_target(labels, COUNTS).double()
    value, grad = loss.value_and_grad(output.clone(), weighted)
    repeated_value, repeated_grad = loss.value_and_grad(
        output[REPEATED].clone(), loss.prepare_target(labels[REPEATED]).double()
    )
    # A row's gradient is the sum of its copies' gradients.
    summed = torch.zeros_like(grad).index_add_(0, torch.as_tensor(REPEATED), repeated_grad)
    torch.testing.assert_close(value, repeated_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, summed, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss(output, weighted), value, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("loss", "n_outputs", "labels"), LOSSES[:5], ids=LOSS_IDS[:5])
def test_weighted_closed_form_gradient_equals_autograd(loss, n_outputs, labels) -> None:
    output = _outputs(n_outputs)
    target = loss.prepare_target(labels, COUNTS * 0.37).double()
    value, grad = loss.value_and_grad(output.clone(), target)
    reference_value, reference_grad = Loss.value_and_grad(loss, output.clone(), target)
    torch.testing.assert_close(value, reference_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=1e-12)


def test_balanced_class_weights_count_weighted_rows_as_repeated_rows() -> None:
    balanced = LossConfig(class_weight="balanced")
    weighted = make_loss(balanced, "classification", 3, LABELS3, COUNTS)
    repeated = make_loss(balanced, "classification", 3, LABELS3[REPEATED])
    torch.testing.assert_close(weighted.class_weights, repeated.class_weights)
    binary = LossConfig(name="bce", class_weight="balanced")
    assert make_loss(binary, "classification", 1, LABELS2, COUNTS).positive_weight == (
        pytest.approx(make_loss(binary, "classification", 1, LABELS2[REPEATED]).positive_weight)
    )


def test_weights_of_zero_leave_rows_out_of_the_loss() -> None:
    loss, output = CrossEntropy(3), _outputs(3)
    kept = COUNTS > 1
    weights = np.where(kept, 1.0, 0.0)
    value, grad = loss.value_and_grad(
        output.clone(), loss.prepare_target(LABELS3, weights).double()
    )
    alone, alone_grad = loss.value_and_grad(
        output[kept].clone(), loss.prepare_target(LABELS3[kept]).double()
    )
    assert float(value) == pytest.approx(float(alone), rel=1e-12)
    assert torch.all(grad[~torch.as_tensor(kept)] == 0)
    torch.testing.assert_close(grad[torch.as_tensor(kept)], alone_grad)


def _rows(n: int, seed: int) -> LayerRows:
    generator = torch.Generator().manual_seed(seed)
    below = torch.randn(n, 4, dtype=torch.float64, generator=generator)
    current = torch.relu(below[:, :3] @ torch.randn(3, 3, dtype=torch.float64, generator=generator))
    ones = torch.ones(n, 1, dtype=torch.float64)
    gradient = torch.randn(n, 2, dtype=torch.float64, generator=generator) + current[:, :2]
    return LayerRows(torch.cat([below, ones], 1), torch.cat([current, ones], 1), gradient)


def _repeat(rows: LayerRows, counts: np.ndarray) -> LayerRows:
    index = torch.as_tensor(np.repeat(np.arange(rows.rows), counts))
    return LayerRows(rows.below[index], rows.current[index], rows.gradient[index])


def test_weighted_statistics_are_those_of_repeated_rows_in_float64() -> None:
    counts = np.random.default_rng(0).integers(1, 4, 40)
    rows = _rows(40, seed=0)
    weighted = LayerRows(rows.below, rows.current, rows.gradient, torch.as_tensor(counts * 1.0))
    stats, repeated = statistics_of(weighted), statistics_of(_repeat(rows, counts))
    # E[b gᵀ] = Σ wᵢ bᵢ gᵢᵀ / Σ wᵢ, re-derived in numpy.
    b1, g, w = rows.current.numpy(), rows.gradient.numpy(), counts * 1.0
    expected_m = (b1 * w[:, None]).T @ g / w.sum()
    np.testing.assert_allclose(stats.M.numpy(), expected_m, rtol=1e-12)
    for name in ("S1", "M", "S2", "M2", "P"):
        torch.testing.assert_close(getattr(stats, name), getattr(repeated, name))
    assert stats.gradient_norm == pytest.approx(repeated.gradient_norm, rel=1e-12)
    assert stats.rows == repeated.rows == counts.sum()


def test_the_candidate_pool_measures_weighted_rows_as_repeated_rows() -> None:
    counts = np.random.default_rng(1).integers(1, 4, 60)
    rows = _rows(60, seed=1)
    weighted = LayerRows(rows.below, rows.current, rows.gradient, torch.as_tensor(counts * 1.0))
    no_directions = torch.zeros(0, 5, dtype=torch.float64)

    def propose(layer_rows: LayerRows):
        return pool_proposal(layer_rows, torch.relu, no_directions, 2, torch.Generator())

    proposal, repeated = propose(weighted), propose(_repeat(rows, counts))
    # Ψ and the re-weighting's gain are means over the rows: the repeated rows' exactly.
    assert proposal.bottleneck == pytest.approx(repeated.bottleneck, rel=1e-10)
    assert proposal.weight_gain == pytest.approx(repeated.weight_gain, rel=1e-10)
    unweighted = propose(rows)
    assert unweighted.bottleneck != pytest.approx(repeated.bottleneck, rel=1e-3)


def test_growth_statistics_of_a_weighted_batch_match_the_repeated_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    model = GrowingMLP(3, [4, 3], 3, generator=generator)
    x = torch.randn(ROWS, 3, generator=generator)
    loss = CrossEntropy(3)
    weighted = collect_statistics(model, loss, x, loss.prepare_target(LABELS3, COUNTS), 5)
    repeated = collect_statistics(
        model, loss, x[torch.as_tensor(REPEATED)], loss.prepare_target(LABELS3[REPEATED]), 500
    )
    for mine, theirs in zip(weighted, repeated, strict=True):
        for name in ("S1", "M", "S2", "M2", "P"):
            torch.testing.assert_close(
                getattr(mine, name), getattr(theirs, name), atol=1e-6, rtol=1e-5
            )
        assert mine.gradient_norm == pytest.approx(theirs.gradient_norm, rel=1e-5)


def test_weighted_threshold_curve_is_scikit_learns_weighted_f1() -> None:
    rng = np.random.default_rng(0)
    probability, labels = rng.random(80), rng.integers(0, 2, 80)
    weights = rng.integers(1, 5, 80).astype(float)
    curve = threshold_curves(probability, labels, "f1", weights=weights[None, :])[0]
    for tau, value in zip(GRID[::7], curve[::7], strict=True):
        expected = f1_score(labels, probability >= tau, sample_weight=weights, zero_division=0)
        assert value == pytest.approx(expected, abs=1e-12)
    choice = choose_threshold(probability, labels, "f1", sample_weight=weights)
    np.testing.assert_allclose(choice.curve, curve)


def test_validation_metrics_count_weighted_rows_as_repeated_rows() -> None:
    """What early stopping and growth decisions read: the validation loss and accuracy."""
    X, y = make_blobs(90, centers=3, random_state=0)
    x = X.astype(np.float32)
    counts = np.random.default_rng(0).integers(1, 4, 30)

    def validation(x_val, y_val, weights=None):
        events = []
        trainer = Trainer(TrainConfig(epochs=2), CrossEntropy(3), "classification", [events.append])
        model = GrowingMLP(2, [5], 3, generator=torch.Generator().manual_seed(0))
        trainer.run(model, x[:60], y[:60], x_val, y_val, validation_weights=weights)
        return [e.validation for e in events if isinstance(e, EpochEnd)]

    weighted = validation(x[60:], y[60:], counts)
    index = 60 + np.repeat(np.arange(30), counts)
    repeated = validation(x[index], y[index])
    for mine, theirs in zip(weighted, repeated, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-6)
    assert weighted[0]["accuracy"] != validation(x[60:], y[60:])[0]["accuracy"]


@pytest.mark.parametrize("dataset", ["wine", "friedman"])
def test_reported_metrics_count_weighted_rows_as_repeated_rows(dataset) -> None:
    data = prepare(load_table(dataset), DataConfig(), seed=0)
    n_outputs = data.target_encoder.n_outputs
    model = GrowingMLP(data.x_val.shape[1], [6], n_outputs, generator=torch.Generator())
    counts = np.random.default_rng(0).integers(1, 4, len(data.y_val))
    index = np.repeat(np.arange(len(counts)), counts)
    encoder = data.target_encoder
    weighted = evaluate(model, data.x_val, data.y_val, encoder, sample_weight=counts)
    repeated = evaluate(model, data.x_val[index], data.y_val[index], encoder)
    assert weighted == pytest.approx(repeated, rel=1e-6)
    assert weighted != pytest.approx(evaluate(model, data.x_val, data.y_val, encoder), rel=1e-6)


@pytest.mark.parametrize(
    "sample_weight", [np.ones(10), np.r_[np.ones(177), 0.0], np.r_[np.ones(177), np.inf]]
)
def test_growml_fit_refuses_weights_that_are_not_one_positive_number_per_row(
    sample_weight, tmp_path
) -> None:
    config = growml.resolve_config({"data": {"source": "wine"}, "train": {"epochs": 1}})
    with pytest.raises(DataError, match="one positive, finite weight for each of the 178 rows"):
        growml.fit(config, out=tmp_path / "run", sample_weight=sample_weight)
    assert not (tmp_path / "run").exists()


# The estimators ------------------------------------------------------------------------------

FAST = {"epochs": 15, "lr": 0.05, "start": 4, "random_state": 0}


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(150, centers=3, cluster_std=2.5, random_state=0)
    return X, y


def test_zero_weights_on_a_class_are_the_class_left_out(blobs) -> None:
    X, y = blobs
    kept = y != 2
    weighted = GrowingMLPClassifier(**FAST).fit(X, y, sample_weight=kept.astype(float))
    without = GrowingMLPClassifier(**FAST).fit(X[kept], y[kept])
    assert list(weighted.classes_) == [0, 1]
    np.testing.assert_array_equal(weighted.predict_proba(X), without.predict_proba(X))


def test_weights_all_alike_change_nothing(blobs) -> None:
    X, y = blobs
    plain = GrowingMLPClassifier(**FAST).fit(X, y)
    alike = GrowingMLPClassifier(**FAST).fit(X, y, sample_weight=np.full(len(y), 3.0))
    np.testing.assert_array_equal(plain.predict_proba(X), alike.predict_proba(X))


def test_a_weight_of_two_is_close_to_the_row_twice() -> None:
    X, y = make_blobs(300, centers=2, cluster_std=3.0, random_state=1)
    doubled = np.arange(len(y)) % 3 == 0
    weights = np.where(doubled, 2.0, 1.0)
    index = np.concatenate([np.arange(len(y)), np.flatnonzero(doubled)])
    settings = {**FAST, "epochs": 40, "grow": False}
    weighted = GrowingMLPClassifier(**settings).fit(X, y, sample_weight=weights)
    repeated = GrowingMLPClassifier(**settings).fit(X[index], y[index])
    plain = GrowingMLPClassifier(**settings).fit(X, y)
    agree = np.mean(weighted.predict(X) == repeated.predict(X))
    assert agree >= 0.95
    score = weighted.score(X, y, sample_weight=weights)
    assert score == pytest.approx(repeated.score(X[index], y[index]), abs=0.03)
    # Weights that matter move the model: tilt one class and it wins more rows.
    tilted = GrowingMLPClassifier(**settings).fit(X, y, sample_weight=np.where(y == 1, 10.0, 1.0))
    assert np.mean(tilted.predict(X) == 1) > np.mean(plain.predict(X) == 1)


def test_a_weighted_regressor_follows_the_heavy_rows() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    heavy = np.arange(200) < 100
    y = np.where(heavy, 3.0, -3.0) + 0.1 * rng.normal(size=200)  # two groups, same X
    weights = np.where(heavy, 20.0, 1.0)
    settings = {**FAST, "epochs": 40, "grow": False}
    prediction = GrowingMLPRegressor(**settings).fit(X, y, sample_weight=weights).predict(X)
    assert prediction.mean() > 2.0  # the weighted mean, 20·3 − 3 over 21, is 2.71


def test_a_weighted_soft_f1_fit_chooses_its_threshold_on_weighted_validation_rows() -> None:
    X, y = make_blobs(240, centers=2, cluster_std=4.0, random_state=2)
    weights = np.random.default_rng(0).integers(1, 5, len(y)).astype(float)
    estimator = GrowingMLPClassifier(**FAST, loss="soft-f1", prune="synflow", compression=2.0).fit(
        X, y, sample_weight=weights
    )
    _, validation, _ = split_indices(y, len(y), 0.0, 0.2, seed=0)
    X_val, y_val, w_val = X[validation], y[validation], weights[validation]
    f1 = f1_score(y_val, estimator.predict(X_val), sample_weight=w_val)
    assert estimator.metrics_["validation"]["f1"] == pytest.approx(f1, abs=1e-9)
    chosen = estimator.predict_proba(X_val)[:, 1] >= estimator.threshold_
    expected = f1_score(y_val, chosen, sample_weight=w_val)
    assert estimator.metrics_["threshold"]["validation_score"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("sample_weight", "message"),
    [
        (-np.ones(150), "Negative values in data passed to `sample_weight`"),
        (np.ones(3), r"sample_weight.shape == \(3,\), expected \(150,\)"),
        (np.full(150, np.nan), "Input sample_weight contains NaN"),
        (np.zeros(150), "Sample weights must contain at least one non-zero number"),
        (np.isin(np.arange(150), [0, 1, 60, 61, 120]) * 1.0, "leaves 5 rows with a weight"),
        (np.r_[np.ones(50), np.zeros(100)], "leaves rows of a single class"),
    ],
    ids=["negative", "length", "nan", "all-zero", "too-few-rows", "one-class"],
)
def test_bad_weights_are_refused_in_scikit_learns_words(sample_weight, message) -> None:
    X, y = make_blobs(150, centers=3, random_state=0)
    y = np.sort(y)  # the first 50 rows are one class
    with pytest.raises(ValueError, match=message):
        GrowingMLPClassifier(**FAST).fit(X, y, sample_weight=sample_weight)


def test_verbose_prints_a_line_per_epoch_and_growth_step(blobs, capsys) -> None:
    X, y = blobs
    estimator = GrowingMLPClassifier(**FAST, verbose=1).fit(X, y)
    lines = capsys.readouterr().err.splitlines()
    epochs = [line for line in lines if line.startswith("epoch") and ": loss " in line]
    assert len(epochs) == estimator.n_iter_
    assert epochs[0].startswith("epoch 1: loss ")
    assert "validation loss " in epochs[0] and "accuracy " in epochs[0]
    steps = [line for line in lines if " → " in line or "not grown" in line]
    assert steps, "growth steps are printed"
    assert lines[0].startswith("training on ") and lines[-1].startswith(("training ", "trimming "))


def test_verbose_zero_prints_nothing(blobs, capsys) -> None:
    X, y = blobs
    GrowingMLPClassifier(**FAST).fit(X, y)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_balanced_class_weights_do_not_depend_on_the_weights_scale() -> None:
    balanced = LossConfig(class_weight="balanced")
    expected = make_loss(balanced, "classification", 3, LABELS3, COUNTS).class_weights
    for scale in (1e-3, 1e3):
        scaled = make_loss(balanced, "classification", 3, LABELS3, COUNTS * scale)
        torch.testing.assert_close(scaled.class_weights, expected)


def test_weights_of_any_scale_give_the_same_model() -> None:
    X, y = make_blobs(120, centers=2, cluster_std=2.5, random_state=2)
    y[:80] = 0  # imbalanced, so that balanced class weights matter
    weights = np.random.default_rng(0).uniform(1, 2, len(y))
    settings = {**FAST, "set": {"loss.class_weight": "balanced"}}
    plain = GrowingMLPClassifier(**settings).fit(X, y, sample_weight=weights)
    for scale in (1e-50, 1e-3, 1e3, 1e39):
        scaled = GrowingMLPClassifier(**settings).fit(X, y, sample_weight=weights * scale)
        np.testing.assert_allclose(scaled.predict_proba(X), plain.predict_proba(X), atol=1e-5)
