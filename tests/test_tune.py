"""growml tune: the space, trial pruning, studies that continue, reproducibility, the best run,
user errors, and workers sharing one PostgreSQL study."""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from growml.cli import app, render
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from typer.testing import CliRunner

import growml
from growml.data import load_table
from growml.errors import ConfigError, RunError
from growml.events import EpochEnd, GrowthStep
from growml.runs.workdir import partial_of
from growml.tune import Objective, TrialPruning, build_space, resolve_tune_config, tune
from growml.tune.objective import SETTLE_EPOCHS
from growml.tune.settings import TuneConfig

runner = CliRunner()
GROWML = str(Path(sys.executable).parent / "growml")
FAST = [("data.source", "iris"), ("train.epochs", 8)]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def fast(*extra, tune_settings=None):
    return resolve_tune_config({"tune": tune_settings or {}}, [*FAST, *extra])


def trial_summary(path):
    """Every trial of the study in ``path``: number, state, settings and values."""
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{path / 'study.db'}")
    return [(t.number, t.state.name, t.params, t.values) for t in study.trials]


@pytest.fixture(scope="module")
def iris_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "iris"
    calls = []
    config, settings = fast()
    result = tune(config, settings, trials=7, out=out, progress=lambda p: calls.append(p.done))
    return result, calls


