"""The candidate-pool step against a float64 re-derivation, its null, and the engine around it."""

import numpy as np
import pytest
import torch

from growml.config import GrowthConfig, TrainConfig
from growml.events import GrowthStep
from growml.growth import pool
from growml.growth.engine import MAX_INTERVAL, GrowthEngine
from growml.growth.pool import (
    LayerRows,
    effective_rows,
    greedy_selection,
    orthogonal_part,
    permutation_bar,
    pool_gains,
    pool_proposal,
    span_basis,
)
from growml.growth.statistics import collect_rows, statistics_of
from growml.growth.tiny import tiny_proposal
from growml.losses import default_loss
from growml.nn import GrowingMLP
from growml.train import Trainer


def _rows(n=400, fan_in=3, width=4, outputs=2, seed=0, dead=False):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, fan_in, generator=generator, dtype=torch.float64)
    below = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    hidden = torch.relu(below @ torch.randn(fan_in + 1, width, generator=generator).double())
    if dead:
        hidden[:, 0] = 0.0
    current = torch.cat([hidden, torch.ones(n, 1, dtype=torch.float64)], 1)
    target = torch.stack([torch.sin(2 * x[:, 0]) * x[:, 1], (x[:, 2] > 0.3).double()], 1)
    return LayerRows(below, current, -target[:, :outputs])


def _drop_of_residual(residual, feature):
    """E‖V‖² − min_ω E‖V − h ωᵀ‖², by a float64 least-squares solve of its own."""
    n = residual.shape[0]
    omega = np.linalg.lstsq(feature[:, None], residual, rcond=None)[0]
    left = residual - feature[:, None] @ omega
    return ((residual**2).sum() - (left**2).sum()) / n


