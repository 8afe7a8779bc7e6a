"""The growth engine's decisions, epoch by epoch: when to grow, when a step paid off, when
training has made no headway, and what a step that adds nothing records."""

import time
from types import SimpleNamespace

import pytest
import torch

from growml.config import GrowthConfig
from growml.growth import engine as engine_module
from growml.growth import methods as methods_module
from growml.growth.engine import GrowthEngine
from growml.growth.methods import PoolMethod, make_method
from growml.losses import CrossEntropy
from growml.nn import GrowingMLP


def _engine(**settings):
    return GrowthEngine(GrowthConfig(**settings), CrossEntropy(2))


def _decisions(engine, losses, without_improvement=0):
    return [
        engine.wants_step(epoch, loss, without_improvement) for epoch, loss in enumerate(losses)
    ]


def _after_a_step(engine, added=True):
    """What `step` leaves behind: the losses since the step start from the latest one, and
    the step is counted (a quiet one when it added nothing)."""
    engine._since_step = engine._since_step[-1:]
    engine._grew([SimpleNamespace(added=3 if added else 0)])


def test_the_first_step_comes_once_the_tiny_start_has_trained_min_interval_epochs():
    engine = _engine()
    # MIN_INTERVAL = 2: two epochs are not enough, the third one grows.
    assert _decisions(engine, [1.0, 0.9, 0.8]) == [False, False, True]


def test_later_steps_wait_for_the_loss_to_slow_down_to_half_its_largest_fall():
    engine = _engine()
    _decisions(engine, [1.0, 0.9, 0.8])
    _after_a_step(engine)
    # Falls of 0.1, 0.1, 0.06 (more than half the largest), then 0.04 (less).
    assert _decisions(engine, [0.7, 0.6, 0.54, 0.5]) == [False, False, False, True]


def test_a_loss_that_keeps_falling_fast_still_grows_after_max_interval_epochs():
    engine = _engine()
    _decisions(engine, [1.0, 0.9, 0.8])
    _after_a_step(engine)
    decisions = _decisions(engine, [0.8 - 0.05 * k for k in range(1, 12)])
    assert decisions.index(True) == engine_module.MAX_INTERVAL - 1  # the 8th fall


def test_after_steps_that_added_nothing_the_interval_doubles():
    engine = _engine()
    _decisions(engine, [1.0, 0.9, 0.8])
    _after_a_step(engine, added=False)
    _after_a_step(engine, added=False)  # two quiet steps: at least 2 · 2² epochs
    # A loss that stops falling at once would grow after MIN_INTERVAL epochs otherwise. The
    # losses counted include the one the step was taken at.
    decisions = _decisions(engine, [0.79, 0.789] + [0.789] * 8)
    assert decisions.index(True) == 2 * 2**2 - 1


def test_the_stall_schedule_grows_after_patience_epochs_without_improvement():
    engine = _engine(schedule="stall", patience=3)
    assert not engine.wants_step(0, 1.0, 2)
    assert engine.wants_step(1, 1.0, 3)


def test_the_stall_schedule_compares_the_loss_with_patience_epochs_before():
    engine = _engine(schedule="stall", patience=3, min_improvement=0.01)
    # Epoch 4 (fifth loss) compares 0.5 with the loss three epochs before it (1.0): a fall.
    # Epoch 5 compares 0.5 with 0.5: a stall.
    assert _decisions(engine, [1.0, 1.0, 0.5, 0.5, 0.5, 0.5]) == [False] * 5 + [True]
    # The latest loss is the one compared: a fall at the last epoch is not a stall.
    fresh = _engine(schedule="stall", patience=3, min_improvement=0.01)
    assert _decisions(fresh, [1.0, 1.0, 0.5, 0.5, 0.5, 0.2]) == [False] * 6


def test_growing_every_k_epochs_ignores_the_schedule():
    engine = _engine(every=3)
    assert _decisions(engine, [1.0] * 7) == [True, False, False, True, False, False, True]


def _paid_off(engine, first_loss, before, after, **metrics):
    engine.wants_step(0, first_loss, 0)
    engine.observe({"loss": before, **{k: v[0] for k, v in metrics.items()}})
    engine._baseline = dict(engine._best)
    engine.observe({"loss": after, **{k: v[1] for k, v in metrics.items()}})
    return engine._paid_off()


