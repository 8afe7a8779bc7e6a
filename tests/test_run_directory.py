"""The run directory: how it is written (whole or not at all), read back, and what a damaged
or interrupted one says; the history and the epoch a run kept."""

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

import growml
from growml.checkpoint import CHECKPOINT
from growml.errors import DataError, GrowmlWarning, RunError
from growml.events import EpochEnd, GrowthStep, TrainEnd, kept_epoch
from growml.runs import digests, plots
from growml.runs.layout import HISTORY, MODEL_SPEC
from growml.runs.run import FORMAT_VERSION, Run, load_run, save_run
from growml.runs.rundir import RunWriter, interrupted_runs, remove_abandoned
from growml.runs.summary import fit_metrics, growth_summary

FAST = [("data.source", "iris"), ("train.epochs", 3), ("growth.enabled", False)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("fitted") / "run"
    growml.fit(growml.resolve_config(overrides=FAST), out=out)
    return out


def _copy(run, tmp_path):
    import shutil

    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _as_written(run):
    """Take the digests of the run's files as they are now: a file damaged before growml
    listed it, which only the checks of its content can catch."""
    digests.record(run, digests.read(run))


def test_model_json_declares_the_format_this_growml_reads(fitted):
    assert json.loads((fitted / MODEL_SPEC).read_text())["format_version"] == 3 == FORMAT_VERSION


def test_a_run_of_a_newer_format_is_refused_with_the_reason(fitted, tmp_path):
    run = _copy(fitted, tmp_path)
    info = json.loads((run / MODEL_SPEC).read_text())
    (run / MODEL_SPEC).write_text(json.dumps({**info, "format_version": FORMAT_VERSION + 1}))
    newer = f"run format {FORMAT_VERSION + 1}, and this growml reads format {FORMAT_VERSION} and"
    with pytest.raises(RunError, match=newer):
        load_run(run)


def test_the_cli_refuses_a_newer_run_in_one_sentence_and_leaves_it_alone(fitted, tmp_path):
    from growml.cli import app
    from typer.testing import CliRunner

    run = _copy(fitted, tmp_path)
    info = json.loads((run / MODEL_SPEC).read_text())
    (run / MODEL_SPEC).write_text(json.dumps({**info, "format_version": FORMAT_VERSION + 1}))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error:") and "upgrade growml" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("name", ["model.json", "model.safetensors", "preprocess.json"])
def test_a_run_without_one_of_its_files_is_incomplete(fitted, tmp_path, name):
    run = _copy(fitted, tmp_path)
    (run / name).unlink()
    with pytest.raises(RunError, match=f"not a complete run directory: {name} is missing"):
        load_run(run)


@pytest.mark.parametrize(("name", "content"), [("model.json", "[1]"), ("preprocess.json", "7")])
def test_a_file_that_is_not_a_mapping_is_damage(fitted, tmp_path, name, content):
    run = _copy(fitted, tmp_path)
    (run / name).write_text(content)
    _as_written(run)
    with pytest.raises(RunError, match="is damaged"):
        load_run(run)


def test_extra_tensors_are_named_first_in_order(fitted, tmp_path):
    from safetensors.torch import load_file, save_file

    run = _copy(fitted, tmp_path)
    tensors = load_file(run / "model.safetensors")
    extra = {"zz": tensors["weights.0"].clone(), "aa": tensors["weights.0"].clone()}
    save_file({**tensors, **extra}, run / "w")
    os.replace(run / "w", run / "model.safetensors")
    _as_written(run)
    with pytest.raises(RunError, match="holds a tensor 'aa' the model does not have"):
        load_run(run)


def test_history_reads_every_event_across_blank_lines(fitted, tmp_path):
    run = _copy(fitted, tmp_path)
    events = load_run(run).history()
    lines = [json.dumps(e.to_dict()) for e in events]
    (run / HISTORY).write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n")
    _as_written(run)
    assert load_run(run).history() == events
    in_memory = Run(load_run(run).model, load_run(run).preprocessor, load_run(run).target_encoder)
    assert in_memory.history() == []  # not saved anywhere yet


def test_a_damaged_history_line_is_named_by_its_number_and_binary_is_not_text(fitted, tmp_path):
    run = _copy(fitted, tmp_path)
    lines = (run / HISTORY).read_text().splitlines()
    (run / HISTORY).write_text(lines[0] + "\nnot json\n")
    _as_written(run)
    with pytest.raises(RunError, match="line 2 of .* is not a growml event"):
        load_run(run).history()
    (run / HISTORY).write_bytes(b"\xff\xfe\x00")
    _as_written(run)
    with pytest.raises(RunError, match="is not text; the run directory is damaged"):
        load_run(run).history()


def test_unknown_columns_are_warned_about_unless_strict(fitted):
    from growml.data import load_table

    features = load_table("iris").features.slice(0, 5)
    extra = features.append_column("notes", features.column(0))
    run = load_run(fitted)
    for predict in (run.predict, run.predict_proba):
        with pytest.warns(GrowmlWarning, match="notes"):
            predict(extra)
        with pytest.raises(DataError, match="column 'notes' is not one the model was trained on"):
            predict(extra, strict=True)


def _epoch(number, widths):
    return EpochEnd(number, 1.0, {"loss": 1.0}, widths, parameters=0, improved=True, seconds=0.0)


def _step(epoch, added):
    return GrowthStep(
        epoch=epoch,
        layer=0,
        method="pool",
        added=added,
        lambdas=[],
        noise_floor=0.0,
        predicted_first_order=0.0,
        gamma=0.0,
        loss_before=None,
        loss_after=None,
        bottleneck_before=[],
        bottleneck_after=[],
        hidden_widths=[],
        parameters=0,
        seconds=0.0,
        reason="added",
        finished=False,
    )


def _end(best):
    return TrainEnd(epochs=3, best_epoch=best, stopped_early=False, seconds=0.0)


HISTORY_WITH_FINE_TUNING = [
    _epoch(1, [1]),
    _step(1, 2),
    _epoch(2, [3]),
    _step(2, 1),
    _epoch(3, [4]),
    _step(3, 0),
    _end(2),
    _epoch(1, [2]),  # fine-tuning the pruned network
    _epoch(2, [2]),
    _end(1),
]


def test_the_kept_epoch_is_the_growing_trainings_best_or_with_final_the_last_ones():
    assert kept_epoch(HISTORY_WITH_FINE_TUNING) == _epoch(2, [3])
    assert kept_epoch(HISTORY_WITH_FINE_TUNING, final=True) == _epoch(1, [2])
    still_training = HISTORY_WITH_FINE_TUNING[:5]
    assert kept_epoch(still_training) == _epoch(3, [4])  # no best yet: the latest epoch
    assert kept_epoch([]) is None


def _captured(monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure))
    return figures


