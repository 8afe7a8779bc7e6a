"""The run's records read back typed: every event kind through its history line, metrics.json
through its model, and the run directories an earlier growml wrote (format 1, kept under
tests/fixtures as that growml wrote them)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from growml.cli import app
from typer.testing import CliRunner

import growml
from growml.data import prepare
from growml.errors import RunError
from growml.events import (
    EpochEnd,
    GrowthStep,
    PruneStep,
    TrainEnd,
    TrainStart,
    TrimEnd,
    TrimStep,
    parse_event,
)
from growml.fitting import load_config_table
from growml.runs import digests
from growml.runs.layout import HISTORY, METRICS, MODEL_SPEC
from growml.runs.records import RunMetrics
from growml.runs.rundir import RunWriter

FIXTURES = Path(__file__).parent / "fixtures"
FORMAT_1 = [FIXTURES / "format1-iris", FIXTURES / "format1-binary-pruned"]

EVENTS = [
    TrainStart(
        max_epochs=5, train_rows=90, validation_rows=30, hidden_widths=[1], parameters=11, threads=1
    ),
    EpochEnd(
        epoch=1,
        train_loss=1.25,
        validation={"loss": 1.5, "accuracy": 0.5},
        hidden_widths=[1],
        parameters=11,
        improved=True,
        seconds=0.004,
    ),
    GrowthStep(
        epoch=3,
        layer=0,
        method="pool",
        added=1,
        lambdas=[0.33],
        noise_floor=0.18,
        predicted_first_order=0.45,
        gamma=1.0,
        loss_before=1.14,
        loss_after=0.77,
        bottleneck_before=[0.36, None],
        bottleneck_after=[0.24, None],
        hidden_widths=[2, 1],
        parameters=19,
        seconds=0.003,
        reason="added",
        finished=False,
        skipped={1: "its statistics are not finite"},
    ),
    PruneStep(
        method="synflow",
        structured=False,
        iteration=1,
        kept_weights=[89, 3],
        hidden_widths=[3],
        parameters=97,
        synaptic_flow=11.4,
    ),
    TrainEnd(
        epochs=5, best_epoch=4, stopped_early=True, seconds=0.02, best_validation={"loss": 0.7}
    ),
    TrimStep(
        monitor="loss",
        tolerance=0.01,
        validation_before=0.31,
        validation_after=0.305,
        removed=[4, 0],
        merged=[1, 0],
        widths_before=[9, 2],
        hidden_widths=[4, 2],
        parameters_before=69,
        parameters=34,
        seconds=0.01,
    ),
    TrimEnd(
        kept=True,
        monitor="loss",
        validation_untrimmed=0.31,
        validation_trimmed=0.29,
        epochs=12,
        hidden_widths=[4, 2],
        parameters=34,
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event)
def test_every_event_kind_round_trips_through_its_history_line(event, tmp_path):
    with RunWriter(tmp_path / "run") as writer:
        writer.record(event)
    (line,) = (tmp_path / "run" / HISTORY).read_text().splitlines()
    stored = json.loads(line)
    assert next(iter(stored)) == "event" and stored["event"] == event.event
    assert parse_event(stored) == event and type(parse_event(stored)) is type(event)
    assert json.dumps(parse_event(stored).to_dict()) == line


def test_events_are_built_by_keyword_or_by_position_and_stay_frozen():
    event = EpochEnd(2, 0.5, {"loss": 0.5}, [3], parameters=9, improved=False, seconds=0.1)
    assert event == EpochEnd(
        epoch=2,
        train_loss=0.5,
        validation={"loss": 0.5},
        hidden_widths=[3],
        parameters=9,
        improved=False,
        seconds=0.1,
    )
    with pytest.raises(AttributeError):
        event.epoch = 3


@pytest.mark.parametrize(
    "line",
    [
        '{"event": "epoch", "epoch": 1}',  # fields missing
        '{"event": "checkpoint", "epoch": 1}',  # no such kind
        '{"epoch": 1, "train_loss": 1.0}',  # no kind at all
        '["epoch"]',
        '"epoch"',
    ],
)
def test_a_damaged_history_line_gives_one_sentence(line, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FORMAT_1[0], run)
    first = (run / HISTORY).read_text().splitlines()[0]
    (run / HISTORY).write_text(first + "\n" + line + "\n")
    with pytest.raises(RunError) as caught:
        growml.load_run(run).history()
    assert str(caught.value) == (
        f"line 2 of {str(run / HISTORY)!r} is not a growml event; the run directory is damaged."
    )


@pytest.mark.parametrize("run", FORMAT_1, ids=lambda path: path.name)
def test_a_format_1_run_loads_predicts_and_reads_back_typed(run):
    assert json.loads((run / MODEL_SPEC).read_text())["format_version"] == 1
    loaded = growml.load_run(run)
    config = growml.resolve_config(loaded.config)
    data = prepare(load_config_table(config), config.data, config.seed)
    predicted = loaded.predict(data.raw_test)
    actual = data.target_encoder.decode(data.y_test)
    metrics = loaded.metrics_record
    assert float(np.mean(predicted == actual)) == pytest.approx(metrics.test["accuracy"], abs=1e-12)
    history = loaded.history()
    lines = (run / HISTORY).read_text().splitlines()
    assert [json.dumps(event.to_dict()) for event in history] == lines  # nothing lost or added
    epochs = [event for event in history if isinstance(event, EpochEnd)]
    assert metrics.epochs == len(epochs) and metrics.hidden_widths == loaded.model.hidden_widths
    steps = [event for event in history if isinstance(event, GrowthStep) and event.added]
    assert metrics.growth.steps == len(steps)
    assert metrics.growth.kept_widths == epochs[metrics.growth.kept_epoch - 1].hidden_widths
    assert (metrics.prune is not None) == any(isinstance(e, PruneStep) for e in history)
    assert (metrics.threshold is not None) == (loaded.threshold is not None)


@pytest.mark.parametrize("run", FORMAT_1, ids=lambda path: path.name)
def test_a_format_1_run_reports(run):
    shown = CliRunner().invoke(app, ["report", str(run)])
    assert shown.exit_code == 0, shown.output
    assert "Growth" in shown.stdout and "epochs run" in shown.stdout
    document = json.loads(CliRunner().invoke(app, ["report", str(run), "--json"]).stdout)
    assert document["metrics"] == json.loads((run / METRICS).read_text())
    assert document["history"] == [json.loads(line) for line in (run / HISTORY).open()]


@pytest.mark.parametrize("run", FORMAT_1, ids=lambda path: path.name)
def test_metrics_json_round_trips_through_its_model(run):
    stored = json.loads((run / METRICS).read_text())
    # Format 1 called the wall time "total": it reads under today's name, value and place kept.
    seconds = {("wall" if k == "total" else k): value for k, value in stored["seconds"].items()}
    assert RunMetrics.model_validate(stored).to_dict() == {**stored, "seconds": seconds}
    assert list(RunMetrics.model_validate(stored).to_dict()) == list(stored)  # and its order
    assert list(RunMetrics.model_validate(stored).seconds.to_dict()) == list(seconds)


def test_metrics_of_a_fresh_run_are_the_model_and_a_damaged_file_is_refused(tmp_path):
    growml.fit(
        growml.resolve_config(overrides=[("data.source", "iris"), ("train.epochs", 2)]),
        out=tmp_path / "run",
    )
    stored = json.loads((tmp_path / "run" / METRICS).read_text())
    assert RunMetrics.model_validate(stored).to_dict() == stored
    (tmp_path / "run" / METRICS).write_text(json.dumps({**stored, "parameters": "many"}))
    digests.record(tmp_path / "run", digests.read(tmp_path / "run"))  # damaged as written
    with pytest.raises(RunError, match=r"metrics.json' is not growml metrics \(parameters: "):
        growml.load_run(tmp_path / "run")
    # Of several problems, the first is named.
    (tmp_path / "run" / METRICS).write_text(
        json.dumps({**stored, "parameters": "many", "epochs": "three"})
    )
    digests.record(tmp_path / "run", digests.read(tmp_path / "run"))
    with pytest.raises(RunError, match=r"is not growml metrics \(parameters: ") as error:
        growml.load_run(tmp_path / "run")
    assert "epochs" not in str(error.value)
