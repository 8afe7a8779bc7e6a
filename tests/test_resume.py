"""Kill -9 loses at most the work since the last checkpoint, and `growml fit --resume` ends
exactly where the uninterrupted run ends: killed real `growml fit` processes, resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from growml.cli import app
from typer.testing import CliRunner

from growml.checkpoint import CHECKPOINT, read_checkpoint
from growml.runs.workdir import hold

GROWML = str(Path(sys.executable).parent / "growml")
FIT = ["fit", "digits", "--set", "train.checkpoint_seconds=0", "--set", "train.threads=1"]


def _growml(*args, **kwargs):
    return subprocess.run(
        [GROWML, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs
    )


def _partials(out):
    return list(out.parent.glob(f".{out.name}.partial-*"))


def _start_and_stop(out, epoch, stop=signal.SIGKILL, extra=()):
    """Start `growml fit`, and stop it with ``stop`` once a checkpoint at ``epoch`` or later
    is written; returns the checkpoint's epoch and the process's result."""
    process = subprocess.Popen(
        [GROWML, *FIT, *extra, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline, reached = time.monotonic() + 120, None
    while time.monotonic() < deadline and process.poll() is None:
        found = [p for p in _partials(out) if (p / CHECKPOINT).is_file()]
        if found:
            try:
                reached = read_checkpoint(found[0]).state["trainer"]["epoch"]
            except Exception:  # noqa: BLE001 - being replaced at this instant: look again
                reached = None
            if reached is not None and reached >= epoch:
                break
        time.sleep(0.01)
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    assert reached is not None and reached >= epoch, stderr
    # Epochs take milliseconds: a later checkpoint may have replaced the one read above
    # before the signal arrived. The one left on disk is what a resume goes on from.
    left = [p for p in _partials(out) if (p / CHECKPOINT).is_file()]
    if left:
        reached = read_checkpoint(left[0]).state["trainer"]["epoch"]
    return reached, process.returncode, stderr


def _without_seconds(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in event.items() if k != "seconds"} for event in lines]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    assert _growml(*FIT, "--out", out).returncode == 0
    return out


def _assert_same_run(resumed, reference):
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((resumed / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        for key, value in a[split].items():
            assert b[split][key] == pytest.approx(value, abs=1e-6), (split, key)
    for key in ("hidden_widths", "parameters", "epochs", "best_epoch"):
        assert b[key] == a[key]
    assert _without_seconds(resumed / "history.jsonl") == _without_seconds(
        reference / "history.jsonl"
    )
    assert not (resumed / CHECKPOINT).exists() and not _partials(resumed)


@pytest.mark.slow
@pytest.mark.parametrize("epoch", [3, 9, 30])  # at the first growth step, while growing, after
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(
    tmp_path, uninterrupted, epoch
):
    out = tmp_path / "run"
    reached, code, _ = _start_and_stop(out, epoch)
    assert code == -signal.SIGKILL and not out.exists() and len(_partials(out)) == 1
    resumed = _growml(*FIT, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed after epoch {reached}, hidden widths" in resumed.stderr
    _assert_same_run(out, uninterrupted)


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_keeps_the_checkpoint(tmp_path, uninterrupted):
    out = tmp_path / "run"
    _, code, stderr = _start_and_stop(out, 5, stop=signal.SIGTERM)
    assert code == 130 and "interrupted" in stderr and "--resume" in stderr, stderr
    assert not out.exists() and len(_partials(out)) == 1
    assert _growml(*FIT, "--out", out, "--resume").returncode == 0
    _assert_same_run(out, uninterrupted)


@pytest.mark.slow
def test_an_interrupted_run_is_never_left_silently_and_settings_must_match(tmp_path):
    out = tmp_path / "run"
    _start_and_stop(out, 3)
    other = _growml(*FIT, "--out", out, "--resume", "--set", "train.lr=0.002")
    assert other.returncode == 2 and "started with other settings" in other.stderr
    assert other.stderr.strip().count("\n") == 0
    fresh = _growml(*FIT, "--out", out, "--epochs", "5")
    assert fresh.returncode == 0
    assert "an interrupted run of" in fresh.stderr and "--resume" in fresh.stderr
    assert (out / "metrics.json").is_file() and len(_partials(out)) == 1


def test_what_a_run_killed_before_its_first_checkpoint_left_is_removed_at_the_next_start(
    tmp_path,
):
    out = tmp_path / "run"
    left, running = tmp_path / ".run.partial-left", tmp_path / ".run.partial-running"
    for partial in (left, running):
        partial.mkdir()
        (partial / "history.jsonl").write_text("")
        os.utime(partial, (time.time() - 60, time.time() - 60))
    lock = hold(running)  # a run of the same --out still under way in another process
    try:
        result = CliRunner().invoke(app, ["fit", "iris", "--epochs", "2", "--out", str(out)])
    finally:
        os.close(lock)
    assert result.exit_code == 0, result.output
    assert "interrupted" not in result.output and "delete" not in result.output
    assert _partials(out) == [running] and (out / "metrics.json").is_file()