@pytest.mark.parametrize(
    ("first_loss", "before", "after", "paid"),
    [
        (1.0, 0.5, 0.4899, True),  # margin max(1 % of 0.5, 1 % of 1.0) = 0.01
        (1.0, 0.5, 0.4901, False),
        (0.1, 0.5, 0.4949, True),  # margin 1 % of 0.5 = 0.005
        (0.1, 0.5, 0.4951, False),
    ],
)
def test_a_step_pays_off_when_the_validation_loss_falls_by_the_margin(
    first_loss, before, after, paid
):
    assert _paid_off(_engine(), first_loss, before, after) is paid


def test_a_step_pays_off_when_accuracy_rises_at_all_or_r2_by_a_thousandth():
    assert _paid_off(_engine(), 1.0, 0.5, 0.5, accuracy=(0.9, 0.901))
    assert not _paid_off(_engine(), 1.0, 0.5, 0.5, accuracy=(0.9, 0.9))
    assert _paid_off(_engine(), 1.0, 0.5, 0.5, r2=(0.5, 0.5011))
    assert not _paid_off(_engine(), 1.0, 0.5, 0.5, r2=(0.5, 0.5009))


def _network():
    loss = CrossEntropy(2)
    model = GrowingMLP(3, [2], 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] * x[:, 1] > 0).long().numpy())
    return model, torch.optim.Adam(model.parameters()), x, target


def test_a_step_that_pays_off_starts_the_count_of_failed_steps_again(monkeypatch):
    engine = _engine(max_failures=2, noise_factor=1e-6)
    model, optimizer, x, target = _network()
    verdicts = iter([False, True, False])  # judged at steps 1, 2, 3 (step 0 has no baseline)
    monkeypatch.setattr(engine, "_paid_off", lambda: next(verdicts))
    for epoch in range(4):
        engine.step(model, optimizer, x, target, epoch)
        assert not engine.finished_, epoch  # never two failed steps in a row
    assert engine._failures == 1


def test_the_stop_says_what_validation_reached():
    model, optimizer, x, target = _network()
    engine = _engine(max_failures=1, noise_factor=1e-6)
    engine.step(model, optimizer, x, target, 0)
    (event,) = engine.step(model, optimizer, x, target, 1)
    assert event.finished and event.reason.endswith("no validation yet)")
    engine = _engine(max_failures=1, noise_factor=1e-6)
    engine.observe({"loss": 0.5, "accuracy": 0.75})
    engine.step(model, optimizer, x, target, 0)
    (event,) = engine.step(model, optimizer, x, target, 1)
    assert event.reason.endswith("best validation while growing: loss 0.5, accuracy 0.75)")


def test_a_step_within_a_spent_budget_records_no_evidence():
    model, optimizer, x, target = _network()
    engine = _engine(max_params=model.n_parameters())
    started = time.perf_counter()
    (event,) = engine.step(model, optimizer, x, target, 0)
    assert 0 <= event.seconds <= time.perf_counter() - started
    assert event.reason == "parameter budget reached" and event.finished
    assert (event.layer, event.added, event.lambdas, event.noise_floor) == (None, 0, [], 0.0)
    assert event.predicted_first_order == 0.0 and event.gamma == 0.0


def _underfitting(first, latest, validation):
    engine = _engine()
    engine.wants_step(0, first, 0)
    engine.wants_step(1, latest, 0)
    engine.observe({"loss": validation})
    return engine._underfitting()


@pytest.mark.parametrize(
    ("first", "latest", "validation", "stuck"),
    [
        (1.0, 0.95, 1.0, True),  # the training loss barely fell, validation is no lower
        (1.0, 0.95, 0.95 * 1.1, True),  # validation exactly NO_HEADWAY above: still stuck
        (1.0, 0.95, 1.1, False),  # validation far above training: it is fitting, not stuck
        (1.0, 0.5, 0.5, False),  # the training loss halved
    ],
)
def test_no_headway_means_the_training_loss_has_barely_moved_and_does_not_overfit(
    first, latest, validation, stuck
):
    assert _underfitting(first, latest, validation) is stuck


