"""The growth step's parts, each against a float64 re-derivation: the pool's candidate
directions and support measure, the greedy selection's stop, the line searches, TINY's
pseudo-inverse and the options each method builds."""

import math

import pytest
import torch

from growml.config import GrowthConfig
from growml.growth.engine import apply_candidate
from growml.growth.line_search import Candidate, armijo, best_on_grid, extended_loss
from growml.growth.methods import Measurement, make_method, random_candidate
from growml.growth.pool import (
    candidate_directions,
    effective_rows,
    greedy_selection,
    permutation_bar,
    pool_gains,
    pool_proposal,
    span_basis,
)
from growml.growth.statistics import collect_rows, collect_statistics, statistics_of
from growml.growth.tiny import (
    LayerStatistics,
    bottleneck,
    inverse_sqrt,
    noise_floor,
    optimal_neurons,
    pseudo_inverse,
    tiny_proposal,
)
from growml.losses import CrossEntropy
from growml.nn import GrowingMLP

F64 = torch.float64


def test_candidates_have_unit_spread_and_their_hinges_pass_through_data_rows():
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([1.0, 10.0, 0.1], dtype=F64)
    x = torch.randn(200, 3, dtype=F64, generator=generator) * scales + 5.0
    below = torch.cat([x, torch.ones(200, 1, dtype=F64)], 1)
    tiny_alpha = torch.randn(2, 4, dtype=F64, generator=generator)
    alpha = candidate_directions(below, tiny_alpha, 5, 3, generator)
    base = 2 * 2 + 5  # TINY's directions with both signs, and the random ones
    assert alpha.shape == (base * (1 + 3), 4)
    pre = below @ alpha.T
    torch.testing.assert_close(pre[:, :base].std(0), torch.ones(base, dtype=F64))
    # TINY's directions keep their own bias; the random ones are centred on the rows.
    torch.testing.assert_close(pre[:, 4:base].mean(0), torch.zeros(5, dtype=F64))
    hinged = alpha[base:].reshape(base, 3, 4)
    torch.testing.assert_close(hinged[:, :, :-1], alpha[:base, None, :-1].expand(base, 3, 3))
    assert bool((pre[:, base:].abs().min(0).values < 1e-9).all())  # zero at some row


def test_effective_rows_is_the_ratio_of_moments_at_any_scale():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(50, 4, dtype=F64, generator=generator)
    features = features * torch.tensor([1e-3, 1.0, 1e3, 0.0], dtype=F64)
    centred = features - features.mean(0)
    expected = (centred**2).sum(0) ** 2 / (centred**4).sum(0)
    got = effective_rows(features)
    torch.testing.assert_close(got[:3], expected[:3])
    assert float(got[3]) == 0.0


def test_a_column_with_no_spread_left_gains_nothing():
    features = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]], dtype=F64)
    residual = torch.tensor([[1.0], [0.0], [-1.0]], dtype=F64)
    assert pool_gains(features, residual).tolist() == [pytest.approx(2 / 3), 0.0]


def _explicit_pursuit(features, residual, picks):
    """Orthogonal matching pursuit the slow way: project everything off the picked columns
    with a fresh QR at every pick, and score each column from scratch."""
    n, chosen, gains = features.shape[0], [], []
    for _ in range(picks):
        if chosen:
            basis, _ = torch.linalg.qr(features[:, chosen])
            project = torch.eye(n, dtype=F64) - basis @ basis.T
        else:
            project = torch.eye(n, dtype=F64)
        h, r = project @ features, project @ residual
        scores = ((h.T @ r) ** 2).sum(1) / (h * h).sum(0).clamp_min(1e-300) / n
        scores[chosen] = 0.0
        chosen.append(int(scores.argmax()))
        gains.append(float(scores.max()))
    return chosen, gains


def test_greedy_selection_is_orthogonal_matching_pursuit():
    generator = torch.Generator().manual_seed(8)
    features = torch.randn(60, 7, dtype=F64, generator=generator)
    residual = torch.randn(60, 2, dtype=F64, generator=generator) + features[:, :3] @ torch.ones(
        3, 2, dtype=F64
    )
    selection = greedy_selection(features, residual, max_neurons=4)
    indices, gains = _explicit_pursuit(features, residual, 4)
    assert selection.indices == indices
    assert selection.gains == pytest.approx(gains, rel=1e-9)
    assert selection.best_gain == pytest.approx(gains[0], rel=1e-9)
    # With a bar above every gain nothing is picked, but the best gain is still reported.
    none = greedy_selection(features, residual, max_neurons=4, bar=10 * gains[0])
    assert none.indices == [] and none.best_gain == pytest.approx(gains[0], rel=1e-9)


