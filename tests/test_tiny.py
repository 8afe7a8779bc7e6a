"""TINY's math against an independent float64 numpy re-derivation."""

import copy

import numpy as np
import pytest
import torch

from growml.growth.statistics import collect_statistics
from growml.growth.tiny import (
    LayerStatistics,
    best_weight_update,
    expressivity_target,
    gradmax_proposal,
    inverse_sqrt,
    pseudo_inverse,
    tiny_proposal,
)
from growml.losses import CrossEntropy, MeanSquaredError
from growml.nn import ACTIVATIONS, GrowingMLP

RNG = np.random.default_rng(0)


def _with_ones(matrix):
    return np.hstack([matrix, np.ones((matrix.shape[0], 1))])


def _statistics(b2, b1, g):
    """The five averages from row matrices, in torch float64."""
    n = len(g)
    t = {name: torch.from_numpy(value) for name, value in (("b2", b2), ("b1", b1), ("g", g))}
    return LayerStatistics(
        S1=t["b1"].T @ t["b1"] / n,
        M=t["b1"].T @ t["g"] / n,
        S2=t["b2"].T @ t["b2"] / n,
        M2=t["b2"].T @ t["g"] / n,
        P=t["b2"].T @ t["b1"] / n,
        gradient_norm=float((g * g).sum() / n),
        rows=n,
    )


def _random_layer(n=200, d2=6, d1=4, d_out=3):
    b2 = _with_ones(RNG.normal(size=(n, d2)))
    b1 = _with_ones(np.tanh(b2 @ RNG.normal(size=(d2 + 1, d1))))
    g = RNG.normal(size=(n, d_out))
    return b2, b1, g


def test_weight_update_is_the_least_squares_solution():
    b2, b1, g = _random_layer()
    update, gain = best_weight_update(*(lambda s: (s.S1, s.M))(_statistics(b2, b1, g)))
    solution, *_ = np.linalg.lstsq(b1, -g, rcond=None)
    np.testing.assert_allclose(update.numpy(), solution.T, rtol=1e-9, atol=1e-12)
    v_perp = -g - b1 @ solution
    # The residual is orthogonal to every current feature, and Ψ is its size.
    np.testing.assert_allclose(b1.T @ v_perp / len(g), 0, atol=1e-12)
    proposal = tiny_proposal(_statistics(b2, b1, g))
    assert proposal.bottleneck == pytest.approx((v_perp**2).sum(1).mean(), rel=1e-10)
    assert gain == pytest.approx(((g**2).sum(1).mean() - (v_perp**2).sum(1).mean()), rel=1e-9)


def test_residual_drops_by_the_sum_of_squared_lambdas_for_every_k():
    b2, b1, g = _random_layer()
    proposal = tiny_proposal(_statistics(b2, b1, g))
    solution, *_ = np.linalg.lstsq(b1, -g, rcond=None)
    v_perp = -g - b1 @ solution
    # N from the rows themselves, and λ from numpy's own linear algebra.
    n_rows = b2.T @ v_perp / len(g)
    np.testing.assert_allclose(
        expressivity_target(_statistics(b2, b1, g)).numpy(), n_rows, atol=1e-12
    )
    values, vectors = np.linalg.eigh(b2.T @ b2 / len(g))
    whitening = vectors @ np.diag(values**-0.5) @ vectors.T
    np.testing.assert_allclose(
        proposal.lambdas.numpy(), np.linalg.svd(whitening @ n_rows, compute_uv=False), rtol=1e-9
    )
    alpha, omega, lambdas = (proposal.alpha.numpy(), proposal.omega.numpy(), proposal.lambdas)
    base = (v_perp**2).sum(1).mean()
    for k in range(1, len(lambdas) + 1):
        contribution = b2 @ alpha[:k].T @ omega[:, :k].T
        residual = ((v_perp - contribution) ** 2).sum(1).mean()
        assert base - residual == pytest.approx(float((lambdas[:k] ** 2).sum()), rel=1e-9)