def test_before_any_validation_there_is_no_verdict_of_no_headway():
    engine = _engine()
    engine.wants_step(0, 1.0, 0)
    assert engine._underfitting() is False


def test_a_line_search_without_a_step_adds_nothing(monkeypatch):
    model, optimizer, x, target = _network()
    engine = _engine(noise_factor=1e-6)
    monkeypatch.setattr(methods_module, "armijo", lambda loss_at, base, *_, **__: (0.0, base))
    events = engine.step(model, optimizer, x, target, 0)
    assert [e.added for e in events] == [0] * len(events)
    assert model.hidden_widths == [2]
    assert all(e.bottleneck_after == e.bottleneck_before for e in events)
    assert any(e.reason == "the line search found no step that lowers the loss" for e in events)


def test_each_kind_of_step_says_how_its_neurons_came(monkeypatch):
    model, optimizer, x, target = _network()
    started = time.perf_counter()
    (event,) = _engine(noise_factor=1e-6).step(model, optimizer, x, target, 0)
    assert event.added and event.reason == "added"
    assert 0 < event.seconds <= time.perf_counter() - started
    # Ψ is measured again after neurons are added, on the grown network.
    assert event.bottleneck_after != event.bottleneck_before
    (event,) = _engine(method="random").step(model, optimizer, x, target, 0)
    assert event.added and event.reason == "added"
    assert event.lambdas == [] and event.noise_floor == 0.0  # random neurons have no scores
    assert event.predicted_first_order == 0.0
    stuck = _engine()
    monkeypatch.setattr(stuck, "_choose", lambda *_: [])  # nothing beats the null ...
    monkeypatch.setattr(stuck, "_underfitting", lambda: True)  # ... and training is stuck
    (event,) = stuck.step(model, optimizer, x, target, 0)
    assert event.added and event.reason.startswith(
        "added random neurons: no candidate beats the permutation null"
    )
    assert event.predicted_first_order == 0.0  # random neurons predict nothing


def test_no_headway_gives_every_layer_random_neurons_and_revives_a_dead_chain(monkeypatch):
    """A chain of one-channel blocks with a dead channel passes nothing on: no layer has a
    gradient, nothing beats the null, and training cannot move. Random channels in every
    layer, bottom up, give the network a path again."""
    from growml.nn.conv import GrowingConvNet

    loss = CrossEntropy(2)
    generator = torch.Generator().manual_seed(0)
    model = GrowingConvNet((1, 12), [1, 1, 1], 2, 2, 3, generator=generator)
    with torch.no_grad():
        model.biases[1].fill_(-100.0)  # block 1's one channel is dead on every input
    x = torch.randn(64, 12, generator=generator)
    target = loss.prepare_target((x[:, 3] > 0).long().numpy())
    optimizer = torch.optim.Adam(model.parameters())
    engine = _engine()
    monkeypatch.setattr(engine, "_choose", lambda *_: [])  # nothing beats the null ...
    monkeypatch.setattr(engine, "_underfitting", lambda: True)  # ... and training is stuck
    events = engine.step(model, optimizer, x, target, 0)
    assert [event.layer for event in events] == [0, 1, 2]
    assert all(event.reason.startswith("added random neurons") for event in events)
    assert all(width > 1 for width in model.hidden_widths)

    def train_step():
        with torch.no_grad():
            cache = model.forward_cached(x)
            _, output_grad = loss.value_and_grad(cache.output, target)
            model.backward(cache, output_grad)

    train_step()
    # Every new unit's outgoing weights receive a gradient (each reads a live unit below) ...
    for layer, width in enumerate([1, 1, 1]):
        assert float(model.weights[layer + 1].grad[:, width:].abs().sum()) > 0
    # ... and once they have moved, the gradient reaches the bottom block.
    for _ in range(3):
        optimizer.step()
        train_step()
    assert float(model.weights[0].grad.abs().sum()) > 0


def test_a_budget_with_room_for_one_neuron_grows_one_unpaired_neuron():
    model, optimizer, x, target = _network()
    one_neuron = 3 + 1 + 2  # its weights from 3 inputs, its bias, its weights to 2 outputs
    engine = _engine(noise_factor=1e-6, max_params=model.n_parameters() + one_neuron)
    (event,) = engine.step(model, optimizer, x, target, 0)
    assert event.added == 1 and model.n_parameters() == engine.config.max_params