def test_completed_trials_keep_a_run_and_the_best_is_a_full_run(iris_study, tmp_path):
    result, calls = iris_study
    document = result.document
    assert document["trials"]["total"] == 7 and document["this_run"]["trials"] == 7
    assert calls == list(range(8))
    complete = [number for number, state, _, _ in trial_summary(result.path) if state == "COMPLETE"]
    runs = sorted(p.name for p in (result.path / "trials").iterdir())
    assert runs == [f"trial-{number:04d}" for number in complete]
    values = [trial["value"] for trial in document["best"]]
    assert values == sorted(values, reverse=True)
    best = growml.load_run(result.best_run)
    # The objective is the validation metric of the run it made.
    assert best.metrics["validation"]["accuracy"] == document["best"][0]["value"]
    assert best.metrics["parameters"] == document["best"][0]["parameters"]
    assert best.config["train"]["lr"] == document["best"][0]["settings"]["train.lr"]
    assert json.loads((result.path / "tune.json").read_text()) == document
    for plot in ("history.png", "importances.png"):
        assert (result.path / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    assert invoke("report", result.best_run).exit_code == 0
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5,3,1,0\n"
    )
    predicted = invoke("predict", result.best_run, rows, "--engine", "torch", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["rows"] == 1
    exported = invoke("export", result.best_run, "--out", tmp_path / "best.onnx")
    assert exported.exit_code == 0, exported.output


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return max(trial.intermediate_values, default=0) >= 3


def test_a_pruned_trial_is_stopped_from_the_epoch_events_and_leaves_no_directory(tmp_path):
    config, _ = fast(("train.epochs", 20), ("growth.enabled", False))
    space = build_space(config, {}, True)
    table = load_table("iris")
    objective = Objective(config, space, table, "accuracy", ["metric"], None, tmp_path)
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        assert trial.state == TrialState.PRUNED
        # Judged first at epoch SETTLE_EPOCHS (10) of 20, and stopped there.
        assert sorted(trial.intermediate_values) == list(range(1, SETTLE_EPOCHS + 1))
    assert list(tmp_path.iterdir()) == []


def _epoch(epoch):
    return EpochEnd(epoch, 0.5, {"accuracy": 0.5}, [4], 10, False, 0.01)


def _growth(epoch, added):
    return GrowthStep(
        *(epoch, 0, "pool", added, [], 0.0, 0.0, 0.0, None, None, [], [], [4], 10, 0.01),
        reason="added" if added else "no candidate beats the permutation null",
        finished=False,
    )


def test_trial_pruning_waits_until_growth_has_settled():
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    pruning = TrialPruning(trial, "accuracy", settle=4)
    judged = []
    events = [_epoch(1), _epoch(2), _growth(2, 3), _epoch(3), _growth(3, 0)]
    events += [_epoch(e) for e in range(4, 7)]  # epoch 6: 4 epochs after neurons were added
    for event in events:
        try:
            pruning(event)
        except optuna.TrialPruned:
            judged.append(pruning.step)
    # Reported every epoch; judged (always pruned here) only from epoch 6 on: epochs 1 to 3 are
    # within 4 of the start and of the growth step at epoch 2, and a step adding nothing
    # restarts no wait.
    assert sorted(study.trials[0].intermediate_values) == list(range(1, 7))
    assert judged == [6]


@pytest.mark.slow
def test_a_seeded_sqlite_study_is_reproducible(tmp_path):
    config, settings = fast()
    first = tune(config, settings, trials=4, out=tmp_path / "a")
    second = tune(config, settings, trials=4, out=tmp_path / "b")
    assert trial_summary(first.path) == trial_summary(second.path)
    assert first.best[0]["value"] == second.best[0]["value"]
    assert first.best[0]["settings"] == second.best[0]["settings"]


def test_the_same_out_continues_the_study_with_new_trials(iris_study, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(iris_study[0].path, out)
    config, settings = fast()
    again = tune(config, settings, trials=2, out=out)
    trials = trial_summary(out)
    assert [number for number, *_ in trials] == list(range(9))
    assert again.document["trials"]["total"] == 9 and again.document["this_run"]["trials"] == 2
    old = [params for _, _, params, _ in trials[:7]]
    assert all(params not in old for _, _, params, _ in trials[7:])


def test_two_objectives_give_a_pareto_front_of_accuracy_and_size(tmp_path):
    config, settings = fast(("growth.enabled", False), tune_settings={"pruner": "none"})
    result = tune(config, settings, trials=5, objective="metric,params", out=tmp_path / "p")
    document = result.document
    assert document["directions"] == ["maximize", "minimize"]
    front = document["best"]
    sizes = [trial["parameters"] for trial in front]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    scores = [trial["value"] for trial in front]
    assert scores == sorted(scores)  # a larger network on the front is a more accurate one
    assert document["best_run"] == front[-1]["run"]
    assert "plots/pareto.png" in document["plots"]


def test_max_params_makes_larger_trials_infeasible(tmp_path):
    config, settings = fast(("growth.enabled", False), tune_settings={"max_params": 60})
    result = tune(config, settings, trials=5, out=tmp_path / "c")
    study = optuna.load_study(study_name="iris", storage=f"sqlite:///{result.path / 'study.db'}")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(t.constraints["max_params"] == t.user_attrs["parameters"] - 60 for t in done)
    assert any(t.user_attrs["parameters"] > 60 for t in done)  # widths 8…256 on 4 inputs
    assert all(trial["parameters"] <= 60 and trial["feasible"] for trial in result.best)


def test_space_of_a_recipe_overrides_the_default():
    config, settings = fast(
        ("growth.enabled", False),
        tune_settings={
            "space": {
                "train": {"lr": {"low": 1e-3, "high": 1e-1, "log": True}},
                "train.batch_size": [8, 16],
                "model.hidden_widths": {"low": 2, "high": 6},
                "model.activation": "tanh",
            },
        },
    )
    space = build_space(config, settings.space, settings.default_space)
    assert space.distributions["train.lr"] == FloatDistribution(1e-3, 1e-1, log=True)
    assert space.distributions["train.batch_size"] == CategoricalDistribution([8, 16])
    assert space.distributions["model.hidden_widths"] == IntDistribution(2, 6)
    assert "model.init_scale" in space.distributions and space.fixed == {"model.activation": "tanh"}
    only = build_space(config, {"train.epochs": {"low": 2, "high": 5}}, False)
    assert list(only.distributions) == ["train.epochs"]
    trial = optuna.trial.FixedTrial({"train.epochs": 4})
    assert only.suggest(trial, config) == [("train.epochs", 4)]
    wide = build_space(
        config.model_copy(
            update={"model": config.model.model_copy(update={"hidden_widths": [1, 1]})}
        ),
        {"model.hidden_widths": [3]},
        False,
    )
    assert wide.suggest(optuna.trial.FixedTrial({"model.hidden_widths": 3}), config) == [
        ("model.hidden_widths", [3])
    ]


def test_the_tune_section_stays_out_of_the_fit_settings():
    config, settings = resolve_tune_config(
        {"data": {"source": "wine"}, "tune": {"pruner": "hyperband"}},
        [("tune.max_params", 500), ("train.lr", 0.01)],
    )
    assert settings == TuneConfig(pruner="hyperband", max_params=500)
    assert config.train.lr == 0.01 and "tune" not in config.model_dump()


def test_cli_prints_the_best_trials_and_json_is_one_document(tmp_path):
    out = tmp_path / "t"
    result = invoke("tune", "wine", "--epochs", "5", "--trials", "3", "--out", out)
    assert result.exit_code == 0, result.output
    for text in ("best trials", "validation accuracy", "best run", "3 in the study"):
        assert text in result.stdout
    again = invoke("tune", "wine", "--epochs", "5", "--trials", "1", "--out", out, "--json")
    assert again.exit_code == 0, again.output
    document = json.loads(again.stdout)
    assert document["trials"]["total"] == 4 and document["study"] == "wine"
    assert (out / document["best_run"]).is_dir()
    # The command that continues the study says after how many trials.
    assert document["this_run"]["earlier"] == 3
    assert render.tune_summary(document, str(out))["this run"].endswith(", after 3 earlier")


@pytest.mark.slow
def test_local_workers_share_the_study(tmp_path):
    config, settings = fast()
    result = tune(config, settings, trials=4, jobs=2, out=tmp_path / "j")
    trials = trial_summary(result.path)
    assert [number for number, *_ in trials] == [0, 1, 2, 3]
    assert {state for _, state, _, _ in trials} <= {"COMPLETE", "PRUNED"}
    assert result.document["this_run"] == {**result.document["this_run"], "trials": 4, "jobs": 2}
    assert len({json.dumps(params, sort_keys=True) for _, _, params, _ in trials}) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1 (got 0)"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--timeout", "0"], "--timeout must be a positive number"),
        (["--objective", "params"], "--objective must be metric or metric,params"),
        (["--metric", "r2"], "--metric r2 does not apply"),
        (["--study", "a b"], "--study 'a b' must be letters"),
        (["--storage", "postgresql://growml@127.0.0.1:1/none"], "cannot open the storage"),
        (["--storage", "sqlite:////no/such/folder/study.db"], "cannot open the storage"),
        (["--storage", "not a url"], "is not a database URL"),
        (["--set", "tune.nope=1"], "unknown setting 'tune.nope'"),
        (["--set", "tune.pruner=always"], "setting 'tune.pruner' is invalid"),
        (["--set", "tune.space={train.nope: [1, 2]}"], "unknown setting 'train.nope'"),
        (["--set", "tune.space={train.lr: {low: 0.1, high: 0.01}}"], "is empty"),
        (["--set", "tune.space={train.lr: []}"], "the list of choices is empty"),
        (["--set", "tune.space={train.lr: {low: 0, high: 1, log: true}}"], "needs low above 0"),
        (["--set", "tune.space={train.lr: {low: -1, high: 1}}"], "greater than 0"),
        (["--set", "tune.space={train.optimizer: {low: 1, high: 2}}"], "not a number"),
        (["--set", "tune.space={seed: [1, 2]}"], "cannot search 'seed'"),
        (["--set", "tune.space={growth.max_step: [0.5, 1]}"], "moved to 'growth.pool.max_step'"),
        (["--set", "tune.space={model.hidden_widths: [0, 4]}"], "between 1 and"),
        (["--set", "tune.default_space=false"], "leaves nothing to search"),
        (["--set", "tune.pruner=hyperband", "--objective", "metric,params"], "single-objective"),
        (
            ["--set", "tune.heartbeat_interval=30", "--set", "tune.grace_period=20"],
            "tune.grace_period (20 s) must be longer than tune.heartbeat_interval (30 s)",
        ),
        (["--set", "train.nope=1"], "unknown setting 'train.nope'"),
    ],
)
def test_user_errors_are_one_sentence_and_leave_no_directory(tmp_path, args, message):
    out = tmp_path / "t"
    result = invoke("tune", "iris", "--epochs", "2", *args, "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not out.exists()


def test_no_data_is_a_user_error(tmp_path):
    result = invoke("tune", "--out", tmp_path / "t")
    assert result.exit_code == 2 and "no data given" in result.output


def test_a_study_of_other_directions_or_settings_is_refused(iris_study, tmp_path):
    out = tmp_path / "t"
    shutil.copytree(iris_study[0].path, out)
    before = sorted(p.name for p in out.rglob("*"))
    result = invoke("tune", "iris", "--epochs", "8", "--objective", "metric,params", "--out", out)
    assert result.exit_code == 2
    assert "already exists and optimises maximize, not maximize, minimize" in result.output
    result = invoke("tune", "iris", "--epochs", "9", "--out", out)
    assert result.exit_code == 2 and "other data, settings or space" in result.output
    assert sorted(p.name for p in out.rglob("*")) == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    result = invoke("tune", "iris", "--out", tmp_path / "notes")
    assert result.exit_code == 2 and "not a growml tune directory" in result.output


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path):
    config, settings = fast(
        ("growth.enabled", False),
        ("train.optimizer", "sgd"),
        tune_settings={"space": {"train.lr": [1e6, 1e7]}, "default_space": False},
    )
    result = tune(config, settings, trials=3, out=tmp_path / "f")
    assert result.document["trials"]["fail"] == 3 and result.best == []
    assert result.best_run is None
    reasons = result.document["failures"]
    assert sum(reasons.values()) == 3
    assert all(reason.startswith("training diverged at epoch") for reason in reasons)
    assert list((tmp_path / "f" / "trials").iterdir()) == []
    table = render.tune_table(result.document)
    assert table.caption == "no trial completed"