def test_nothing_to_add_when_the_layer_can_already_express_the_target():
    b2, b1, _ = _random_layer()
    g = b1 @ RNG.normal(size=(b1.shape[1], 3))
    proposal = tiny_proposal(_statistics(b2, b1, g))
    assert float(expressivity_target(_statistics(b2, b1, g)).abs().max()) < 1e-10
    assert float(proposal.lambdas.max()) < 1e-8
    assert proposal.bottleneck < 1e-10


def test_without_projection_new_neurons_relearn_existing_features():
    b2, b1, g = _random_layer()
    stats = _statistics(b2, b1, g)
    np.testing.assert_allclose(expressivity_target(stats, project=False).numpy(), -b2.T @ g / 200)
    assert float(tiny_proposal(stats, project=False).lambdas[0]) > float(
        tiny_proposal(stats).lambdas[0]
    )


def test_pseudo_inverses_drop_null_directions():
    basis = RNG.normal(size=(5, 3))
    singular = torch.from_numpy(basis @ basis.T)  # rank 3 of 5
    np.testing.assert_allclose(
        pseudo_inverse(singular).numpy(),
        np.linalg.pinv(singular.numpy(), hermitian=True),
        atol=1e-9,
    )
    root = inverse_sqrt(singular)
    assert torch.isfinite(root).all()
    product = root @ singular @ root
    np.testing.assert_allclose(product.numpy(), np.linalg.pinv(singular) @ singular, atol=1e-9)