def test_the_growth_plot_shows_the_growing_training(monkeypatch, tmp_path):
    figures = _captured(monkeypatch)
    history = [
        replace(e, hidden_widths=[*e.hidden_widths, 5]) if isinstance(e, EpochEnd) else e
        for e in HISTORY_WITH_FINE_TUNING
    ]
    plots.growth_plot(history, "loss", tmp_path / "growth.png")
    widths_axis, metric_axis = figures[0].axes
    lines = {line.get_label(): line for line in widths_axis.get_lines()}
    assert list(lines["hidden layer 1"].get_ydata()) == [1, 3, 4]  # the growing epochs only
    assert list(lines["hidden layer 2"].get_ydata()) == [5, 5, 5]
    assert "hidden layer 3" not in lines and "kept" in lines
    marks = [line.get_xdata()[0] for line in metric_axis.get_lines()[1:]]
    assert marks == [1, 2, 2]  # the steps that added neurons, then the kept epoch
    assert widths_axis.get_title() == "2 growth steps, widths reached [4, 5]; kept [3, 5] (epoch 2)"


def test_the_threshold_plot_marks_the_choice(monkeypatch, tmp_path):
    import numpy as np

    from growml.losses.threshold import choose_threshold

    figures = _captured(monkeypatch)
    probability, labels = np.array([0.1] * 30 + [0.9] * 10), np.array([0] * 30 + [1] * 10)
    plots.threshold_plot(choose_threshold(probability, labels, "f1"), "f1", tmp_path / "t.png")
    (axis,) = figures[0].axes
    labels = [line.get_label() for line in axis.get_lines()]
    assert labels[:3] == ["validation rows", "bagged over resamples", "chosen τ = 0.50 (½ kept)"]