def test_a_layer_whose_linear_algebra_fails_is_skipped_with_the_error(monkeypatch):
    model, optimizer, x, target = _network()

    def failing(*_, **__):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(PoolMethod, "propose", failing)
    engine = _engine()
    (event,) = engine.step(model, optimizer, x, target, 0)
    assert engine.skipped_ == {0: "linear algebra failed (no convergence)"}
    assert event.added == 0 and event.skipped == engine.skipped_


def _two_layers(activation="relu"):
    loss = CrossEntropy(2)
    model = GrowingMLP(3, [2, 2], 2, activation, generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] * x[:, 1] > 0).long().numpy())
    return model, torch.optim.Adam(model.parameters()), x, target


def test_random_growth_takes_the_layers_in_turn():
    model, optimizer, x, target = _two_layers()
    engine = _engine(method="random")
    layers = [engine.step(model, optimizer, x, target, e)[0].layer for e in range(3)]
    assert layers == [0, 1, 0]


@pytest.mark.parametrize(
    ("settings", "largest"),
    [({"max_step": 1e-3}, 1e-3), ({"method": "tiny", "max_amplitude": 0.03}, 0.03)],
)
def test_the_step_caps_hold(settings, largest):
    model, optimizer, x, target = _network()
    engine = _engine(noise_factor=1e-6, **settings)
    events = engine.step(model, optimizer, x, target, 0)
    assert any(e.added for e in events)
    # γ is the pool's step, and TINY's amplitude √t: both held at their caps.
    assert all(e.gamma == pytest.approx(largest) for e in events if e.added)


def test_only_tinys_relu_neurons_come_in_pairs():
    relu = GrowingMLP(3, [2], 2).growable_layers()[0]
    tanh = GrowingMLP(3, [2], 2, "tanh").growable_layers()[0]

    def paired(config, layer):
        return make_method(config).paired(layer)

    assert not paired(GrowthConfig(method="pool", pairing="always"), relu)
    assert paired(GrowthConfig(method="tiny"), relu)
    assert not paired(GrowthConfig(method="tiny"), tanh)
    assert paired(GrowthConfig(method="tiny", pairing="always"), tanh)
    assert not paired(GrowthConfig(method="tiny", pairing="never"), relu)


def test_a_step_that_adds_nothing_says_why(monkeypatch):
    model, optimizer, x, target = _network()
    engine = _engine()
    monkeypatch.setattr(engine, "_choose", lambda *_: [])  # nothing beats the null
    monkeypatch.setattr(engine, "_underfitting", lambda: False)  # and training moves on
    (event,) = engine.step(model, optimizer, x, target, 0)
    assert event.added == 0 and event.reason == "no candidate beats the permutation null"
    tiny = _engine(method="tiny")
    monkeypatch.setattr(tiny, "_choose", lambda *_: [])
    monkeypatch.setattr(tiny, "_underfitting", lambda: False)
    (event,) = tiny.step(model, optimizer, x, target, 0)
    assert event.reason == "no candidate beats the noise floor"
    broken = _engine()
    monkeypatch.setattr(engine_module, "_unusable", lambda stats: "the gradients are not finite")
    (event,) = broken.step(model, optimizer, x, target, 0)
    assert event.reason == "no layer's measurements can be used"


def test_growing_every_layer_stops_at_the_budget_without_failing():
    model, optimizer, x, target = _two_layers("tanh")
    first_layer_neuron = 3 + 1 + 2  # 3 inputs and a bias in, 2 neurons of the next layer out
    budget = model.n_parameters() + first_layer_neuron  # room for one neuron in either layer
    engine = _engine(method="tiny", where="all", noise_factor=1e-6, max_params=budget)
    events = engine.step(model, optimizer, x, target, 0)
    assert [(e.layer, e.added) for e in events] == [(0, 1)]
    assert model.hidden_widths == [3, 2]


