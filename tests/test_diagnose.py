"""The diagnostics' measurements against independent computations: per-example gradients
against one backward pass per row, the empirical NTK against an explicit Jacobian, and the
width bound, confusion, relative change and kernel drift against their definitions."""

from __future__ import annotations

import math

import pytest
import torch

from growml.diagnose import (
    empirical_ntk,
    gradient_confusion,
    kernel_drift,
    per_example_gradients,
    relative_change,
    width_bound,
)
from growml.losses import CrossEntropy, MeanSquaredError
from growml.nn import GrowingMLP


def _network(outputs: int, activation: str = "relu") -> GrowingMLP:
    return GrowingMLP(5, [7, 4], outputs, activation, generator=torch.Generator().manual_seed(0))


def test_the_width_bound_is_two_rows_per_input_and_bias():
    assert width_bound(400, 20) == math.ceil(800 / 21) == 39
    assert width_bound(10, 1) == 10
    with pytest.raises(ValueError):
        width_bound(0, 3)


@pytest.mark.parametrize(
    ("loss", "target"),
    [
        (CrossEntropy(3), torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])),
        (MeanSquaredError(), torch.randn(8, 3, generator=torch.Generator().manual_seed(2))),
    ],
    ids=["cross-entropy", "mse"],
)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_per_example_gradients_equal_one_backward_pass_per_row(loss, target, activation):
    model = _network(3, activation)
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    prepared = loss.prepare_target(target.numpy(), None)
    batched = per_example_gradients(model, loss, x, prepared)
    reference = model.double()
    for row in range(len(x)):
        with torch.no_grad():
            cache = reference.forward_cached(x[row : row + 1].double())
            _, output_grad = loss.value_and_grad(cache.output, prepared[row : row + 1].double())
            reference.backward(cache, output_grad)
        flat = torch.cat(
            [
                part.grad.reshape(-1)
                for weight, bias in zip(reference.weights, reference.biases, strict=True)
                for part in (weight, bias)
            ]
        )
        torch.testing.assert_close(batched[row], flat, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "selu"])
def test_the_empirical_ntk_is_the_jacobians_gram_matrix(activation):
    model = _network(2, activation)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    kernel = empirical_ntk(model, x)
    reference = model.double()
    rows = []
    output = reference(x.double())
    for b in range(4):
        for k in range(2):
            grads = torch.autograd.grad(
                output[b, k], list(reference.parameters()), retain_graph=True
            )
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    jacobian = torch.stack(rows)
    torch.testing.assert_close(kernel, jacobian @ jacobian.T, rtol=1e-10, atol=1e-12)


def test_kernel_drift_is_zero_for_the_same_direction_and_two_for_the_opposite():
    kernel = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    assert kernel_drift(kernel, 5 * kernel) == pytest.approx(0.0, abs=1e-15)
    assert kernel_drift(kernel, -kernel) == pytest.approx(2.0)
    other = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    expected = 1 - float((kernel * other).sum()) / float(kernel.norm() * other.norm())
    assert kernel_drift(kernel, other) == pytest.approx(expected)


def test_confusion_is_the_most_negative_inner_product_of_two_rows():
    gradients = torch.tensor([[1.0, 0.0], [-2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    confusion = gradient_confusion(gradients)
    assert confusion.probe == 4
    assert confusion.eta == pytest.approx(2.0)  # ⟨g₀, g₁⟩ = −2
    assert confusion.min_cosine == pytest.approx(-1.0)
    cosines = [0.0, 1 / math.sqrt(2), -1 / math.sqrt(2), -1.0, 0.0, 1 / math.sqrt(2)]
    assert confusion.mean_cosine == pytest.approx(sum(cosines) / 6)
    assert gradient_confusion(torch.eye(3)).eta == 0.0  # orthogonal: no confusion
    with pytest.raises(ValueError):
        gradient_confusion(torch.ones(1, 3))


def test_relative_change_is_the_frobenius_ratio_per_layer():
    before = [torch.ones(2, 2), torch.zeros(3)]
    after = [torch.full((2, 2), 1.5), torch.zeros(3)]
    assert relative_change(before, after) == [pytest.approx(0.5), 0.0]
    assert relative_change([torch.zeros(2)], [torch.ones(2)]) == [math.inf]
    with pytest.raises(ValueError):
        relative_change([torch.ones(2)], [torch.ones(3)])


def test_random_targets_are_fitted_at_the_width_bound_and_not_at_a_quarter_of_it():
    """400 rows of 20 Gaussian inputs with Gaussian targets (variance 1): a tanh network of
    the bound's width fits them (training MSE < 0.01, mean over seeds), one of a quarter of it
    cannot (> 0.05): it has fewer parameters than rows."""
    from growml.config import TrainConfig
    from growml.train import Trainer

    rng = torch.Generator().manual_seed(0)
    x = torch.randn(400, 20, generator=rng).numpy()
    y = torch.randn(400, generator=rng).numpy()
    bound = width_bound(400, 20)
    loss = MeanSquaredError()
    config = TrainConfig(epochs=2000, batch_size=400, lr=0.01, early_stopping=False)
    fitted = {}
    for width in (bound // 4, bound):
        losses = []
        for seed in range(2):
            model = GrowingMLP(
                20, [width], 1, "tanh", generator=torch.Generator().manual_seed(seed)
            )
            Trainer(config, loss, "regression", seed=seed).run(model, x, y, x, y)
            with torch.no_grad():
                losses.append(float(loss(model(torch.as_tensor(x)), loss.prepare_target(y, None))))
        fitted[width] = sum(losses) / len(losses)
    assert fitted[bound] < 0.01 < 0.05 < fitted[bound // 4]


def test_training_is_lazier_the_larger_the_initialisation():
    """Woodworth et al.'s kernel regime: the larger ``init_scale``, the less the weights move
    relative to where they started and the less the kernel turns (means over three seeds)."""
    from sklearn.datasets import make_moons

    from growml.config import TrainConfig
    from growml.train import Trainer

    x, y = make_moons(300, noise=0.2, random_state=0)
    x = x.astype("float32")
    probe = torch.as_tensor(x[:32])
    config = TrainConfig(epochs=100, batch_size=64, lr=0.01, early_stopping=False)
    changes, drifts = [], []
    for scale in (0.5, 1.0, 4.0):
        change = drift = 0.0
        for seed in range(3):
            generator = torch.Generator().manual_seed(seed)
            model = GrowingMLP(2, [64], 2, "tanh", init_scale=scale, generator=generator)
            start, kernel = [w.detach().clone() for w in model.weights], empirical_ntk(model, probe)
            Trainer(config, CrossEntropy(2), "classification", seed=seed).run(model, x, y, x, y)
            change += sum(relative_change(start, [w.detach() for w in model.weights])) / 3
            drift += kernel_drift(kernel, empirical_ntk(model, probe)) / 3
        changes.append(change)
        drifts.append(drift)
    assert changes[0] > changes[1] > changes[2]
    assert drifts[0] > drifts[1] > drifts[2]