def test_greedy_selection_stops_once_nothing_is_left_to_explain():
    features = torch.eye(4, 3, dtype=F64)
    residual = torch.tensor([[1.0], [0.0], [0.0], [0.0]], dtype=F64)
    selection = greedy_selection(features, residual, max_neurons=3)
    assert selection.indices == [0] and selection.gains == [pytest.approx(0.25)]


def test_without_shuffles_or_usable_candidates_the_permutation_bar_is_zero():
    features = torch.eye(4, 3, dtype=F64)
    residual = torch.ones(4, 1, dtype=F64)
    basis = torch.zeros(4, 0, dtype=F64)
    assert permutation_bar(features, residual, basis, torch.Generator(), permutations=0) == 0.0
    assert permutation_bar(features * 0, residual, basis, torch.Generator()) == 0.0


def test_the_permutation_bar_does_not_depend_on_the_candidates_scale():
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(50, 6, dtype=F64, generator=generator)
    residual = torch.randn(50, 2, dtype=F64, generator=generator)
    basis = torch.zeros(50, 0, dtype=F64)
    bars = [
        permutation_bar(features * scale, residual, basis, torch.Generator().manual_seed(0))
        for scale in (1.0, 1e-3)
    ]
    assert bars[1] == pytest.approx(bars[0], rel=1e-9)


def test_random_directions_are_isotropic_in_the_whitened_inputs():
    generator = torch.Generator().manual_seed(6)
    mixing = torch.tensor([[1.0, 0.0, 0.0], [3.0, 0.5, 0.0], [0.0, 2.0, 0.2]], dtype=F64)
    x = torch.randn(4000, 3, dtype=F64, generator=generator) @ mixing.T + 5.0
    below = torch.cat([x, torch.ones(len(x), 1, dtype=F64)], 1)
    alpha = candidate_directions(below, torch.zeros(0, 4, dtype=F64), 3000, 0, generator)
    # u = Σ^{1/2} a has unit length (unit spread); whitened directions make E[u uᵀ] = I / 3.
    values, vectors = torch.linalg.eigh(torch.cov(x.T))
    u = alpha[:, :-1] @ (vectors * values.sqrt()) @ vectors.T
    torch.testing.assert_close(u.norm(dim=1), torch.ones(len(u), dtype=F64), rtol=1e-3, atol=0)
    torch.testing.assert_close(u.T @ u / len(u), torch.eye(3, dtype=F64) / 3, rtol=0, atol=0.03)


def test_armijo_spends_one_evaluation_per_trial_step():
    def quadratic(t):  # minimum at t = 2
        return 1 - t + t * t / 4

    # Accepted at 0.25 (1 evaluation), doubled to 0.5 and 1.0: three evaluations in all.
    step, _ = armijo(quadratic, 1.0, first_order=1.0, max_evaluations=3, start=0.25)
    assert step == 1.0
    # Backtracking from 64: 64, 32, 16, 8 and 4 fail, 2 is accepted on the sixth evaluation.
    assert armijo(quadratic, 1.0, first_order=1.0, max_evaluations=5, start=64.0) == (0.0, 1.0)
    step, _ = armijo(quadratic, 1.0, first_order=1.0, max_evaluations=6, start=64.0)
    assert step == 2.0


def test_armijo_starts_at_twice_the_step_where_the_linear_prediction_reaches_zero():
    tried = []

    def recorded(t):
        tried.append(t)
        return 1 - t + t * t / 4

    armijo(recorded, 0.8, first_order=2.0)
    assert tried[0] == 2.0 * 0.8 / 2.0


def test_armijo_never_accepts_a_step_that_raises_the_loss():
    def rising(t):  # a wrong first-order prediction: the loss goes up
        return 1 + 0.01 * t

    assert armijo(rising, 1.0, first_order=1.0) == (0.0, 1.0)
    assert armijo(rising, 1.0, first_order=0.0) == (0.0, 1.0)  # no predicted decrease
    assert armijo(rising, 1.0, first_order=-0.5) == (0.0, 1.0)