def _network(activation, widths=(3, 2), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return GrowingMLP(5, list(widths), 4, activation, generator=generator).double()


def _data(n=300, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, dtype=torch.float64, generator=generator)
    labels = (x[:, 0] * x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()
    return x, labels


def test_statistics_match_per_sample_autograd_gradients():
    model = _network("tanh")
    x, labels = _data()
    loss = CrossEntropy(4)
    target = loss.prepare_target(labels.numpy()).double()
    stats = collect_statistics(model, loss, x, target, batch_size=64)
    # Reference: per-sample gradients from autograd on the summed loss.
    h, inputs, preactivations = x, [], []
    for index, (weight, bias) in enumerate(zip(model.weights, model.biases, strict=True)):
        inputs.append(h.detach().numpy())
        a = h @ weight.T + bias
        a.retain_grad()
        preactivations.append(a)
        h = a if index == 2 else torch.tanh(a)
    torch.nn.functional.cross_entropy(h, labels, reduction="sum").backward()
    for k, layer in enumerate(stats):
        b2, b1 = _with_ones(inputs[k]), _with_ones(inputs[k + 1])
        g = preactivations[k + 1].grad.numpy()
        expected = _statistics(b2, b1, g)
        for name in ("S1", "M", "S2", "M2", "P"):
            np.testing.assert_allclose(
                getattr(layer, name).numpy(), getattr(expected, name).numpy(), atol=1e-9
            )
        assert layer.gradient_norm == pytest.approx(expected.gradient_norm, rel=1e-9)
        assert layer.rows == 300 and sum(group.rows for group in layer.groups) == 300
        assert len(layer.groups) == 8 and {group.rows for group in layer.groups} == {37, 38}
        assert torch.allclose(sum(group.M * group.rows for group in layer.groups) / 300, layer.M)


def _apply(model, layer, proposal, neurons, gamma):
    grown = copy.deepcopy(model)
    t = gamma**2
    with torch.no_grad():
        if proposal.weight_update is not None:
            grown.weights[layer + 1] += t * proposal.weight_update[:, :-1]
            grown.biases[layer + 1] += t * proposal.weight_update[:, -1]
        alpha = gamma * proposal.alpha[:neurons]
        grown.add_neurons(layer, alpha[:, :-1], alpha[:, -1], gamma * proposal.omega[:, :neurons])
    return grown


@pytest.mark.parametrize("layer", [0, 1])
def test_measured_first_order_slope_matches_the_prediction(layer):
    """tanh network: (L(γ) − L0)/γ² → −(FO − cross term) exactly, and FO within 10 %."""
    model = _network("tanh")
    x, labels = _data()
    loss = CrossEntropy(4)
    target = loss.prepare_target(labels.numpy()).double()
    stats = collect_statistics(model, loss, x, target)[layer]
    proposal = tiny_proposal(stats)
    neurons = 2
    with torch.no_grad():
        base = float(loss(model(x), target))
        gamma = 1e-3
        slope = (float(loss(_apply(model, layer, proposal, neurons, gamma)(x), target)) - base) / (
            gamma**2
        )
    fo = proposal.first_order(neurons, slope_at_zero=1.0)
    coupling = proposal.omega[:, :neurons] @ proposal.alpha[:neurons]
    cross = float(torch.trace(coupling @ stats.P @ pseudo_inverse(stats.S1) @ stats.M))
    assert slope == pytest.approx(-(fo - cross), rel=1e-3)
    assert slope == pytest.approx(-fo, rel=0.10)
    assert slope < 0


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_degenerate_inputs_never_give_nan(activation):
    """Constant and duplicated columns, more features than rows, width-1 layers, dead units."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 12, dtype=torch.float64, generator=generator)
    x[:, 3] = 1.0
    x[:, 4] = x[:, 5]
    model = GrowingMLP(12, [1, 1], 2, activation, generator=generator).double()
    with torch.no_grad():
        model.biases[0].fill_(-100.0)  # a dead ReLU: its output and gradient are zero
    loss = MeanSquaredError()
    target = torch.randn(6, 2, dtype=torch.float64, generator=generator)
    for stats in collect_statistics(model, loss, x, target, batch_size=4):
        for proposal in (tiny_proposal(stats), gradmax_proposal(stats, output_scale=1.0)):
            for tensor in (proposal.alpha, proposal.omega, proposal.lambdas):
                assert torch.isfinite(tensor).all()
            assert np.isfinite(proposal.first_order(1, 1.0)) and np.isfinite(proposal.noise_floor)


def _grouped(b2, b1, g, groups=8):
    bounds = np.linspace(0, len(g), groups + 1).astype(int)
    parts = tuple(
        _statistics(b2[a:b], b1[a:b], g[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)
    )
    return LayerStatistics(**{**_statistics(b2, b1, g).__dict__, "groups": parts})


def test_noise_floor_rarely_lets_pure_noise_through():
    grown = 0
    for _ in range(40):
        b2, b1, _ = _random_layer(n=400, d2=20, d1=4, d_out=5)
        grown += tiny_proposal(_grouped(b2, b1, RNG.normal(size=(400, 5)))).significant(10) > 0
    assert grown <= 4  # the floor is about the 97th percentile of the noise's largest λ


def test_noise_floor_lets_weak_structure_through():
    b2, b1, _ = _random_layer(n=2000, d2=20, d1=4, d_out=5)
    g = RNG.normal(size=(2000, 5)) + 0.3 * np.tanh(b2[:, :3] @ RNG.normal(size=(3, 5)))
    proposal = tiny_proposal(_grouped(b2, b1, g))
    assert proposal.significant(10) >= 1
    assert proposal.lambdas[0] > proposal.noise_floor > 0


def test_gradmax_keeps_the_function_and_follows_the_gradient():
    b2, b1, g = _random_layer()
    proposal = gradmax_proposal(_statistics(b2, b1, g), output_scale=0.5)
    assert float(proposal.alpha.abs().max()) == 0.0
    left, _, _ = np.linalg.svd(g.T @ b2 / len(g))
    np.testing.assert_allclose(np.abs(proposal.omega.numpy()), np.abs(left) * 0.5, atol=1e-9)
