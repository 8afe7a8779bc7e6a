"""What a fit records for ``growml diagnose`` and what the diagnosis makes of it: births that
follow every shape change, a probe and a confusion course that leave the training as it was, a
resumed fit that records what the uninterrupted one did, and a diagnosis checked against the
run's own files."""

from __future__ import annotations

import json
import math

import pytest
import torch
from growml.cli import app
from resuming import interrupted_then_resumed
from safetensors.torch import load_file
from typer.testing import CliRunner

import growml
from growml.config import resolve_config
from growml.diagnose import gradient_confusion, per_example_gradients, relative_change
from growml.diagnose.diagnosis import diagnose_run, write_diagnosis
from growml.diagnose.recording import BIRTHS, PROBE_X, PROBE_Y, probe_loss
from growml.events import ConfusionMeasured, GrowthStep
from growml.nn import GrowingMLP
from growml.nn.births import Births
from growml.runs import digests
from growml.train.stopping import EarlyStopping

runner = CliRunner()


def _config(*settings, source="moons", epochs=60):
    overrides = [("data.source", source), ("train.epochs", epochs), *settings]
    return resolve_config(overrides=[*overrides, ("diagnostics.enabled", True)])


def _record(path):
    return load_file(path / "diagnostics.safetensors")


def test_births_follow_added_removed_and_inserted_neurons():
    model = GrowingMLP(3, [2], 2, generator=torch.Generator().manual_seed(0))
    model.births = Births(model)
    first = [param.detach().clone() for param in model.parameters()]
    incoming, bias, outgoing = torch.randn(2, 3), torch.randn(2), torch.randn(2, 2)
    model.add_neurons(0, incoming, bias, outgoing)
    born = model.births.named(model)
    torch.testing.assert_close(born["weights.0"], torch.cat([first[0], incoming]))
    torch.testing.assert_close(born["biases.0"], torch.cat([first[2], bias]))
    torch.testing.assert_close(born["weights.1"], torch.cat([first[1], outgoing], 1))
    with torch.no_grad():  # training moves the weights; their births stay
        for param in model.parameters():
            param.add_(1.0)
    model.remove_neurons(0, [0, 2])
    kept = model.births.named(model)
    torch.testing.assert_close(kept["weights.0"], born["weights.0"][[1, 3]])
    torch.testing.assert_close(kept["weights.1"], born["weights.1"][:, [1, 3]])
    model.insert_layer(1)
    inserted = model.births.named(model)
    torch.testing.assert_close(inserted["weights.1"], torch.eye(2))
    torch.testing.assert_close(inserted["weights.2"], kept["weights.1"])
    assert set(inserted) == {name for name, _ in model.named_parameters()}


def test_births_follow_weights_restored_from_before_growth():
    model = GrowingMLP(3, [2], 1, generator=torch.Generator().manual_seed(0))
    model.births = Births(model)
    stopping = EarlyStopping("loss", patience=5)
    stopping.update(1, {"loss": 0.1}, model)
    model.add_neurons(0, torch.randn(3, 3), torch.randn(3), torch.randn(1, 3))
    stopping.update(2, {"loss": 0.2}, model)
    optimizer = torch.optim.Adam(model.parameters())
    stopping.restore_best(model, optimizer)
    assert model.hidden_widths == [2]
    for name, value in model.births.named(model).items():
        assert value.shape == dict(model.named_parameters())[name].shape


def test_a_fit_of_fixed_width_records_its_initial_weights_and_their_confusion(tmp_path):
    """Without growth the births are the initial network, which the same seed builds again;
    the confusion measured at epoch 0 is that network's on the recorded probe."""
    config = _config(("growth.enabled", False), ("model.hidden_widths", [8]), epochs=5)
    result = growml.fit(config, out=tmp_path / "run")
    record = _record(result.path)
    initial = GrowingMLP(
        2, [8], 1, init_scale=1.0, generator=torch.Generator().manual_seed(0), feature_gate=True
    )
    for name, param in initial.named_parameters():
        torch.testing.assert_close(record[BIRTHS + name], param.detach())
    assert record[PROBE_X].shape == (64, 2)
    first = next(e for e in result.run.history() if isinstance(e, ConfusionMeasured))
    loss = probe_loss("classification", 1)
    target = loss.prepare_target(record[PROBE_Y].numpy(), None)
    expected = gradient_confusion(per_example_gradients(initial, loss, record[PROBE_X], target))
    assert first.epoch == 0 and first.probe == 64
    assert "growth" not in diagnose_run(result.path).width_bound.meaning  # the widths were fixed
    assert first.cosine_5th == pytest.approx(expected.cosine_5th, abs=1e-6)
    assert first.eta == pytest.approx(expected.eta, rel=1e-6)