def test_each_gain_is_the_drop_of_the_residual_objective():
    rows = _rows()
    basis = span_basis(rows.current)
    residual = orthogonal_part(-rows.gradient, basis)
    alpha = torch.randn(30, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    projected = orthogonal_part(torch.tanh(rows.below @ alpha.T), basis)
    gains = pool_gains(projected, residual)
    for column in range(30):
        expected = _drop_of_residual(residual.numpy(), projected[:, column].numpy())
        assert float(gains[column]) == pytest.approx(expected, rel=1e-10, abs=1e-14)


def test_greedy_gains_add_up_to_the_drop_of_the_joint_fit():
    rows = _rows(seed=1)
    basis = span_basis(rows.current)
    residual = orthogonal_part(-rows.gradient, basis)
    alpha = torch.randn(50, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    projected = orthogonal_part(torch.relu(rows.below @ alpha.T), basis)
    selection = greedy_selection(projected, residual, max_neurons=5)
    assert len(selection.indices) == 5 and selection.gains == sorted(selection.gains, reverse=True)
    chosen = projected[:, selection.indices].numpy()
    solution = np.linalg.lstsq(chosen, residual.numpy(), rcond=None)[0]
    left = residual.numpy() - chosen @ solution
    drop = ((residual.numpy() ** 2).sum() - (left**2).sum()) / rows.rows
    assert sum(selection.gains) == pytest.approx(drop, rel=1e-10)
    # Each pick is the best column given the earlier ones.
    first = pool_gains(projected, residual)
    assert selection.indices[0] == int(first.argmax())


def test_with_identity_activation_the_gains_are_tinys_lambdas():
    """TINY's linear problem with the existing features projected out: λ_k of
    S⊥^{-1/2} E[b2 v⊥ᵀ], S⊥ = E[b2⊥ b2⊥ᵀ]; the pool's picks among those neurons gain λ_k²."""
    rows = _rows(n=500, fan_in=5, outputs=2, seed=2)
    basis = span_basis(rows.current)
    residual = orthogonal_part(-rows.gradient, basis)
    below_perp = orthogonal_part(rows.below, basis).numpy()
    n = rows.rows
    covariance = below_perp.T @ below_perp / n
    values, vectors = np.linalg.eigh(covariance)
    keep = values > 1e-9 * values.max()
    whitening = (vectors[:, keep] / np.sqrt(values[keep])) @ vectors[:, keep].T
    target = below_perp.T @ residual.numpy() / n
    left, lambdas, _ = np.linalg.svd(whitening @ target, full_matrices=False)
    alpha = torch.as_tensor((whitening @ left).T)
    features = rows.below @ alpha.T  # σ = identity
    selection = greedy_selection(orthogonal_part(features, basis), residual, max_neurons=2)
    assert selection.gains == pytest.approx((lambdas**2).tolist(), rel=1e-9)
    # No direction does better than λ₁² (random ones for the record).
    others = torch.randn(200, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    best_other = pool_gains(orthogonal_part(rows.below @ others.T, basis), residual).max()
    assert float(best_other) <= lambdas[0] ** 2 * (1 + 1e-9)


def test_the_proposal_fits_neurons_and_weights_jointly_and_predicts_its_first_order():
    rows = _rows(seed=3, dead=True)  # a dead feature: the fit must not collapse to zero
    tiny = tiny_proposal(statistics_of(rows))
    proposal = pool_proposal(
        rows, torch.relu, tiny.alpha[:3], 4, torch.Generator().manual_seed(0), permutations=0
    )
    assert proposal.alpha.shape == (4, 4) and proposal.omega.shape == (2, 4)
    assert proposal.weight_update.shape == (2, 5)
    assert bool(proposal.omega.abs().sum() > 0)
    assert proposal.first_order == pytest.approx(proposal.weight_gain + sum(proposal.gains))
    # The fitted update, applied in full, is the least-squares projection of V.
    inputs = torch.cat([rows.current, torch.relu(rows.below @ proposal.alpha.T)], 1)
    fitted = inputs @ torch.cat([proposal.weight_update.T, proposal.omega.T])
    expected = np.linalg.lstsq(inputs.numpy(), -rows.gradient.numpy(), rcond=None)[0]
    assert fitted.numpy() == pytest.approx(inputs.numpy() @ expected, abs=1e-9)


def test_effective_rows_counts_the_rows_that_carry_a_feature():
    generator = np.random.default_rng(0)
    features = generator.normal(size=(500, 3)) ** 3
    centred = features - features.mean(0)
    expected = (centred**2).sum(0) ** 2 / (centred**4).sum(0)
    got = effective_rows(torch.as_tensor(features)).numpy()
    assert got == pytest.approx(expected, rel=1e-12)
    carried = torch.zeros(1000, 2, dtype=torch.float64)
    carried[:7, 0] = 1.0  # seven rows alike: about seven effective rows
    carried[:, 1] = 3.0  # constant: none
    got = effective_rows(carried)
    assert 6.5 < float(got[0]) < 7.5 and float(got[1]) == 0.0


def test_a_hinge_carried_by_a_few_rows_is_not_a_candidate(monkeypatch):
    """The residual sits on three far rows, and TINY's direction hinges through them: without
    the support rule it enters the pool and is picked; with it only its mirror (spread over
    the other rows) is left."""
    generator = torch.Generator().manual_seed(0)
    n = 600
    x = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    x[:3, 0] = 6.0 + torch.arange(3, dtype=torch.float64)
    below = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    current = torch.ones(n, 1, dtype=torch.float64)
    desired = 0.01 * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    desired[:3, 0] += 5.0
    rows = LayerRows(below, current, -desired)
    far_hinge = torch.tensor([[1.0, 0.0, -5.0]], dtype=torch.float64)  # active on the 3 rows
    rule = pool.MIN_SUPPORT, pool.MIN_SUPPORT_ROWS

    def proposal(min_support, min_rows):
        monkeypatch.setattr(pool, "MIN_SUPPORT", min_support)
        monkeypatch.setattr(pool, "MIN_SUPPORT_ROWS", min_rows)
        return pool_proposal(
            rows,
            torch.relu,
            far_hinge,
            1,
            torch.Generator().manual_seed(1),
            random_directions=0,
            offsets=0,
            permutations=0,
        )  # the pool: the far hinge and its mirror

    def active_rows(chosen):
        return int((rows.below @ chosen.alpha.T > 0).sum())

    unguarded = proposal(0.0, 0)
    assert unguarded.candidates == 2 and active_rows(unguarded) == 3
    guarded = proposal(*rule)
    assert guarded.candidates == 1 and active_rows(guarded) == n - 3


def test_the_permutation_null_grows_on_pure_noise_at_most_five_percent_of_the_time():
    generator = torch.Generator().manual_seed(11)
    grown, trials = 0, 200
    for trial in range(trials):
        rows = _rows(n=200, seed=100 + trial)
        noise = torch.randn(200, 2, generator=generator, dtype=torch.float64)
        basis = span_basis(rows.current)
        residual = orthogonal_part(noise, basis)
        alpha = torch.randn(60, 4, generator=generator, dtype=torch.float64)
        projected = orthogonal_part(torch.relu(rows.below @ alpha.T), basis)
        bar = permutation_bar(projected, residual, basis, generator)
        grown += bool(pool_gains(projected, residual).max() > bar)
    # Nominal 1/20; 200 trials: a rate above 9 % would be 2.6 sd beyond it.
    assert grown / trials <= 0.09
    # The same bar does not hide a real signal.
    rows = _rows(n=200, seed=7)
    proposal = pool_proposal(rows, torch.relu, torch.zeros(0, 4), 4, generator)
    assert proposal.gains and proposal.gains[0] > proposal.bar


def _two_dimensional(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    y = ((x[:, 0] ** 2 + x[:, 1] ** 2) < 0.5).astype(np.int64)  # a disc: not linear in x
    return x, y


def _grow(x, y, growth, epochs=60, early_stopping=False):
    loss = default_loss("classification", 1)
    model = GrowingMLP(x.shape[1], [1], 1, generator=torch.Generator().manual_seed(0))
    events = []
    engine = GrowthEngine(GrowthConfig(**growth), loss)
    Trainer(
        TrainConfig(epochs=epochs, early_stopping=early_stopping),
        loss,
        "classification",
        observers=[events.append],
        growth=engine,
    ).run(model, x[:400], y[:400], x[400:], y[400:])
    return model, [e for e in events if isinstance(e, GrowthStep)]


def test_a_nonlinear_two_dimensional_target_grows_past_one_plus_twice_the_inputs():
    x, y = _two_dimensional()
    model, steps = _grow(x, y, {})
    assert model.hidden_widths[0] > 1 + 2 * 2
    with torch.no_grad():
        predicted = (model(torch.as_tensor(x[400:]))[:, 0] > 0).long().numpy()
    assert (predicted == y[400:]).mean() > 0.9


def test_a_slowly_falling_loss_still_triggers_growth():
    engine = GrowthEngine(GrowthConfig(), default_loss("classification", 1))
    engine.steps_ = 1  # past the first step, which comes as soon as the start has trained
    # A loss that keeps falling at the same pace never slows down: growth comes anyway, at
    # most MAX_INTERVAL epochs after the last step.
    asked = [engine.wants_step(epoch, 1.0 - 0.002 * epoch, 0) for epoch in range(1, 12)]
    assert asked.index(True) + 1 == 1 + MAX_INTERVAL
    # A loss whose fall slows to under half its largest grows at once.
    engine = GrowthEngine(GrowthConfig(), default_loss("classification", 1))
    engine.steps_ = 1
    losses = [1.0, 0.8, 0.7, 0.68]
    asked = [engine.wants_step(epoch, loss, 0) for epoch, loss in enumerate(losses, 1)]
    assert asked == [False, False, False, True]


def test_every_stop_event_carries_its_evidence():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=600)  # labels unrelated to x: nothing to grow for
    _, steps = _grow(x, y, {"max_failures": 2}, epochs=40)
    quiet = [step for step in steps if not step.added]
    assert quiet, "pure noise should meet the permutation null"
    for step in quiet:
        assert "permutation null" in step.reason or "validation" in step.reason
        assert step.lambdas and step.noise_floor > 0  # the best score, and the bar it missed
        if "permutation null" in step.reason:
            assert max(step.lambdas) <= step.noise_floor
    assert steps[-1].finished and "validation stopped improving" in steps[-1].reason


def test_pool_rows_match_the_statistics_pass():
    from growml.growth.statistics import collect_statistics

    model = GrowingMLP(3, [4, 2], 2, generator=torch.Generator().manual_seed(0))
    loss = default_loss("classification", 2)
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target(np.arange(100) % 2)
    for rows, stats in zip(
        collect_rows(model, loss, x, target),
        collect_statistics(model, loss, x, target),
        strict=True,
    ):
        from_rows = statistics_of(rows)
        for name in ("S1", "M", "S2", "M2", "P"):
            assert torch.allclose(getattr(from_rows, name), getattr(stats, name), atol=1e-10)
        assert from_rows.gradient_norm == pytest.approx(
            stats.gradient_norm, rel=1e-6
        )  # float32 sums


def test_parity_without_first_order_signal_still_grows_and_learns():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(800, 4))
    x = (2.0 * bits - 1 + rng.normal(scale=0.05, size=bits.shape)).astype(np.float32)
    y = bits.sum(1) % 2
    model, steps = _grow(x, y, {}, epochs=120, early_stopping=True)
    assert model.hidden_widths[0] > 4
    assert any(step.reason.startswith("added random neurons") for step in steps) or any(
        step.added for step in steps
    )
    with torch.no_grad():
        predicted = (model(torch.as_tensor(x[400:]))[:, 0] > 0).long().numpy()
    assert (predicted == y[400:]).mean() > 0.9
