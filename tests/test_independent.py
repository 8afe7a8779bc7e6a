"""Every number a user reads, against an independent computation: metrics.json against
scikit-learn on the saved model's decoded predictions, the trainer's per-epoch validation
metrics against scikit-learn on the same outputs, weighted losses against
torch.nn.functional, and balanced class weights against scikit-learn's."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from sklearn.utils.class_weight import compute_class_weight

import growml
from growml.config import LossConfig
from growml.data import load_table, split_rows
from growml.events import EpochEnd
from growml.losses import make_loss

FAST = [("train.epochs", 40)]


def _fit_and_reload(tmp_path, source, *settings):
    config = growml.resolve_config(overrides=[("data.source", source), *FAST, *settings])
    growml.fit(config, out=tmp_path / "run")
    run = growml.load_run(tmp_path / "run")
    table = load_table(source)
    test = split_rows(table, config.data, config.seed)[2]
    features, target = table.features.take(test), table.target.take(test).to_numpy()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    return run, features, target, metrics


@pytest.mark.parametrize(
    ("source", "settings"),
    [
        # Binary with a threshold; seed 2's validation split moves it off 0.5.
        ("breast-cancer", [("loss.name", "bce"), ("threshold.metric", "f1"), ("seed", 2)]),
        ("iris", []),  # three classes
    ],
)
def test_classification_metrics_are_scikit_learns_on_the_saved_model(tmp_path, source, settings):
    run, features, labels, metrics = _fit_and_reload(tmp_path, source, *settings)
    predicted = run.predict(features)
    proba = run.predict_proba(features)
    table = run.prediction_table(features)
    assert table.column_names == ["prediction"] + [f"probability_{c}" for c in run.classes]
    assert json.loads((tmp_path / "run" / "model.json").read_text())["classes"] == run.classes
    # The probabilities themselves, from the network's logits by numpy's own sigmoid/softmax.
    with torch.no_grad():
        logits = run.model(torch.as_tensor(run.preprocessor.transform(features))).double()
    logits = logits.numpy()
    if logits.shape[1] == 1:
        positive_probability = 1 / (1 + np.exp(-logits[:, 0]))
        independent = np.column_stack([1 - positive_probability, positive_probability])
    else:
        shifted = np.exp(logits - logits.max(1, keepdims=True))
        independent = shifted / shifted.sum(1, keepdims=True)
    np.testing.assert_allclose(proba, independent, atol=1e-6)
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(
        skm.f1_score(labels, predicted, average="macro"), abs=1e-12
    )
    assert metrics["log_loss"] == pytest.approx(
        skm.log_loss(labels, independent, labels=run.classes), abs=1e-6
    )
    if len(run.classes) == 2:
        assert run.threshold != 0.5  # else the stored threshold and ½ could not be told apart
        positive = run.classes[1]
        at_stored = np.where(proba[:, 1] >= run.threshold, positive, run.classes[0])
        at_half = np.where(proba[:, 1] >= 0.5, positive, run.classes[0])
        assert (predicted == at_stored).all()
        assert metrics["f1"] == pytest.approx(
            skm.f1_score(labels, at_stored, pos_label=positive), abs=1e-12
        )
        assert metrics["f1_at_0.5"] == pytest.approx(
            skm.f1_score(labels, at_half, pos_label=positive), abs=1e-12
        )


def test_regression_metrics_are_scikit_learns_in_the_targets_units(tmp_path):
    run, features, values, metrics = _fit_and_reload(tmp_path, "friedman")
    predicted = run.predict(features)
    assert predicted.shape == (len(values),)  # one value per row, not a column
    assert run.prediction_table(features).column_names == ["prediction"]
    assert json.loads((tmp_path / "run" / "model.json").read_text())["classes"] is None
    assert metrics["rmse"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(values, predicted)), rel=1e-5
    )
    assert metrics["mae"] == pytest.approx(skm.mean_absolute_error(values, predicted), rel=1e-5)
    assert metrics["r2"] == pytest.approx(skm.r2_score(values, predicted), abs=1e-5)
    assert metrics["rmse"] != pytest.approx(skm.mean_squared_error(values, predicted), rel=1e-3)


@pytest.mark.parametrize(("source", "monitor"), [("iris", "macro_f1"), ("friedman", "loss")])
def test_per_epoch_validation_metrics_are_scikit_learns_on_the_same_outputs(source, monitor):
    """An observer recomputes each epoch's validation metrics from the network as it is."""
    from growml.data import prepare

    config = growml.resolve_config(
        overrides=[("data.source", source), ("train.epochs", 8), ("train.monitor", monitor)]
    )
    data = prepare(load_table(source), config.data, config.seed)
    checked = []
    model_holder = {}

    def observe(event):
        if not isinstance(event, EpochEnd):
            return
        with torch.no_grad():
            output = model_holder["model"](torch.as_tensor(data.x_val)).double()
        if data.task == "regression":
            r2 = skm.r2_score(data.y_val, output[:, 0].numpy())
            assert event.validation["r2"] == pytest.approx(r2, abs=1e-5)
        else:
            predicted = output.argmax(1).numpy()
            assert event.validation["accuracy"] == pytest.approx(
                skm.accuracy_score(data.y_val, predicted), abs=1e-12
            )
            assert event.validation["macro_f1"] == pytest.approx(
                skm.f1_score(data.y_val, predicted, average="macro"), abs=1e-12
            )
            proba = torch.softmax(output, 1).numpy()
            assert event.validation["loss"] == pytest.approx(
                skm.log_loss(data.y_val, proba, labels=range(proba.shape[1])), abs=1e-5
            )
        checked.append(event.epoch)

    from growml.losses import default_loss
    from growml.nn import GrowingMLP
    from growml.train import Trainer

    n_outputs = data.target_encoder.n_outputs
    model = GrowingMLP(data.x_train.shape[1], [8], n_outputs)
    model_holder["model"] = model
    loss = default_loss(data.task, n_outputs)
    Trainer(config.train, loss, data.task, observers=[observe]).run(
        model, data.x_train, data.y_train, data.x_val, data.y_val
    )
    assert checked == list(range(1, 9))


