"""The trainer's hooks: when each is called, what a changed network does to early stopping,
where checkpoints are taken, and a resume from the loop's saved state that is exact."""

import json

import pytest
import torch
from safetensors.torch import save

from growml.checkpoint import CHECKPOINT, FORMAT_VERSION, read_checkpoint, write_checkpoint
from growml.config import DataConfig, GrowthConfig, TrainConfig
from growml.data import load_table, prepare
from growml.errors import RunError
from growml.events import EpochEnd, GrowthStep, TrainEnd, TrainStart
from growml.growth.engine import GrowthEngine
from growml.losses import default_loss
from growml.nn import GrowingMLP
from growml.train import Trainer
from growml.train.hooks import Hook
from growml.train.loop import LoopState


@pytest.fixture(scope="module")
def moons():
    return prepare(load_table("moons"), DataConfig(), seed=0)


def _model(data, widths=(4,)):
    return GrowingMLP(
        data.x_train.shape[1], list(widths), 1, generator=torch.Generator().manual_seed(0)
    )


class Recorder(Hook):
    """Writes every call, and every event the observers get, into one log; reports a changed
    network after the epochs in ``changes``."""

    def __init__(self, log, changes=()):
        self.log = log
        self.changes = set(changes)

    def on_train_start(self, loop):
        self.log.append(("on_train_start", loop.epoch))

    def on_epoch_start(self, loop):
        self.log.append(("on_epoch_start", loop.epoch))

    def on_step_end(self, loop):
        if self.log[-1] != ("on_step_end", loop.epoch):  # once per epoch is enough to see
            self.log.append(("on_step_end", loop.epoch))

    def on_epoch_end(self, loop, epoch):
        self.log.append(("on_epoch_end", epoch.epoch))
        return epoch.epoch in self.changes


def _observe(log):
    def observer(event):
        log.append((event.event, getattr(event, "epoch", None)))

    return observer


def test_hooks_are_called_in_order_around_each_epoch_and_its_event(moons):
    log = []
    Trainer(
        TrainConfig(epochs=3, early_stopping=False),
        default_loss("classification", 1),
        "classification",
        observers=[_observe(log)],
        hooks=[Recorder(log)],
    ).run(_model(moons), moons.x_train, moons.y_train, moons.x_val, moons.y_val)
    expected = [("train_start", None), ("on_train_start", 0)]
    for epoch in (1, 2, 3):
        expected += [
            ("on_epoch_start", epoch - 1),
            ("on_step_end", epoch - 1),  # the epoch counts as done once validated
            ("epoch", epoch),  # observers have the epoch's event before hooks act on it
            ("on_epoch_end", epoch),
        ]
    assert log == [*expected, ("train_end", None)]


def test_growth_steps_follow_their_epoch_event_and_precede_the_other_hooks(moons):
    log = []
    loss = default_loss("classification", 1)
    Trainer(
        TrainConfig(epochs=6, early_stopping=False),
        loss,
        "classification",
        observers=[_observe(log)],
        growth=GrowthEngine(GrowthConfig(every=2), loss),
        hooks=[Recorder(log)],
    ).run(_model(moons, (1,)), moons.x_train, moons.y_train, moons.x_val, moons.y_val)
    for epoch in (2, 4, 6):
        at = log.index(("epoch", epoch))
        assert log[at + 1] == ("growth", epoch)
        assert log[log.index(("on_epoch_end", epoch)) - 1] == ("growth", epoch)


def test_a_hook_that_changes_the_network_restarts_the_patience(moons):
    def run(changes):
        log = []
        return Trainer(
            TrainConfig(epochs=80, lr=0.05, patience=3),
            default_loss("classification", 1),
            "classification",
            hooks=[Recorder(log, changes)],
        ).run(_model(moons), moons.x_train, moons.y_train, moons.x_val, moons.y_val)

    plain = run(())
    assert plain.stopped_early and plain.epochs == plain.best_epoch + 3
    changed = run({plain.epochs - 1})  # a shape change one epoch before it stopped
    assert changed.epochs >= plain.epochs + 2  # three more epochs of patience from there