def test_a_writer_refuses_an_existing_run_unless_told_to_replace_it(fitted, tmp_path):
    run = _copy(fitted, tmp_path)
    with pytest.raises(RunError, match="already exists; pass --overwrite"):
        RunWriter(run).__enter__()
    empty = tmp_path / "empty"
    empty.mkdir()
    with RunWriter(empty) as writer:  # an empty directory is free to use
        writer.write_json("model.json", {})
    assert (empty / "model.json").is_file()
    with RunWriter(tmp_path / "a" / "b" / "run") as writer:  # parents are created
        writer.write_json("model.json", {})
    assert (tmp_path / "a" / "b" / "run" / "model.json").is_file()


def test_a_replayed_history_starts_the_new_one(tmp_path):
    events = [{"event": "epoch", "epoch": 1}, {"event": "epoch", "epoch": 2}]
    with RunWriter(tmp_path / "run") as writer:
        writer.replay(events)
    lines = (tmp_path / "run" / HISTORY).read_text().splitlines()
    assert [json.loads(line) for line in lines] == events


def test_an_interrupted_run_keeps_its_checkpoint_and_a_failed_one_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with (
        pytest.warns(GrowmlWarning, match="--resume continues it"),
        pytest.raises(KeyboardInterrupt),
        RunWriter(out) as writer,
    ):
        (writer.path / CHECKPOINT).write_bytes(b"state")
        raise KeyboardInterrupt
    assert interrupted_runs(out) == [writer.path] and not out.exists()
    with pytest.raises(ValueError), RunWriter(tmp_path / "other") as failed:
        (failed.path / CHECKPOINT).write_bytes(b"state")
        raise ValueError("a bug")
    assert not failed.path.exists() and not (tmp_path / "other").exists()


def test_interrupted_runs_come_newest_first_and_abandoned_ones_are_removed(tmp_path):
    out = tmp_path / "run"
    partials = []
    for age in (300, 30, 3000):
        partial = tmp_path / f".run.partial-{age}"
        partial.mkdir()
        (partial / CHECKPOINT).write_bytes(b"state")
        moment = time.time() - age
        os.utime(partial / CHECKPOINT, (moment, moment))
        partials.append(partial)
    killed = tmp_path / ".run.partial-killed"  # no checkpoint yet: not resumable
    killed.mkdir()
    (killed / HISTORY).write_text("")
    os.utime(killed, (time.time() - 60, time.time() - 60))
    assert interrupted_runs(out) == [partials[1], partials[0], partials[2]]
    with RunWriter(out) as writer:  # a run under way is neither resumed nor removed
        (writer.path / CHECKPOINT).write_bytes(b"state")
        os.utime(writer.path, (time.time() - 60, time.time() - 60))
        assert writer.path not in interrupted_runs(out)
        remove_abandoned(out)
        assert writer.path.is_dir() and not killed.exists()
        assert all(partial.is_dir() for partial in partials)


def test_a_failed_move_keeps_the_old_run_whole(fitted, tmp_path, monkeypatch):
    run = _copy(fitted, tmp_path)
    before = sorted(p.name for p in run.iterdir())
    real_replace = os.replace
    moved = []

    def replace(source, destination):
        if Path(source).name.startswith(".run.partial-"):  # the new run into place
            raise OSError(28, "No space left on device")
        moved.append(Path(destination).parent.name)
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    with (
        pytest.raises(RunError, match="cannot move the run into .*No space left on device"),
        RunWriter(run, overwrite=True) as writer,
    ):
        writer.write_json("model.json", {"new": True})
    monkeypatch.setattr(os, "replace", real_replace)
    assert any(name.startswith(".run.old-") for name in moved)  # the old run was moved away
    assert sorted(p.name for p in run.iterdir()) == before  # and back
    assert json.loads((run / MODEL_SPEC).read_text()) != {"new": True}
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no partial or old copy left