def test_armijo_stops_doubling_where_the_loss_stops_falling():
    def flat(t):
        return 0.5 if t > 0 else 1.0

    assert armijo(flat, 1.0, first_order=1.0, start=0.25) == (0.25, 0.5)


def test_armijo_doubles_an_accepted_step_whatever_the_size_of_the_loss():
    def shifted(t):  # 10 − t + t²/4: minimum at t = 2, losses far above the largest step
        return 10 - t + t * t / 4

    step, value = armijo(shifted, 10.0, first_order=1.0, largest=4.0, start=0.25)
    assert step == 2.0 and value == pytest.approx(9.0)


def test_the_grid_search_takes_the_lowest_loss_or_no_step():
    def bowl(t):
        return (t - 0.3) ** 2

    assert best_on_grid(bowl, 1.0, (0.1, 0.25, 1.0)) == (0.25, pytest.approx(0.0025))
    assert best_on_grid(lambda t: 2.0, 1.0, (0.1, 1.0)) == (0.0, 1.0)


def test_the_pseudo_inverse_keeps_eigenvalues_down_to_a_millionth_of_the_largest():
    for scale in (1e-2, 1.0, 1e3):
        matrix = torch.diag(torch.tensor([1.0, 1e-5, 1e-8], dtype=F64)) * scale
        expected = torch.diag(torch.tensor([1.0, 1e5, 0.0], dtype=F64)) / scale
        torch.testing.assert_close(pseudo_inverse(matrix), expected)


def _tanh_statistics():
    generator = torch.Generator().manual_seed(2)
    model = GrowingMLP(4, [3], 3, "tanh", generator=generator).double()
    x = torch.randn(120, 4, dtype=F64, generator=generator)
    loss = CrossEntropy(3)
    target = loss.prepare_target((x[:, 0] > 0).long().numpy() + (x[:, 1] > 0).long().numpy())
    return model, collect_statistics(model, loss, x, target.double())[0]


def _propose(config, model, stats):
    """The option ``config``'s method offers hidden layer 0 (at most two neurons)."""
    layer = model.growable_layers()[0]
    return make_method(config).propose(Measurement(layer, stats), 2, torch.Generator())


@pytest.mark.parametrize(("method", "project"), [("tiny", True), ("tiny-noproj", False)])
def test_tiny_projects_the_desired_update_and_tiny_noproj_does_not(method, project):
    model, stats = _tanh_statistics()
    projected, plain = tiny_proposal(stats, project=True), tiny_proposal(stats, project=False)
    assert not torch.allclose(projected.alpha[:2], plain.alpha[:2])  # the test can tell them
    config = GrowthConfig(method=method, noise_factor=0.5)
    option = _propose(config, model, stats)
    proposal = projected if project else plain
    count = int((proposal.lambdas[:2] > 0.5 * proposal.noise_floor).sum())
    assert count >= 1
    torch.testing.assert_close(option.candidate.alpha, proposal.alpha[:count])
    # The neurons' first-order gain: tanh'(0) = 1 times the sum of their λ².
    assert option.gain == pytest.approx(float((proposal.lambdas[:count] ** 2).sum()))
    assert proposal.noise_floor > 0 and option.bar == pytest.approx(0.5 * proposal.noise_floor)
    assert option.candidate.scales(0.25) == (0.5, 0.5)  # a step t scales both sides by √t
    # Without the weight move, the first order is the neurons' part alone.
    alone = tiny_proposal(stats, project=project, move_weights=False)
    assert alone.first_order(2, 1.0) == pytest.approx(float((alone.lambdas[:2] ** 2).sum()))


def test_an_option_without_significant_neurons_still_shows_its_best_score():
    model, stats = _tanh_statistics()
    config = GrowthConfig(method="tiny", noise_factor=1e9)  # nothing beats the bar
    option = _propose(config, model, stats)
    assert option.candidate.neurons == 0
    assert option.scores == [pytest.approx(float(tiny_proposal(stats).lambdas[0]))]