def _postgres_trials(url, study):
    return optuna.load_study(study_name=study, storage=url).trials


def _worker(url, study, out, trials, *settings):
    command = [GROWML, "tune", "iris", "--storage", url, "--study", study, "--out", out]
    command += ["--trials", str(trials), "--json"]
    command += ["--set", "tune.heartbeat_interval=1", "--set", "tune.grace_period=2"]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(postgres_url, tmp_path):
    workers = [
        _worker(postgres_url, "pair", tmp_path / f"w{i}", 3, "train.epochs=5") for i in (0, 1)
    ]
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert json.loads(stdout)["this_run"]["trials"] == 3
    trials = _postgres_trials(postgres_url, "pair")
    assert sorted(trial.number for trial in trials) == list(range(6))
    assert {trial.state for trial in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    runs = {p.name for i in (0, 1) for p in (tmp_path / f"w{i}" / "trials").iterdir()}
    done = {f"trial-{t.number:04d}" for t in trials if t.state == TrialState.COMPLETE}
    assert runs == done


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_the_study_usable(postgres_url, tmp_path):
    # Trials of a second or two: one batch per epoch, thousands of epochs.
    slow = (
        "train.epochs=2500",
        "train.early_stopping=false",
        "tune.pruner=none",
        "tune.space={train.batch_size: 128}",
    )
    out = tmp_path / "k"
    victim = _worker(postgres_url, "kill", out, 50, *slow)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trials = _postgres_trials(postgres_url, "kill") if (out / "tune.json").exists() else []
        if any(t.state == TrialState.RUNNING for t in trials):
            break
        time.sleep(0.1)
    # Mid-trial, once its first heartbeat is written: Optuna records it a moment after the
    # trial appears, and a trial killed before any heartbeat has none to go stale.
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    before = _postgres_trials(postgres_url, "kill")
    killed = [t.number for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1, [t.state for t in before]
    time.sleep(2.5)  # past the grace period: the running trial is now stale
    settings = [item for setting in slow for item in ("--set", setting)]
    result = invoke(
        *("tune", "iris", "--storage", postgres_url, "--study", "kill", "--out", out),
        *("--trials", "2", "--set", "tune.heartbeat_interval=1", *settings, "--json"),
        *("--set", "tune.grace_period=2"),
    )
    assert result.exit_code == 0, result.output
    after = {t.number: t for t in _postgres_trials(postgres_url, "kill")}
    assert len(after) == len(before) + 2
    assert after[killed[0]].state == TrialState.FAIL
    retry = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed[0]]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == after[killed[0]].params
    assert not any(t.state == TrialState.RUNNING for t in after.values())
    names = sorted(p.name for p in (out / "trials").iterdir())
    complete = [n for n, t in sorted(after.items()) if t.state == TrialState.COMPLETE]
    assert names == [f"trial-{n:04d}" for n in complete]  # the killed trial's partial run is gone


def test_the_config_error_for_a_bad_space_names_the_setting():
    config, _ = fast()
    with pytest.raises(ConfigError, match="tune.space train.lr: a range is"):
        build_space(config, {"train.lr": {"low": 1}}, True)


def _tune_process(out, *args):
    command = [GROWML, "tune", "iris", "--out", str(out), *map(str, args), "--json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return json.loads(stdout)


@pytest.mark.slow
def test_workers_started_together_on_a_new_sqlite_study_all_work(tmp_path):
    out = tmp_path / "together"
    workers = [_tune_process(out, "--trials", 1, "--epochs", 3) for _ in range(3)]
    documents = [_finish(worker) for worker in workers]
    assert all(document["this_run"]["trials"] == 1 for document in documents)
    trials = trial_summary(out)
    assert [number for number, *_ in trials] == [0, 1, 2]
    # Each worker samples with its own seed: three different trials, not one three times.
    assert len({json.dumps(params, sort_keys=True) for _, _, params, _ in trials}) == 3
    final = json.loads((out / "tune.json").read_text())
    assert final["trials"]["total"] == 3 and final["trials"]["running"] == 0
    assert final["status"] == "complete"


@pytest.mark.slow
def test_workers_started_together_on_a_new_postgresql_database_all_work(postgres_url, tmp_path):
    import psycopg

    with psycopg.connect(
        postgres_url.replace("postgresql://", "postgres://"), autocommit=True
    ) as db:
        db.execute("CREATE DATABASE together")
    url = postgres_url.rsplit("/", 1)[0] + "/together"
    workers = [_worker(url, "together", tmp_path / f"w{i}", 1, "train.epochs=3") for i in range(3)]
    for worker in workers:
        assert _finish(worker)["this_run"]["trials"] == 1
    trials = _postgres_trials(url, "together")
    assert sorted(trial.number for trial in trials) == [0, 1, 2]


def _wait_for_a_running_trial(out, seconds=120):
    """Wait until the study in ``out`` has a trial under way (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (out / "tune.json").is_file():
        time.sleep(0.2)
    while time.monotonic() < deadline and not any(
        state == "RUNNING" for _, state, _, _ in trial_summary(out)
    ):
        time.sleep(0.2)


def _pause_outside_a_transaction(process, database, attempts=200):
    """SIGSTOP ``process`` at a moment it holds no lock on the SQLite ``database`` (it writes
    there every epoch; paused mid-write, it would lock every other worker out)."""
    for _ in range(attempts):
        process.send_signal(signal.SIGSTOP)
        connection = sqlite3.connect(database, timeout=0)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            connection.rollback()
            return
        except sqlite3.OperationalError:
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            connection.close()
    raise AssertionError(f"the worker never left its transaction on {database}")


@pytest.mark.slow
def test_the_worker_that_ends_first_says_how_many_trials_still_run(tmp_path):
    # The first worker is paused (SIGSTOP) while its first trial runs, so that trial is still
    # running when the second worker's one trial ends, however the two trials' times fall; the
    # grace period is long enough that the paused trial is not taken for a killed one.
    out = tmp_path / "shared"
    settings = [
        *("--set", "train.epochs=3000", "--set", "train.early_stopping=false"),
        *("--set", "tune.pruner=none", "--set", "tune.space={train.batch_size: 128}"),
        *("--set", "tune.grace_period=600"),
    ]
    first = _tune_process(out, "--trials", 2, *settings)
    _wait_for_a_running_trial(out)
    _pause_outside_a_transaction(first, out / "study.db")
    try:
        second = invoke("tune", "iris", "--out", out, "--trials", 1, *settings)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.exit_code == 0, second.output
    assert "1 still running elsewhere" in second.stdout
    assert json.loads((out / "tune.json").read_text())["status"] == "running"
    final = _finish(first)
    assert final["trials"]["total"] == 3 and final["trials"]["complete"] == 3
    assert final["status"] == "complete" and final == json.loads((out / "tune.json").read_text())


@pytest.mark.slow
def test_a_killed_worker_trial_is_failed_and_retried_by_the_next_sqlite_worker(tmp_path):
    out = tmp_path / "killed"
    settings = [
        *("--set", "train.epochs=1500", "--set", "train.early_stopping=false"),
        *("--set", "tune.pruner=none", "--set", "tune.space={train.batch_size: 128}"),
        *("--set", "tune.heartbeat_interval=1", "--set", "tune.grace_period=2"),
    ]
    victim = _tune_process(out, "--trials", 5, *settings)
    _wait_for_a_running_trial(out)
    time.sleep(1.0)  # past its first heartbeat
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    killed = [number for number, state, _, _ in trial_summary(out) if state == "RUNNING"]
    assert len(killed) == 1
    assert any(partial_of(path) for path in (out / "trials").iterdir())  # its run, half made
    # Well past the grace period (2 s after its last heartbeat), so that the next trial finds
    # it stale and retries it even on a loaded machine.
    time.sleep(4.0)
    result = invoke("tune", "iris", "--out", out, "--trials", 1, *settings, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["trials"]["fail"] == 1 and document["trials"]["running"] == 0
    assert document["failures"] == {"the worker stopped mid-trial": 1}
    retried = [trial for trial in document["best"] if trial["retry_of"] == killed[0]]
    assert len(retried) == 1 and (out / retried[0]["run"]).is_dir()
    assert not any(partial_of(path) for path in (out / "trials").iterdir())


def test_a_failing_tune_leaves_the_directory_another_tune_has_joined(
    iris_study, tmp_path, monkeypatch
):
    from growml.tune import search

    out = tmp_path / "t"
    real_turn = search.turn
    others = []

    @contextlib.contextmanager
    def joined_meanwhile(url):
        # Another tune command on the same --out, started together with this one: it filled
        # the directory this one made and holds it while it searches.
        shutil.copytree(iris_study[0].path, out, dirs_exist_ok=True)
        descriptor = os.open(out, os.O_RDONLY)
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        others.append(descriptor)
        with real_turn(url):
            yield

    monkeypatch.setattr(search, "turn", joined_meanwhile)
    config, settings = fast(("train.epochs", 9))
    try:
        with pytest.raises(RunError, match="other data, settings or space"):
            tune(config, settings, trials=1, out=out)
        assert (out / "study.db").is_file() and (out / "trials").is_dir()
    finally:
        for descriptor in others:
            os.close(descriptor)


def test_a_failing_tune_alone_removes_the_directory_it_made(tmp_path, monkeypatch):
    from growml.tune import search

    def refused(*args):
        raise RunError("the study is refused.")

    monkeypatch.setattr(search, "check_study", refused)
    config, settings = fast()
    with pytest.raises(RunError, match="refused"):
        tune(config, settings, trials=1, out=tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_the_largest_seed_continues_a_study_and_starts_two_workers(tmp_path):
    args = ["--trials", "2", "--set", "train.epochs=2", "--set", f"tune.seed={2**32 - 1}"]
    for _ in range(2):
        result = invoke("tune", "iris", *args, "--out", tmp_path / "t")
        assert result.exit_code == 0, result.output
    result = invoke("tune", "iris", *args, "--jobs", "2", "--out", tmp_path / "u")
    assert result.exit_code == 0, result.output
    assert [state for _, state, _, _ in trial_summary(tmp_path / "t")] == ["COMPLETE"] * 4


def test_runs_are_named_from_the_tune_directory_whatever_the_current_one(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first = invoke("tune", "iris", "--epochs", 2, "--trials", 2, "--out", "t")
    assert first.exit_code == 0, first.output
    monkeypatch.chdir(tmp_path / "b")
    again = invoke("tune", "iris", "--epochs", 2, "--trials", 1, "--out", "../a/t")
    assert again.exit_code == 0, again.output
    manifest = tmp_path / "a" / "t" / "tune.json"
    document = json.loads(manifest.read_text())
    assert [trial["run"] for trial in document["best"]] == [
        f"trials/trial-{trial['number']:04d}" for trial in document["best"]
    ]
    assert len(document["best"]) == 3
    assert (tmp_path / "a" / "t" / document["best_run"]).is_dir()
    assert f"best run  ../a/t/{document['best_run']}" in again.stdout
    # tune.json of an earlier growml: runs relative to the directory growml tune ran in.
    manifest.write_text(json.dumps({**document, "best_run": f"t/{document['best_run']}"}))
    shown = invoke("report", "../a/t")
    assert shown.exit_code == 0, shown.output
    assert f"best run  ../a/t/{document['best_run']}" in shown.stdout


def test_stale_runs_spare_the_partials_a_worker_may_not_hold_yet(tmp_path):
    from growml.tune.search import _remove_stale_runs

    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), state=TrialState.FAIL)  # trial 0
    study.tell(study.ask(), 1.0)  # trial 1
    (tmp_path / "trial-0001").mkdir()

    def partial(number, age):
        path = Path(tempfile.mkdtemp(prefix=f".trial-{number:04d}.partial-", dir=tmp_path))
        os.utime(path, (time.time() - age, time.time() - age))
        return path

    stale = partial(0, 10)  # its trial failed long ago: a killed worker left it
    just_made = partial(0, 0)  # made an instant ago: its writer may not hold it yet
    after = partial(2, 10)  # of a trial the study did not hold when it was read
    _remove_stale_runs(study, tmp_path)
    assert not stale.exists()
    assert just_made.exists() and after.exists() and (tmp_path / "trial-0001").is_dir()


def test_a_worker_taken_for_killed_goes_on_to_its_next_trial(tmp_path):
    """A worker silent past the grace period has its trial failed by another; when it comes
    back with the trial's value, Optuna cannot record it: the worker counts the trial as
    failed (it is retried) and goes on, without a traceback."""
    from growml.tune.workers import WorkerJob, run_worker

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="taken-over")
    calls = []

    def objective(trial):
        calls.append(trial.number)
        if len(calls) == 1:  # meanwhile another worker fails the trial
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return float(len(calls))

    job = WorkerJob(url, "taken-over", 2, None, 0, "none", 60, 120, objective)
    reports = []
    run_worker(job, lambda state, values: reports.append(state))
    assert calls == [0, 1] and reports == ["fail", "complete"]
    states = [
        trial.state for trial in optuna.load_study(study_name="taken-over", storage=url).trials
    ]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]