def test_a_failed_move_of_a_new_run_leaves_nothing(tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(source, destination):
        if Path(source).name.startswith(".run.partial-"):
            raise OSError(28, "No space left on device")
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(RunError, match="No space left on device"), RunWriter(tmp_path / "run") as w:
        w.write_json("model.json", {})
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_file_says_it_cannot_be_read(fitted, tmp_path, monkeypatch):
    run = _copy(fitted, tmp_path)
    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name == HISTORY:
            raise PermissionError(13, "Permission denied")
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(RunError, match="cannot read .*history.jsonl.*: Permission denied"):
        load_run(run).history()


def test_the_history_is_strict_json(tmp_path):
    with pytest.raises(ValueError), RunWriter(tmp_path / "run") as writer:
        nan = float("nan")
        writer.record(
            EpochEnd(1, nan, {}, hidden_widths=[2], parameters=9, improved=False, seconds=0)
        )


def test_save_run_writes_what_load_run_reads_back(fitted, tmp_path):
    run = load_run(fitted)
    history = run.history()
    with RunWriter(tmp_path / "again") as writer:
        writer.replay([event.to_dict() for event in history])
        save_run(writer, run, history)
    again = load_run(tmp_path / "again")
    for name in ("config.yaml", "model.json", "preprocess.json", "metrics.json", HISTORY):
        assert (tmp_path / "again" / name).read_bytes() == (fitted / name).read_bytes(), name
    for name, tensor in run.model.state_dict().items():
        assert again.model.state_dict()[name].equal(tensor)
    assert (tmp_path / "again" / "plots" / "growth.png").is_file()
    rows = growml.data.load_table("iris", None, "auto").features.slice(0, 5)
    assert (again.predict_proba(rows) == run.predict_proba(rows)).all()


def _growing(**growth):
    return growml.resolve_config(overrides=[("model.hidden_widths", [1]), *growth.items()])


def test_the_growth_summary_counts_the_steps_and_says_what_was_kept():
    history = [*HISTORY_WITH_FINE_TUNING[:3], replace(_step(2, 0), seconds=0.5), _end(2)]
    summary = growth_summary(_growing(), history)
    assert summary["steps"] == 1 and summary["neurons_added"] == [2]
    assert (summary["kept_epoch"], summary["kept_widths"], summary["neurons_kept"]) == (2, [3], [2])
    assert summary["seconds"] == 0.5 and summary["method"] == "pool"
    assert summary["stopped"] == "the epoch budget ran out while growing"


def test_the_growth_summary_says_why_growth_stopped():
    finished = replace(_step(3, 0), reason="validation stopped improving", finished=True)
    assert growth_summary(_growing(), [_epoch(1, [1]), finished])["stopped"] == (
        "validation stopped improving"
    )
    early = replace(_end(1), stopped_early=True)
    assert growth_summary(_growing(), [_epoch(1, [1]), early])["stopped"] == (
        "training stopped early while growing (validation stopped improving)"
    )
    # Only the growing training's end counts: fine-tuning stopping early says nothing of it.
    tuned = [_epoch(1, [1]), _end(1), _epoch(1, [1]), early]
    assert growth_summary(_growing(), tuned)["stopped"] == "the epoch budget ran out while growing"
    assert growth_summary(_growing(), [])["stopped"] == "the epoch budget ran out while growing"
    nothing = growth_summary(_growing(), [])
    assert (nothing["kept_widths"], nothing["kept_epoch"], nothing["neurons_kept"]) == ([1], 0, [0])


def test_the_metrics_hold_the_pruning_and_growth_summaries_only_of_runs_that_had_them(fitted):
    from growml.data import prepare
    from growml.fitting import load_config_table
    from growml.train.trainer import TrainResult

    run = load_run(fitted)
    config = growml.resolve_config(run.config)
    data = prepare(load_config_table(config), config.data, config.seed)
    trained = TrainResult(epochs=3, best_epoch=2, stopped_early=False, seconds=1.0)
    seconds = {"data": 0.25, "wall": 2.0}
    plain = fit_metrics(run, config, data, trained, [], seconds)
    assert "prune" not in plain and "growth" not in plain and "threshold" not in plain
    assert plain["seconds"] == {"data": 0.25, "train": 1.0, "per_epoch": 1.0 / 3, "wall": 2.0}
    assert (plain["epochs"], plain["best_epoch"]) == (3, 2)
    one = replace(trained, epochs=1, best_epoch=1)
    assert fit_metrics(run, config, data, one, [], seconds)["seconds"]["per_epoch"] == 1.0
    pruned = fit_metrics(run, config, data, trained, [], seconds, pruning={"method": "synflow"})
    assert pruned["prune"] == {"method": "synflow"}
    assert plain["test"] == run.metrics["test"]