def _grow(data, epochs, checkpoint=None, resume=None, seconds=1e9, patience=20, anneal=0):
    """A growing run on ``data``; returns its events, result and final weights."""
    loss = default_loss("classification", 1)
    events = []
    config = TrainConfig(
        epochs=epochs,
        patience=patience,
        lr=0.02,
        checkpoint_seconds=seconds,
        anneal_epochs=anneal,
    )
    result = Trainer(
        config,
        loss,
        "classification",
        observers=[events.append],
        seed=3,
        growth=GrowthEngine(GrowthConfig(every=3), loss, seed=3),
        checkpoint=checkpoint,
        resume=resume,
    ).run(model := _model(data, (1,)), data.x_train, data.y_train, data.x_val, data.y_val)
    return events, result, [p.detach().clone() for p in model.parameters()]


def test_checkpoints_follow_every_growth_step_and_never_the_last_epoch(moons):
    saved = []
    events, result, _ = _grow(moons, 20, checkpoint=saved.append)
    grown = [e.epoch for e in events if isinstance(e, GrowthStep) and e.added]
    assert grown
    epochs = [checkpoint.state["trainer"]["epoch"] for checkpoint in saved]
    assert epochs == [epoch for epoch in grown if epoch < result.epochs]
    saved.clear()
    _grow(moons, 20, checkpoint=saved.append, seconds=0)
    assert [c.state["trainer"]["epoch"] for c in saved] == list(range(1, result.epochs))


def test_no_checkpoint_is_taken_at_the_epoch_early_stopping_stops(moons):
    saved = []
    _, result, _ = _grow(moons, 200, checkpoint=saved.append, seconds=0, patience=2)
    assert result.stopped_early
    assert saved[-1].state["trainer"]["epoch"] == result.epochs - 1


@pytest.mark.parametrize("at", [2, 3, 7])  # before the first step, at it, after
def test_a_run_resumed_from_its_saved_loop_state_ends_as_the_uninterrupted_one(moons, tmp_path, at):
    saved = []
    events, result, weights = _grow(moons, 14, checkpoint=saved.append, seconds=0)
    checkpoint = next(c for c in saved if c.state["trainer"]["epoch"] == at)
    write_checkpoint(tmp_path, checkpoint)
    read = read_checkpoint(tmp_path)
    state = LoopState(**read.state["trainer"])
    assert state.epoch == at and set(state.hooks) == {"growth"}
    assert state.early_stopping["best_epoch"] <= at
    resumed_events, resumed, resumed_weights = _grow(moons, 14, resume=read)
    assert not any(isinstance(e, TrainStart) for e in resumed_events)

    def without_seconds(items):
        return [
            {k: v for k, v in e.to_dict().items() if k != "seconds"}
            for e in items
            if not isinstance(e, TrainStart)
        ]

    after = [e for e in events if not (isinstance(e, (EpochEnd, GrowthStep)) and e.epoch <= at)]
    assert without_seconds(resumed_events) == without_seconds(after)
    assert isinstance(resumed_events[-1], TrainEnd)
    assert (resumed.epochs, resumed.best_epoch) == (result.epochs, result.best_epoch)
    assert resumed.best_validation == result.best_validation
    for a, b in zip(resumed_weights, weights, strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_the_earlier_format_is_refused_in_one_sentence(tmp_path):
    # Format 1 kept the loop's state in hand-built dicts that this trainer no longer reads.
    earlier = {"version": 1, "trainer": {"epoch": 3, "last_growth": 3, "best_tensors": 0}}
    metadata = {"growml_checkpoint": json.dumps(earlier)}
    (tmp_path / CHECKPOINT).write_bytes(save({"x": torch.zeros(1)}, metadata=metadata))
    assert FORMAT_VERSION > 1
    with pytest.raises(RunError, match="written by another growml version"):
        read_checkpoint(tmp_path)


def test_a_run_resumed_during_its_anneal_ends_as_the_uninterrupted_one(moons, tmp_path):
    saved = []
    events, result, weights = _grow(moons, 8, checkpoint=saved.append, seconds=0, anneal=4)
    assert result.epochs == 12
    checkpoint = next(c for c in saved if c.state["trainer"]["epoch"] == 10)
    assert checkpoint.state["trainer"]["anneal_start"] == 8
    write_checkpoint(tmp_path, checkpoint)
    resumed_events, resumed, resumed_weights = _grow(
        moons, 8, resume=read_checkpoint(tmp_path), anneal=4
    )
    assert [e.epoch for e in resumed_events if isinstance(e, EpochEnd)] == [11, 12]
    assert (resumed.epochs, resumed.best_epoch) == (result.epochs, result.best_epoch)
    for a, b in zip(resumed_weights, weights, strict=True):
        assert torch.equal(a, b)
