"""The numbers agree: what metrics.json, the history, `growml report` and the fit summary say
about the kept network (its widths, epoch, validation loss, neurons) is the same."""

import pytest
from growml.cli import app
from typer.testing import CliRunner

import growml
from growml.events import EpochEnd, kept_epoch


def _fit(tmp_path, *overrides):
    config = growml.resolve_config(overrides=list(overrides))
    result = growml.fit(config, out=tmp_path / "run")
    return result.metrics, growml.load_run(tmp_path / "run").history()


@pytest.mark.parametrize("source", ["digits", "breast-cancer"])
def test_the_kept_network_is_the_one_every_record_describes(tmp_path, source):
    # Trimming would replace the kept network by a smaller one (tests/test_trim.py).
    metrics, history = _fit(
        tmp_path, ("data.source", source), ("train.epochs", 40), ("growth.trim", False)
    )
    growth, kept = metrics["growth"], kept_epoch(history)
    assert growth["kept_epoch"] == kept.epoch == metrics["best_epoch"]
    assert growth["kept_widths"] == kept.hidden_widths == metrics["hidden_widths"]
    assert growth["neurons_kept"] == [
        width - start
        for width, start in zip(kept.hidden_widths, growth["start_widths"], strict=True)
    ]
    assert sum(growth["neurons_kept"]) <= sum(growth["neurons_added"])
    # metrics.json's log-loss is the history's validation loss at the same weights.
    assert metrics["validation"]["log_loss"] == pytest.approx(kept.validation["loss"], 1e-6)
    shown = CliRunner().invoke(app, ["report", str(tmp_path / "run")]).stdout
    assert f"{kept.validation['loss']:.4f} kept" in shown
    assert f"kept {', '.join(map(str, growth['neurons_kept']))}, at epoch {kept.epoch}" in shown


def test_after_pruning_the_report_counts_every_epoch_and_shows_the_final_network(tmp_path):
    metrics, history = _fit(
        tmp_path,
        ("data.source", "iris"),
        ("train.epochs", 30),
        ("prune.method", "synflow"),
        ("prune.structured", True),
        ("prune.compression", 1.5),
    )
    epochs = [event for event in history if isinstance(event, EpochEnd)]
    assert metrics["epochs"] == len(epochs)
    final = kept_epoch(history, final=True)
    assert final.hidden_widths == metrics["hidden_widths"]
    assert metrics["validation"]["log_loss"] == pytest.approx(final.validation["loss"], 1e-6)
    shown = CliRunner().invoke(app, ["report", str(tmp_path / "run")]).stdout
    assert f"epochs run       {len(epochs)}" in shown
    assert f"{final.validation['loss']:.4f} kept" in shown