def test_balanced_class_weights_are_scikit_learns_and_weight_the_rarest_most():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    loss = make_loss(LossConfig(class_weight="balanced"), "classification", 3, labels)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert loss.class_weights.numpy() == pytest.approx(expected, rel=1e-6)
    assert int(loss.class_weights.argmax()) == 2


def test_weighted_cross_entropy_is_torchs_weighted_form():
    generator = torch.Generator().manual_seed(0)
    labels = np.array([0] * 30 + [1] * 8 + [2] * 2)
    loss = make_loss(LossConfig(class_weight="balanced"), "classification", 3, labels)
    output = torch.randn(40, 3, generator=generator)  # the network's float32
    target = loss.prepare_target(labels)
    weights = loss.class_weights.double()
    expected = F.cross_entropy(output.double(), torch.as_tensor(labels), weight=weights)
    value, gradient = loss.value_and_grad(output, target)
    assert float(loss(output, target)) == pytest.approx(float(expected), rel=1e-6)
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    reference = output.double().clone().requires_grad_(True)
    F.cross_entropy(reference, torch.as_tensor(labels), weight=weights).backward()
    torch.testing.assert_close(gradient.double(), reference.grad, rtol=1e-5, atol=1e-7)


def test_logistic_loss_without_class_weights_is_torchs_unweighted_form():
    labels = np.array([0] * 30 + [1] * 10)
    loss = make_loss(LossConfig(name="bce"), "classification", 1, labels)
    output = torch.randn(40, 1, generator=torch.Generator().manual_seed(2))
    target = loss.prepare_target(labels)
    expected = F.binary_cross_entropy_with_logits(output.double(), target.double())
    assert float(loss(output, target)) == pytest.approx(float(expected), rel=1e-6)


def test_a_class_missing_from_the_training_rows_gets_a_finite_weight():
    labels = np.array([0] * 30 + [2] * 10)  # class 1 is absent
    loss = make_loss(LossConfig(class_weight="balanced"), "classification", 3, labels)
    # n / (classes × max(count, 1)), scikit-learn's formula with the absent class counted once.
    assert loss.class_weights.tolist() == pytest.approx([40 / 90, 40 / 3, 40 / 30])


@pytest.mark.parametrize(("negatives", "positives"), [(36, 4), (20, 10)], ids=["w9", "w2"])
def test_weighted_binary_cross_entropy_is_torchs_pos_weight_form(negatives, positives):
    generator = torch.Generator().manual_seed(1)
    labels = np.array([0] * negatives + [1] * positives)
    loss = make_loss(LossConfig(name="bce", class_weight="balanced"), "classification", 1, labels)
    weights = compute_class_weight("balanced", classes=np.arange(2), y=labels)
    assert loss.positive_weight == pytest.approx(weights[1] / weights[0], rel=1e-6)
    output = torch.randn(len(labels), 1, generator=generator)
    target = loss.prepare_target(labels)
    positive = torch.tensor(loss.positive_weight, dtype=torch.float64)
    expected = F.binary_cross_entropy_with_logits(
        output[:, 0].double(), torch.as_tensor(labels, dtype=torch.float64), pos_weight=positive
    )
    value, gradient = loss.value_and_grad(output, target)
    assert float(loss(output, target)) == pytest.approx(float(expected), rel=1e-6)
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    reference = output.double().clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(
        reference[:, 0], torch.as_tensor(labels, dtype=torch.float64), pos_weight=positive
    ).backward()
    torch.testing.assert_close(gradient.double(), reference.grad, rtol=1e-5, atol=1e-7)


def test_a_probability_equal_to_the_threshold_is_decided_positive():
    from growml.train.metrics import decide

    logits = torch.tensor([[0.0], [-1e-3], [1e-3]])  # probabilities ½, just below, just above
    assert decide(logits, None).tolist() == [1, 0, 1]
    assert decide(logits, 0.5).tolist() == [1, 0, 1]


def test_f1_with_no_positive_anywhere_counts_as_zero():
    """A split without positives, predicted without positives: F1 is undefined, and growml
    reports 0 (scikit-learn's zero_division=0), never a flattering 1."""
    from growml.train.metrics import classification_metrics

    labels = np.zeros(4, dtype=np.int64)
    proba = np.column_stack([np.full(4, 0.9), np.full(4, 0.1)])
    result = classification_metrics(labels, labels.copy(), proba)
    assert result["f1"] == 0.0
    assert result["macro_f1"] == pytest.approx(0.5)  # class 0 perfect, class 1 undefined: 0
