"""Closed-form loss gradients equal autograd's, in float64."""

import numpy as np
import pytest
import torch

from growml.losses import BinaryCrossEntropy, CrossEntropy, Loss, MeanSquaredError, default_loss


def _case(loss, n_outputs, target):
    output = torch.randn(
        9, n_outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    prepared = loss.prepare_target(target).to(torch.float64)
    value, grad = loss.value_and_grad(output.clone(), prepared)
    reference_value, reference_grad = Loss.value_and_grad(loss, output.clone(), prepared)
    return value, grad, reference_value, reference_grad


@pytest.mark.parametrize(
    ("loss", "n_outputs", "target"),
    [
        (CrossEntropy(4), 4, np.array([0, 1, 2, 3, 3, 2, 1, 0, 0])),
        (BinaryCrossEntropy(), 1, np.array([0, 1, 1, 0, 1, 0, 0, 0, 1])),
        (MeanSquaredError(), 1, np.linspace(-2, 2, 9)),
    ],
    ids=["cross-entropy", "bce", "mse"],
)
def test_closed_form_gradient_equals_autograd(loss, n_outputs, target):
    value, grad, reference_value, reference_grad = _case(loss, n_outputs, target)
    torch.testing.assert_close(value, reference_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=1e-12)


def test_cross_entropy_value_is_the_textbook_one():
    output = torch.tensor([[2.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    loss = CrossEntropy(2)
    value, _ = loss.value_and_grad(output, loss.prepare_target(np.array([0, 1])).double())
    expected = (np.log(1 + np.exp(-2.0)) + np.log(2.0)) / 2
    assert float(value) == pytest.approx(expected, rel=1e-12)


def test_the_default_logistic_loss_is_torchs_unweighted_one():
    output = torch.tensor([[2.0], [-1.0], [0.5]], dtype=torch.float64)
    target = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    value, _ = BinaryCrossEntropy().value_and_grad(output, target)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(output, target)
    assert float(value) == pytest.approx(float(expected), rel=1e-12)


def test_default_loss_follows_the_task():
    assert isinstance(default_loss("classification", 1), BinaryCrossEntropy)
    assert isinstance(default_loss("classification", 5), CrossEntropy)
    assert isinstance(default_loss("regression", 1), MeanSquaredError)


@pytest.mark.parametrize("classes", [2, 5])
def test_label_smoothing_moves_the_optimum_to_the_smoothed_target(classes):
    epsilon = 0.1
    labels = np.array([0, 1, 1, classes - 1])
    if classes == 2:
        loss, outputs = BinaryCrossEntropy(smoothing=epsilon), 1
        expected = np.where(labels == 1, 1 - epsilon / 2, epsilon / 2)[:, None]
    else:
        loss, outputs = CrossEntropy(classes, smoothing=epsilon), classes
        expected = np.full((4, classes), epsilon / classes)
        expected[np.arange(4), labels] += 1 - epsilon
    target = loss.prepare_target(labels)
    np.testing.assert_allclose(target.numpy(), expected, rtol=1e-6)
    # The closed-form gradient is exact for smoothed targets too ...
    output = torch.randn(4, outputs, dtype=torch.float64)
    _, grad = loss.value_and_grad(output, target.double())
    _, reference = Loss.value_and_grad(loss, output, target.double())
    torch.testing.assert_close(grad, reference)
    # ... and vanishes where the predicted probabilities are the smoothed target (float64).
    probabilities = torch.as_tensor(expected, dtype=torch.float64)
    logits = torch.logit(probabilities) if classes == 2 else probabilities.log()
    _, at_optimum = loss.value_and_grad(logits, target.double())
    assert float(at_optimum.abs().max()) < 1e-7


def test_label_smoothing_reaches_the_loss_from_the_settings():
    from growml.config import LossConfig
    from growml.losses import make_loss

    labels = np.array([0, 1, 2])
    loss = make_loss(LossConfig(label_smoothing=0.3), "classification", 3, labels)
    assert loss.prepare_target(labels)[0].tolist() == pytest.approx([0.8, 0.1, 0.1])
