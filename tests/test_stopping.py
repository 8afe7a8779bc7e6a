"""Early stopping: the best epoch, patience from the last improvement or growth, best weights."""

import torch

from growml.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from growml.nn import GrowingMLP
from growml.nn.mlp import ParamResize
from growml.nn.optimizer_state import carry_state
from growml.train.stopping import EarlyStopping


def _model():
    return GrowingMLP(3, [4], 2, generator=torch.Generator().manual_seed(0))


def test_a_lower_loss_is_an_improvement_and_a_higher_one_is_not():
    stopping, model = EarlyStopping("loss", patience=3), _model()
    assert stopping.update(1, {"loss": 0.5}, model)
    assert not stopping.update(2, {"loss": 0.6}, model)
    assert not stopping.update(3, {"loss": 0.5}, model)  # equal is no improvement
    assert stopping.update(4, {"loss": 0.4}, model)
    assert (stopping.best_epoch, stopping.best_score) == (4, 0.4)
    assert stopping.best_metrics == {"loss": 0.4}


def test_accuracy_and_r2_improve_upwards():
    for monitor in ("accuracy", "macro_f1", "r2"):
        stopping, model = EarlyStopping(monitor, patience=3), _model()
        assert stopping.update(1, {"loss": 0.5, monitor: 0.7}, model)
        assert not stopping.update(2, {"loss": 0.1, monitor: 0.6}, model)
        assert stopping.update(3, {"loss": 0.9, monitor: 0.8}, model)
        assert stopping.best_epoch == 3


def test_patience_counts_from_the_last_improvement_or_growth():
    stopping, model = EarlyStopping("loss", patience=3), _model()
    stopping.update(1, {"loss": 0.5}, model)
    for epoch in (2, 3):
        stopping.update(epoch, {"loss": 0.6}, model)
        assert not stopping.should_stop(epoch)
    stopping.grew(3)  # new neurons get the full patience again
    for epoch in (4, 5):
        stopping.update(epoch, {"loss": 0.6}, model)
        assert stopping.stalled(epoch) == epoch - 3 and not stopping.should_stop(epoch)
    stopping.update(6, {"loss": 0.6}, model)
    assert stopping.stalled(6) == 3 and stopping.should_stop(6)


def test_disabled_early_stopping_never_stops_but_still_follows_the_best_epoch():
    stopping, model = EarlyStopping("loss", patience=1, enabled=False), _model()
    stopping.update(1, {"loss": 0.5}, model)
    stopping.update(2, {"loss": 0.7}, model)
    stopping.update(3, {"loss": 0.7}, model)
    assert stopping.stalled(3) == 2 and not stopping.should_stop(3)
    assert stopping.best_epoch == 1
    best = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    stopping.restore_best(model, torch.optim.Adam(model.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(model.parameters(), best, strict=True))


def test_the_best_weights_are_a_copy_restored_with_their_shapes():
    stopping, model = EarlyStopping("loss", patience=5), _model()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(8, 3)).sum().backward()
    optimizer.step()
    stopping.update(1, {"loss": 0.5}, model)
    best = [p.detach().clone() for p in model.parameters()]
    # The network grows by one hidden neuron after the best epoch.
    weight, bias, outgoing = model.weights[0], model.biases[0], model.weights[1]
    resizes = [ParamResize(weight, 0, 4, append=1), ParamResize(bias, 0, 4, append=1)]
    resizes.append(ParamResize(outgoing, 1, 4, append=1))
    with torch.no_grad():
        weight.data = torch.cat([weight, torch.ones(1, 3)])
        bias.data = torch.cat([bias, torch.ones(1)])
        outgoing.data = torch.cat([outgoing, torch.ones(2, 1)], 1)
    carry_state(optimizer, resizes)
    assert model.hidden_widths == [5]
    stopping.restore_best(model, optimizer)
    assert model.hidden_widths == [4]
    for param, expected in zip(model.parameters(), best, strict=True):
        assert torch.equal(param, expected)
        state = optimizer.state.get(param, {})
        assert all(v.shape == param.shape for v in state.values() if v.dim())
    assert weight not in optimizer.state  # its moments were for five neurons: forgotten
    assert model.biases[1] in optimizer.state  # the output bias kept its shape and moments


def test_the_state_round_trips_through_a_checkpoint_file(tmp_path):
    stopping, model = EarlyStopping("accuracy", patience=4), _model()
    stopping.update(1, {"loss": 0.5, "accuracy": 0.7}, model)
    stopping.update(2, {"loss": 0.4, "accuracy": 0.6}, model)
    stopping.grew(2)
    checkpoint = Checkpoint()
    checkpoint.state["early_stopping"] = stopping.state_dict(checkpoint)
    write_checkpoint(tmp_path, checkpoint)
    read = read_checkpoint(tmp_path)
    again = EarlyStopping("accuracy", patience=4)
    again.load_state_dict(read, read.state["early_stopping"])
    assert (again.best_score, again.best_epoch, again.last_growth) == (0.7, 1, 2)
    assert again.best_metrics == {"loss": 0.5, "accuracy": 0.7}
    assert again.best_weights.keys() == stopping.best_weights.keys()
    for a, b in zip(again.best_weights.values(), stopping.best_weights.values(), strict=True):
        assert torch.equal(a, b)
    assert again.stalled(3) == stopping.stalled(3) == 1


def test_a_state_without_a_best_epoch_round_trips():
    stopping = EarlyStopping("loss", patience=4)
    checkpoint = Checkpoint()
    again = EarlyStopping("loss", patience=4)
    again.load_state_dict(checkpoint, stopping.state_dict(checkpoint))
    assert again.best_weights is None and again.best_score is None
    assert not checkpoint.tensors