def test_the_engine_resumes_from_its_state_as_if_never_stopped():
    from growml.checkpoint import Checkpoint

    model, optimizer, x, target = _network()
    engine = _engine(noise_factor=1e-6)
    _decisions(engine, [1.0, 0.9, 0.8])
    engine.observe({"loss": 0.7, "accuracy": 0.6})
    engine.step(model, optimizer, x, target, 3)
    checkpoint = Checkpoint()
    state = engine.state_dict(checkpoint)
    resumed = _engine(noise_factor=1e-6)
    resumed.load_state_dict(checkpoint, state)
    for name in GrowthEngine._STATE + ("skipped_",):
        assert getattr(resumed, name) == getattr(engine, name), name
    # The same random draws from here on.
    assert torch.equal(
        torch.rand(3, generator=resumed._generator), torch.rand(3, generator=engine._generator)
    )


def test_after_a_real_step_the_next_one_waits_min_interval_epochs():
    model, optimizer, x, target = _network()
    engine = _engine(noise_factor=1e-6)
    assert _decisions(engine, [1.0, 0.9, 0.8]) == [False, False, True]
    engine.step(model, optimizer, x, target, 2)
    # 0.79 then 0.789: a slow-down, but only one and two epochs after the step.
    assert [engine.wants_step(3, 0.79, 0), engine.wants_step(4, 0.789, 0)] == [False, True]
    again = _engine(noise_factor=1e-6)
    _decisions(again, [1.0, 0.9, 0.8])
    again.step(*_network()[:2], x, target, 2)
    assert again.wants_step(3, 0.9, 0) is False  # a rise right after a step is no signal


def test_a_layer_without_room_does_not_keep_the_next_one_from_growing():
    model, optimizer, x, target = _two_layers("tanh")
    second_layer_neuron = 2 + 1 + 2  # cheaper than one of the first layer (3 + 1 + 2)
    budget = model.n_parameters() + second_layer_neuron
    engine = _engine(method="tiny", noise_factor=1e-6, max_params=budget)
    (event,) = engine.step(model, optimizer, x, target, 0)
    assert (event.layer, event.added) == (1, 1)


def test_random_growth_takes_three_layers_in_turn():
    loss = CrossEntropy(2)
    model = GrowingMLP(3, [2, 2, 2], 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] > 0).long().numpy())
    optimizer = torch.optim.Adam(model.parameters())
    engine = _engine(method="random")
    layers = [engine.step(model, optimizer, x, target, e)[0].layer for e in range(4)]
    assert layers == [0, 1, 2, 0]


def test_a_first_score_after_a_step_taken_before_any_validation_pays_off():
    engine = _engine()
    engine.wants_step(0, 1.0, 0)
    engine._baseline = {}  # the step came before any validation
    engine.observe({"loss": 0.5, "accuracy": 0.8})
    assert engine._paid_off()


def test_growing_every_layer_goes_on_past_a_layer_that_drops_out(monkeypatch):
    loss = CrossEntropy(2)
    model = GrowingMLP(3, [2, 2, 2], 2, "tanh", generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] * x[:, 1] > 0).long().numpy())
    engine = _engine(method="tiny", where="all", noise_factor=1e-6)
    measure = engine._options

    def without_the_middle_layer(model, x, target, only=None):
        return {} if only == 1 else measure(model, x, target, only)

    monkeypatch.setattr(engine, "_options", without_the_middle_layer)
    events = engine.step(model, torch.optim.Adam(model.parameters()), x, target, 0)
    assert [e.layer for e in events] == [0, 2]


def test_a_budget_for_one_relu_pair_grows_one_pair():
    model, optimizer, x, target = _network()
    pair = 2 * (3 + 1 + 2)
    engine = _engine(method="tiny", noise_factor=1e-6, max_params=model.n_parameters() + pair)
    (event,) = engine.step(model, optimizer, x, target, 0)
    assert event.added == 2 and model.n_parameters() == engine.config.max_params


def test_a_budget_for_less_than_a_relu_pair_is_spent():
    model, optimizer, x, target = _network()
    one_neuron = 3 + 1 + 2
    engine = _engine(method="tiny", noise_factor=1e-6, max_params=model.n_parameters() + one_neuron)
    (event,) = engine.step(model, optimizer, x, target, 0)
    assert event.reason == "parameter budget reached" and event.added == 0