def test_recording_changes_nothing_in_the_training_and_follows_each_growth_step(tmp_path):
    plain = growml.fit(
        resolve_config(overrides=[("data.source", "moons"), ("train.epochs", 60)]),
        out=tmp_path / "plain",
    )
    recorded = growml.fit(_config(), out=tmp_path / "recorded")
    for name, param in plain.run.model.state_dict().items():
        torch.testing.assert_close(recorded.run.model.state_dict()[name], param, rtol=0, atol=0)
    history = recorded.run.history()
    grown = sorted({e.epoch for e in history if isinstance(e, GrowthStep) and e.added})
    measured = [(e.epoch, e.stage) for e in history if isinstance(e, ConfusionMeasured)]
    around = [(epoch, stage) for epoch in grown for stage in ("before growth", "after growth")]
    assert grown and measured == [(0, "start"), *around]
    events = [e for e in history if isinstance(e, ConfusionMeasured)]
    for before, after in zip(events[1::2], events[2::2], strict=True):
        assert before.parameters < after.parameters  # the step's neurons come in between
    record = _record(recorded.path)
    for name, param in recorded.run.model.named_parameters():
        assert record[BIRTHS + name].shape == param.shape


def test_a_resumed_fit_records_what_the_uninterrupted_one_did(tmp_path):
    config = _config(("train.checkpoint_seconds", 0))
    reference = growml.fit(config, out=tmp_path / "reference")
    resumed = interrupted_then_resumed(config, tmp_path / "resumed", epoch=20)
    expected, got = _record(reference.path), _record(resumed.path)
    assert set(got) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value)
    course = [e.to_dict() for e in reference.run.history() if isinstance(e, ConfusionMeasured)]
    again = [e.to_dict() for e in resumed.run.history() if isinstance(e, ConfusionMeasured)]
    assert again == course


def test_the_diagnosis_agrees_with_the_runs_files(tmp_path):
    result = growml.fit(_config(source="digits", epochs=40), out=tmp_path / "run")
    diagnosis = diagnose_run(result.path)
    n, d = len(result.data.x_train), result.data.x_train.shape[1]
    bound = diagnosis.width_bound
    assert (bound.rows, bound.inputs, bound.bound) == (n, d, math.ceil(2 * n / (d + 1)))
    assert bound.hidden_widths == result.run.model.hidden_widths
    assert str(bound.bound) in bound.meaning
    record, model = _record(result.path), result.run.model
    # The gate scales the first layer's inputs: its weights are compared as the layer reads.
    gate = model.gate_values()
    born_gate = record[BIRTHS + "gate"] * (gate / model.gate.detach())
    start = [record[BIRTHS + "weights.0"] * born_gate, record[BIRTHS + "weights.1"]]
    end = [model.weights[0].detach() * gate, model.weights[1].detach()]
    expected = relative_change(start, end)
    assert diagnosis.laziness.weight_change == pytest.approx(expected, rel=1e-5)
    assert 0 <= diagnosis.laziness.kernel_drift <= 2
    loss = probe_loss("classification", 10)
    target = loss.prepare_target(record[PROBE_Y].numpy(), None)
    kept = gradient_confusion(per_example_gradients(model, loss, record[PROBE_X], target))
    assert diagnosis.confusion_kept == kept
    written = write_diagnosis(result.path, diagnosis)
    assert json.loads(written[0].read_text())["width_bound"]["bound"] == bound.bound
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    digests.check(result.path)  # the files written are listed with their digests


