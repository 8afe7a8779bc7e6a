"""The training loop: loss goes down, early stopping keeps the best weights, events, threads."""

import math

import numpy as np
import pytest
import torch

from growml.config import DataConfig, TrainConfig
from growml.data import load_table, prepare
from growml.events import EpochEnd, TrainEnd, TrainStart
from growml.losses import default_loss
from growml.nn import GrowingMLP
from growml.train import Trainer, choose_threads
from growml.train import trainer as trainer_module
from growml.train.hooks import Hook


@pytest.fixture(scope="module")
def moons():
    return prepare(load_table("moons"), DataConfig(), seed=0)


def _train(data, **settings):
    events = []
    config = TrainConfig(**settings)
    model = GrowingMLP(data.x_train.shape[1], [16], 1, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(
        config,
        default_loss("classification", 1),
        "classification",
        observers=[events.append],
        seed=0,
    )
    result = trainer.run(model, data.x_train, data.y_train, data.x_val, data.y_val)
    return model, trainer, result, events


def test_training_loss_goes_down_and_accuracy_beats_chance(moons):
    _, _, result, events = _train(moons, epochs=40, lr=0.01, early_stopping=False)
    losses = [e.train_loss for e in events if isinstance(e, EpochEnd)]
    assert len(losses) == 40
    assert losses[-1] < 0.6 * losses[0]
    assert result.best_validation["accuracy"] > 0.85


def test_early_stopping_restores_the_best_weights(moons):
    model, trainer, result, events = _train(moons, epochs=300, lr=0.05, patience=5)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert result.stopped_early and result.epochs < 300
    assert result.epochs - result.best_epoch == 5
    best = epochs[result.best_epoch - 1]
    assert best.validation["loss"] == min(e.validation["loss"] for e in epochs)
    x_val = torch.as_tensor(moons.x_val)
    target = trainer.loss.prepare_target(moons.y_val)
    with torch.no_grad():
        restored_loss = float(trainer.loss(model(x_val), target))
    assert restored_loss == pytest.approx(best.validation["loss"], rel=1e-6)
    assert isinstance(events[0], TrainStart) and isinstance(events[-1], TrainEnd)
    assert events[-1].best_epoch == result.best_epoch


def test_monitor_accuracy_keeps_the_most_accurate_epoch(moons):
    _, _, result, events = _train(moons, epochs=60, lr=0.05, patience=10, monitor="accuracy")
    accuracies = [e.validation["accuracy"] for e in events if isinstance(e, EpochEnd)]
    assert result.best_validation["accuracy"] == max(accuracies)
    assert accuracies.index(max(accuracies)) + 1 == result.best_epoch


def test_same_seed_gives_identical_weights(moons):
    first, *_ = _train(moons, epochs=5)
    second, *_ = _train(moons, epochs=5)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_trainer_restores_the_thread_count(moons):
    before = torch.get_num_threads()
    _train(moons, epochs=1, threads=1)
    assert torch.get_num_threads() == before


def test_small_layers_train_on_one_thread():
    small = GrowingMLP(64, [32], 10)
    large = GrowingMLP(784, [2048], 10)
    assert choose_threads(0, small, 200) == 1
    assert choose_threads(0, large, 256) == trainer_module._ALL_THREADS
    assert choose_threads(3, small, 200) == 3


def test_regression_validation_reports_r2():
    data = prepare(load_table("friedman"), DataConfig(), seed=0)
    model = GrowingMLP(data.x_train.shape[1], [16], 1, generator=torch.Generator().manual_seed(0))
    events = []
    Trainer(
        TrainConfig(epochs=20, lr=0.01),
        default_loss("regression", 1),
        "regression",
        observers=[events.append],
    ).run(model, data.x_train, data.y_train, data.x_val, data.y_val)
    last = [e for e in events if isinstance(e, EpochEnd)][-1]
    assert set(last.validation) == {"loss", "r2"}
    assert last.validation["r2"] > 0.5
    assert np.isfinite(last.train_loss)


def test_without_early_stopping_the_last_epoch_is_kept(moons):
    model, trainer, result, events = _train(moons, epochs=15, lr=0.05, early_stopping=False)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert result.epochs == result.best_epoch == 15 and not result.stopped_early
    assert result.best_validation == epochs[-1].validation


def test_one_fresh_permutation_per_epoch(moons, monkeypatch):
    orders = []
    original = torch.randperm

    def recording_randperm(*args, **kwargs):
        orders.append(original(*args, **kwargs))
        return orders[-1]

    monkeypatch.setattr(torch, "randperm", recording_randperm)
    _train(moons, epochs=4, early_stopping=False)
    assert len(orders) == 4
    assert all(sorted(order.tolist()) == list(range(len(moons.x_train))) for order in orders)
    assert not torch.equal(orders[0], orders[1])


def test_monitor_macro_f1_keeps_the_best_macro_f1_epoch(moons):
    _, _, result, events = _train(moons, epochs=40, lr=0.05, patience=8, monitor="macro_f1")
    scores = [e.validation["macro_f1"] for e in events if isinstance(e, EpochEnd)]
    assert result.best_validation["macro_f1"] == max(scores)


def test_monitor_r2_keeps_the_best_r2_epoch():
    data = prepare(load_table("friedman"), DataConfig(), seed=0)
    model = GrowingMLP(data.x_train.shape[1], [16], 1, generator=torch.Generator().manual_seed(0))
    events = []
    result = Trainer(
        TrainConfig(epochs=40, lr=0.02, patience=5, monitor="r2"),
        default_loss("regression", 1),
        "regression",
        observers=[events.append],
    ).run(model, data.x_train, data.y_train, data.x_val, data.y_val)
    scores = [e.validation["r2"] for e in events if isinstance(e, EpochEnd)]
    assert result.best_validation["r2"] == max(scores)


def test_divergence_is_a_training_error(moons):
    from growml.errors import TrainingError

    with pytest.raises(TrainingError, match="diverged at epoch 1.*lower train.lr"):
        _train(moons, epochs=5, lr=1e30, optimizer="sgd")


class _LearningRates(Hook):
    """Records the learning rate each epoch trains with."""

    def __init__(self):
        self.rates = []

    def on_epoch_start(self, loop):
        self.rates.append(loop.optimizer.param_groups[0]["lr"])


def test_the_anneal_follows_early_stopping_from_the_best_weights_on_a_falling_rate(moons):
    config = TrainConfig(epochs=300, lr=0.05, patience=5, anneal_epochs=4)
    plain_model, _, plain, _ = _train(moons, epochs=300, lr=0.05, patience=5)
    rates = _LearningRates()
    events = []
    model = GrowingMLP(moons.x_train.shape[1], [16], 1, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(
        config,
        default_loss("classification", 1),
        "classification",
        observers=[events.append],
        hooks=[rates],
    )
    result = trainer.run(model, moons.x_train, moons.y_train, moons.x_val, moons.y_val)
    # The same training up to the stop, then four annealed epochs from the best weights.
    assert result.stopped_early and result.epochs == plain.epochs + 4
    stop = plain.epochs
    assert rates.rates[:stop] == [0.05] * stop
    expected = [0.05 * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in (1, 2, 3, 4)]
    assert rates.rates[stop:] == pytest.approx(expected)
    assert trainer.optimizer_.param_groups[0]["lr"] == 0.05  # for a training that goes on
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    best = min(epochs, key=lambda e: e.validation["loss"])
    assert result.best_epoch == best.epoch
    if result.best_epoch <= stop:  # the anneal found nothing better: the plain result
        for a, b in zip(model.parameters(), plain_model.parameters(), strict=True):
            assert torch.equal(a, b)
    # The first annealed epoch trains the best weights, not the last ones.
    first = epochs[stop]
    assert first.train_loss < epochs[stop - 1].train_loss * 1.5


def test_without_early_stopping_the_anneal_follows_the_last_epoch(moons):
    _, _, result, events = _train(moons, epochs=6, early_stopping=False, anneal_epochs=3)
    assert result.epochs == 9 and not result.stopped_early
    assert isinstance(events[0], TrainStart) and events[0].max_epochs == 9


@pytest.mark.parametrize("span_bytes", [64, 1 << 22])
def test_batches_are_the_rows_of_the_order_even_when_inputs_and_targets_look_alike(
    span_bytes, monkeypatch
):
    """Gathered a span at a time into kept buffers (one for the inputs, one for the targets,
    even of one shape and type), each batch holds exactly the rows its slice of the order
    names."""
    from growml.train import batches

    monkeypatch.setattr(batches, "SPAN_BYTES", span_bytes)
    x = torch.arange(50 * 2, dtype=torch.float32).reshape(50, 2)
    target = -x
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    gather = batches.Batches(x, batch_size=8)
    for _epoch in range(2):
        seen = []
        for index, (x_batch, target_batch) in enumerate(gather(order, target)):
            rows = order[index * 8 : (index + 1) * 8]
            assert torch.equal(x_batch, x[rows]) and torch.equal(target_batch, target[rows])
            seen.append(x_batch.clone())
        assert torch.equal(torch.cat(seen), x[order])
        order = order.flip(0)
