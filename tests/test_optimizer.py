"""Optimizer state survives shape changes: kept moments, zero moments for new entries."""

import pytest
import torch

from growml.config import TrainConfig
from growml.losses import MeanSquaredError
from growml.nn import GrowingMLP
from growml.train import make_optimizer
from growml.train.optimizer import FusedStep

OPTIMIZERS = ["adam", "adamw", "sgd"]


def _trained(optimizer_name, steps=3):
    generator = torch.Generator().manual_seed(0)
    model = GrowingMLP(4, [3, 2], 2, "tanh", generator=generator).double()
    config = TrainConfig(optimizer=optimizer_name, lr=0.05, weight_decay=0.01)
    optimizer = make_optimizer(model.parameters(), config)
    for step in range(steps):
        _step(model, optimizer, seed=step)
    return model, optimizer


def _step(model, optimizer, seed):
    generator = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(16, 4, dtype=torch.float64, generator=generator)
    target = torch.randn(16, 2, dtype=torch.float64, generator=generator)
    with torch.no_grad():
        cache = model.forward_cached(x)
        _, grad = MeanSquaredError().value_and_grad(cache.output, target)
        model.backward(cache, grad)
        optimizer.step()


def _old_part(tensor, reference):
    return tensor[tuple(slice(0, n) for n in reference.shape)]


@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
def test_next_step_on_old_parameters_is_unchanged_by_added_neurons(optimizer_name):
    plain, plain_optimizer = _trained(optimizer_name)
    grown, grown_optimizer = _trained(optimizer_name)
    new_rows = torch.randn(2, 3, dtype=torch.float64)
    grown.add_neurons(1, new_rows, torch.randn(2).double(), torch.zeros(2, 2), grown_optimizer)
    assert grown.hidden_widths == [3, 4]

    for grown_param, plain_param in zip(grown.parameters(), plain.parameters(), strict=True):
        grown_state, plain_state = (
            grown_optimizer.state[grown_param],
            plain_optimizer.state[plain_param],
        )
        for key, value in plain_state.items():
            carried = grown_state[key]
            assert carried.shape == (grown_param.shape if value.dim() else value.shape)
            torch.testing.assert_close(_old_part(carried, value), value, rtol=0, atol=0)
            if value.dim():
                extra = carried.clone()
                extra[tuple(slice(0, n) for n in value.shape)] = 0
                assert not extra.any(), f"new entries of {key} must start at zero"

    _step(plain, plain_optimizer, seed=7)
    _step(grown, grown_optimizer, seed=7)
    for grown_param, plain_param in zip(grown.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(
            _old_part(grown_param.detach(), plain_param),
            plain_param.detach(),
            rtol=1e-12,
            atol=1e-14,
        )


@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
def test_removing_neurons_slices_the_moments(optimizer_name):
    model, optimizer = _trained(optimizer_name)
    before = {
        name: {k: v.clone() for k, v in optimizer.state[p].items()}
        for name, p in model.named_parameters()
    }
    model.remove_neurons(0, [1], optimizer)
    keep = torch.tensor([0, 2])
    params = dict(model.named_parameters())
    moment = "momentum_buffer" if optimizer_name == "sgd" else "exp_avg"
    torch.testing.assert_close(
        optimizer.state[params["weights.0"]][moment], before["weights.0"][moment][keep]
    )
    torch.testing.assert_close(
        optimizer.state[params["weights.1"]][moment], before["weights.1"][moment][:, keep]
    )
    _step(model, optimizer, seed=9)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fused_optimizers_are_used():
    model = GrowingMLP(3, [2], 1)
    for name in OPTIMIZERS:
        optimizer = make_optimizer(model.parameters(), TrainConfig(optimizer=name))
        assert optimizer.defaults["fused"] is True


@pytest.mark.parametrize(
    "settings",
    [
        {"optimizer": "adam", "weight_decay": 0.0},
        {"optimizer": "adam", "weight_decay": 0.01},
        {"optimizer": "adamw", "weight_decay": 0.01},
        {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.01},
        {"optimizer": "sgd", "momentum": 0.0},
    ],
)
def test_the_fused_step_moves_parameters_exactly_as_the_optimizer_step(settings):
    """The loop's one-kernel step against ``optimizer.step()``, across a change of shape (new
    state tensors) and of learning rate: the same parameters and state to the last bit."""
    config = TrainConfig(lr=0.05, **settings)
    models = [GrowingMLP(4, [3, 2], 2, generator=torch.Generator().manual_seed(0)) for _ in "ab"]
    optimizers = [make_optimizer(model.parameters(), config) for model in models]
    fused = FusedStep(optimizers[1])
    for seed in range(8):
        if seed == 4:  # growth between epochs: new moments, then a new gather
            for model, optimizer in zip(models, optimizers, strict=True):
                incoming = torch.full((2, 4), 0.3)
                model.add_neurons(0, incoming, torch.zeros(2), torch.full((2, 2), 0.2), optimizer)
                optimizer.param_groups[0]["lr"] = 0.02
            fused.prepare()
        for index, model in enumerate(models):
            generator = torch.Generator().manual_seed(100 + seed)
            x, target = (
                torch.randn(16, 4, generator=generator),
                torch.randn(16, 2, generator=generator),
            )
            with torch.no_grad():
                cache = model.forward_cached(x)
                model.backward(cache, MeanSquaredError().value_and_grad(cache.output, target)[1])
            optimizers[0].step() if index == 0 else fused()
    assert fused._call is not None  # the fast path ran
    for plain, fast in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(plain, fast)
    for plain, fast in zip(optimizers[0].state.values(), optimizers[1].state.values(), strict=True):
        for key in plain:
            assert torch.equal(plain[key], fast[key]), key


def test_the_fused_step_falls_back_where_the_kernel_does_not_apply():
    """amsgrad is not on the fast path: the step is the optimizer's own, to the last bit."""
    models = [GrowingMLP(4, [3], 2, generator=torch.Generator().manual_seed(0)) for _ in "ab"]
    optimizers = [
        torch.optim.Adam(model.parameters(), lr=0.1, amsgrad=True, fused=True) for model in models
    ]
    fused = FusedStep(optimizers[1])
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        for index, model in enumerate(models):
            with torch.no_grad():
                cache = model.forward_cached(x)
                model.backward(cache, torch.ones(8, 2))
            optimizers[0].step() if index == 0 else fused()
        fused.prepare()
        assert fused._call is None
    for plain, fast in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(plain, fast)
    assert any(
        not torch.equal(p, q)
        for p, q in zip(
            models[0].parameters(),
            GrowingMLP(4, [3], 2, generator=torch.Generator().manual_seed(0)).parameters(),
            strict=True,
        )
    )


def test_dropping_an_inserted_layer_drops_its_optimizer_state():
    """Best weights from before a layer was inserted take it out again: the optimizer forgets
    its parameters' state too, so that its state can still be saved (a checkpoint)."""
    model = GrowingMLP(4, [3], 2, generator=torch.Generator().manual_seed(0))
    optimizer = make_optimizer(model.parameters(), TrainConfig())
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    model.insert_layer(1, optimizer)
    with torch.no_grad():
        cache = model.forward_cached(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)))
        model.backward(cache, torch.ones(8, 2))
    optimizer.step()
    assert len(optimizer.state) == 6
    model.match_layers(before, optimizer)
    assert set(optimizer.state) == set(model.parameters())
    assert len(optimizer.state_dict()["state"]) == 4