def test_a_run_without_a_record_gets_its_width_bound_and_a_note(tmp_path):
    config = resolve_config(overrides=[("data.source", "iris"), ("train.epochs", 5)])
    result = growml.fit(config, out=tmp_path / "run")
    diagnosis = diagnose_run(result.path)
    assert diagnosis.laziness is None and diagnosis.confusion_kept is None
    assert diagnosis.width_bound.bound == math.ceil(2 * len(result.data.x_train) / 5)
    assert "diagnostics.enabled=true" in diagnosis.notes[0]


def test_growml_diagnose_fits_data_then_diagnoses_the_run(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["diagnose", "moons", "--set", "train.epochs=30", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["run"] == str(out) and document["laziness"]["kernel_rows"] == 64
    assert (out / "diagnostics.json").is_file() and (out / "plots" / "diagnostics.png").is_file()
    again = runner.invoke(app, ["diagnose", str(out)])
    assert again.exit_code == 0, again.output
    assert "width bound" in again.stdout and "Gradient confusion over growth" in again.stdout
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "Diagnosis of" in report.stdout and "kernel drift" in report.stdout
    reported = json.loads(runner.invoke(app, ["report", str(out), "--json"]).stdout)
    assert reported["diagnosis"]["width_bound"] == document["width_bound"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-data"], "no-such-data"),
        (["moons", "--experiment", "depth"], "--experiment must be one of"),
        (["moons", "--set", "model.arch=conv", "--set", "model.input_shape=[1,2]"], "MLP"),
    ],
    ids=["unknown-data", "unknown-experiment", "conv"],
)
def test_growml_diagnose_refuses_bad_input_in_one_sentence(tmp_path, args, message):
    out = tmp_path / "run"
    result = runner.invoke(app, ["diagnose", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_a_run_is_diagnosed_as_it_was_fitted(tmp_path):
    out = tmp_path / "run"
    growml.fit(resolve_config(overrides=[("data.source", "iris"), ("train.epochs", 3)]), out=out)
    for extra in (["--set", "seed=1"], ["--experiment", "confusion"], ["--out", str(tmp_path)]):
        result = runner.invoke(app, ["diagnose", str(out), *extra])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error:")


def test_an_experiment_is_written_whole_reported_and_not_overwritten_unasked(tmp_path):
    from growml.cli.diagnose import EXPERIMENT_NAMES

    from growml.diagnose import EXPERIMENTS

    assert EXPERIMENT_NAMES == EXPERIMENTS
    out = tmp_path / "experiment"
    args = ["diagnose", "iris", "--experiment", "confusion", "--out", str(out)]
    small = ["--set", "diagnostics.seeds=1", "--set", "diagnostics.confusion_widths=[4,64]"]
    result = runner.invoke(app, [*args, *small, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["name"] == "confusion" and len(document["rows"]) == 2 + 4
    assert json.loads((out / "experiment.json").read_text())["rows"] == document["rows"]
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and document["verdict"] in report.stdout.replace("\n", "")
    again = runner.invoke(app, [*args, *small])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    replaced = runner.invoke(app, [*args, *small, "--set", "seed=3", "--overwrite", "--json"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "experiment.json").read_text())["settings"]["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["experiment"]  # no partial left


def test_births_come_back_with_the_untrimmed_network(tmp_path, monkeypatch):
    """Trimming that goes back to the grown network puts its births back with its weights."""
    from growml.events import TrimEnd
    from growml.growth import trim

    monkeypatch.setattr(trim.Criterion, "accepts_first", lambda self, scores: False)
    result = growml.fit(_config(("growth.trim_tolerance", 0.5)), out=tmp_path / "run")
    end = next(e for e in result.run.history() if isinstance(e, TrimEnd))
    assert not end.kept and end.epochs > 0  # something was trimmed, then given back
    record = _record(result.path)
    for name, param in result.run.model.named_parameters():
        assert record[BIRTHS + name].shape == param.shape
    assert diagnose_run(result.path).laziness is not None