def test_gradmax_neurons_write_with_the_next_layers_average_column_norm():
    generator = torch.Generator().manual_seed(2)
    model = GrowingMLP(4, [3, 2], 3, "tanh", generator=generator).double()
    x = torch.randn(120, 4, dtype=F64, generator=generator)
    loss = CrossEntropy(3)
    target = loss.prepare_target((x[:, 0] > 0).long().numpy()).double()
    stats = collect_statistics(model, loss, x, target)[0]
    with torch.no_grad():
        model.weights[0].mul_(7.0)  # the other layers' scales must not leak in
        model.weights[2].mul_(5.0)
    config = GrowthConfig(method="gradmax", noise_factor=1e-9)
    option = _propose(config, model, stats)
    expected = float(model.weights[1].norm(dim=0).mean())
    norms = option.candidate.omega.norm(dim=0)
    torch.testing.assert_close(norms, torch.full_like(norms, expected))
    assert float(option.candidate.alpha.abs().max()) == 0.0  # the function is unchanged


def test_features_of_negligible_size_span_nothing():
    features = torch.randn(30, 3, dtype=F64, generator=torch.Generator().manual_seed(9)) * 1e-12
    assert span_basis(features).shape == (30, 0)


def test_balanced_sign_patterns_cancel_what_the_groups_share():
    from growml.growth.tiny import _balanced_signs

    patterns = _balanced_signs(8)
    assert patterns.shape == (35, 8)  # C(8, 4) / 2: a pattern and its negation count once
    assert bool((patterns.sum(1) == 0).all()) and bool((patterns[:, 0] == 1).all())
    assert len({tuple(p.tolist()) for p in patterns}) == 35


def test_a_gradmax_step_adds_outgoing_weights_of_the_average_column_norm():
    from growml.config import GrowthConfig
    from growml.growth.engine import GrowthEngine

    generator = torch.Generator().manual_seed(12)
    model = GrowingMLP(4, [3], 3, "tanh", generator=generator)
    x = torch.randn(120, 4, generator=generator)
    loss = CrossEntropy(3)
    target = loss.prepare_target((x[:, 0] > 0).long().numpy() + (x[:, 1] > 0).long().numpy())
    expected = float(model.weights[1].norm(dim=0).mean())
    engine = GrowthEngine(GrowthConfig(method="gradmax", noise_factor=1e-6), loss)
    (event,) = engine.step(model, torch.optim.Adam(model.parameters()), x, target, 0)
    assert event.added and event.loss_after == event.loss_before  # the function is unchanged
    new_columns = model.weights[1][:, 3:].detach().norm(dim=0)
    torch.testing.assert_close(new_columns, torch.full_like(new_columns, expected))


def test_span_basis_keeps_directions_down_to_a_ten_millionth_at_any_scale():
    generator = torch.Generator().manual_seed(4)
    left, _ = torch.linalg.qr(torch.randn(30, 3, dtype=F64, generator=generator))
    for scale in (1e-3, 1.0, 1e3):
        features = left * torch.tensor([1.0, 1e-5, 1e-9], dtype=F64) * scale
        assert span_basis(features).shape == (30, 2)


def test_the_pools_bottleneck_is_tinys_measured_from_the_same_rows():
    model, _ = _tanh_statistics()
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(120, 4, dtype=F64, generator=generator)
    loss = CrossEntropy(3)
    target = loss.prepare_target((x[:, 2] > 0).long().numpy()).double()
    rows = collect_rows(model, loss, x, target)[0]
    proposal = pool_proposal(rows, torch.tanh, torch.zeros(0, 5, dtype=F64), 2, generator)
    assert proposal.bottleneck == pytest.approx(bottleneck(statistics_of(rows)), rel=1e-9)


def test_random_neurons_are_drawn_like_a_layers_own_initialisation():
    model, _ = _tanh_statistics()
    candidate = random_candidate(
        model.growable_layers()[0], 500, torch.Generator().manual_seed(3), torch.device("cpu")
    )
    # U(±1/√fan_in) in, U(±1/√(width + new)) out: PyTorch's bound for a Linear layer.
    bound_in, bound_out = 1 / math.sqrt(4), 1 / math.sqrt(3 + 500)
    for weights, bound in ((candidate.alpha, bound_in), (candidate.omega, bound_out)):
        assert float(weights.max()) == pytest.approx(bound, rel=0.01)
        assert float(weights.min()) == pytest.approx(-bound, rel=0.01)
    # The step scales only the outgoing weights: the neurons keep their input scale.
    assert candidate.scales(0.25) == (1.0, 0.25)


def test_with_fewer_than_four_rows_there_are_no_noise_groups():
    model, _ = _tanh_statistics()
    loss = CrossEntropy(3)
    for rows in (1, 3):
        x = torch.randn(rows, 4, dtype=F64, generator=torch.Generator().manual_seed(rows))
        target = loss.prepare_target(torch.arange(rows).numpy() % 3).double()
        (stats,) = collect_statistics(model, loss, x, target)
        assert stats.groups == () and tiny_proposal(stats).noise_floor == 0.0
    x = torch.randn(4, 4, dtype=F64, generator=torch.Generator().manual_seed(4))
    target = loss.prepare_target(torch.arange(4).numpy() % 3).double()
    (stats,) = collect_statistics(model, loss, x, target)
    assert len(stats.groups) == 2 and tiny_proposal(stats).noise_floor > 0


def test_the_noise_floor_of_two_groups_is_half_their_difference():
    generator = torch.Generator().manual_seed(7)
    first, second = (torch.randn(3, 2, dtype=F64, generator=generator) for _ in range(2))
    expected = float(torch.linalg.matrix_norm((first - second) / 2, ord=2))
    assert noise_floor([first, second], [0.5, 0.5], None) == pytest.approx(expected)
    assert noise_floor([first], [1.0], None) == 0.0


def test_the_extended_loss_of_a_first_layer_of_three_is_the_grown_networks():
    generator = torch.Generator().manual_seed(10)
    model = GrowingMLP(4, [3, 2, 3], 3, "tanh", generator=generator).double()
    x = torch.randn(40, 4, dtype=F64, generator=generator)
    loss = CrossEntropy(3)
    target = loss.prepare_target(torch.arange(40).numpy() % 3).double()
    candidate = Candidate(
        0,
        torch.randn(2, 5, dtype=F64, generator=generator),
        torch.randn(2, 2, dtype=F64, generator=generator),
        None,
    )
    with torch.no_grad():
        predicted = extended_loss(model, model.forward_cached(x), loss, target, candidate)(0.3)
        apply_candidate(model, None, candidate, 0.3)
        assert predicted == pytest.approx(float(loss(model(x), target)), rel=1e-12)


def test_tiny_matrices_have_a_zero_pseudo_inverse_and_null_directions_stay_null():
    assert float(pseudo_inverse(torch.eye(3, dtype=F64) * 1e-12).abs().max()) == 0.0
    singular = torch.diag(torch.tensor([4.0, 0.0], dtype=F64))
    torch.testing.assert_close(
        inverse_sqrt(singular), torch.diag(torch.tensor([0.5, 0.0], dtype=F64))
    )


def test_tinys_neurons_are_the_same_with_the_whitening_given_or_computed():
    _, stats = _tanh_statistics()
    target = -stats.M2
    given = optimal_neurons(stats.S2, target, inverse_sqrt(stats.S2))
    computed = optimal_neurons(stats.S2, target)
    for a, b in zip(given, computed, strict=True):
        torch.testing.assert_close(a, b)


def test_the_bottleneck_is_never_negative():
    eye = torch.eye(2, dtype=F64)
    # Round-off can put tr(Mᵀ S1⁺ M) a hair above E‖g‖²: Ψ is then 0, not negative.
    stats = LayerStatistics(eye, eye, eye, eye, eye, gradient_norm=2.0 - 1e-12, rows=10)
    assert tiny_proposal(stats).bottleneck == 0.0 and bottleneck(stats) == 0.0


@pytest.mark.parametrize("project", [True, False])
def test_the_noise_floor_is_that_of_each_groups_own_target(project):
    _, stats = _tanh_statistics()
    assert len(stats.groups) == 8
    projection = torch.linalg.pinv(stats.S1, hermitian=True) @ stats.M  # all rows' S1⁺ M
    targets = [
        -g.M2 + g.P @ projection if project else -g.M2 for g in stats.groups
    ]  # N of each group, sharing the full sample's projection
    weights = [g.rows / stats.rows for g in stats.groups]
    expected = noise_floor(targets, weights, inverse_sqrt(stats.S2))
    assert tiny_proposal(stats, project=project).noise_floor == pytest.approx(expected, rel=1e-6)
