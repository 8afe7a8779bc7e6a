"""``tune``: an Optuna study over growml fits, on one machine or many sharing a storage.

The tune directory::

    runs/tune-<study>/
      study.db             the study (SQLite), unless --storage names another database
      tune.json            settings while running; trial counts and the best trials at the end
      trials/trial-NNNN/   the run directory of every completed trial (growml report reads it)
      plots/               history.png, importances.png (and pareto.png for two objectives)

Every check that can fail on the user's input (settings, space, data, the storage and the
study found there) runs before the directory is made, so a mistake leaves nothing behind.
Running ``growml tune`` again with the same directory (or the same storage and study) adds
trials to the study.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from growml import atomic
from growml.config import FitConfig, without_device
from growml.errors import ConfigError, RunError
from growml.runs.workdir import (
    alone,
    claim,
    exclusive,
    in_use,
    partial_of,
    read_manifest,
    share,
)
from growml.scoring import check_settings, ranking_metric
from growml.train.device import training_device
from growml.tune.objective import PARAMS, TRIALS, Objective
from growml.tune.results import (
    TUNE,
    best_trials,
    count_trials,
    draw_plots,
    failures,
    trial_record,
)
from growml.tune.settings import TuneConfig
from growml.tune.space import build_space
from growml.tune.storage import (
    DATABASE,
    check_study,
    connect,
    default_url,
    fail_killed_trials,
    join_workers,
    open_study,
    quiet_optuna,
    shown_url,
    turn,
)
from growml.tune.workers import WorkerJob, run_workers
from growml.version import __version__

FORMAT_VERSION = 1
OBJECTIVES = {"metric": ["metric"], "metric,params": ["metric", PARAMS]}


@dataclass
class TuneProgress:
    """This command's trials so far (``earlier``: the trials the study held before), and the
    study's best value (one objective) or best metric (two)."""

    total: int
    earlier: int = 0
    done: int = 0
    pruned: int = 0
    failed: int = 0
    best: float | None = None

    def add(self, state: str, values: list[float] | None) -> None:
        self.done += 1
        self.pruned += state == "pruned"
        self.failed += state == "fail"
        if state == "complete" and values:
            self.best = values[0] if self.best is None else max(self.best, values[0])


@dataclass
class Tuning:
    """A finished search: ``document`` is the content of ``tune.json``, which names runs
    relative to the tune directory ``path``; ``best_run`` is the best one joined to it."""

    path: Path
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> list[dict[str, Any]]:
        return self.document["best"]

    @property
    def best_run(self) -> Path | None:
        run = self.document["best_run"]
        return self.path / run if run else None


def tune(
    config: FitConfig,
    settings: TuneConfig | None = None,
    *,
    trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study: str | None = None,
    objective: str = "metric",
    metric: str = "auto",
    jobs: int = 1,
    out: str | Path | None = None,
    progress: Callable[[TuneProgress], None] | None = None,
) -> Tuning:
    """Search the settings ``settings.space`` leaves open around ``config`` with Optuna.

    Args:
        config: the settings every trial starts from (data, task, anything not searched).
        settings: the ``tune`` section: space, parameter budget, pruner, seed, heartbeat.
        trials: trials this call runs (other workers on the study add their own).
        timeout: stop starting trials after this many seconds.
        storage: an RDB URL (``postgresql://user@host/db``); default SQLite in ``out``.
        study: the study's name (default: the data's name).
        objective: ``metric`` (maximise the validation metric) or ``metric,params`` (also
            minimise the parameter count: a Pareto front).
        metric: the validation metric (``auto``: accuracy, F1 for a soft F-loss, R²).
        jobs: worker processes on this machine, all on the same storage.
        out: the tune directory (default ``runs/tune-<study>``).
        progress: called with a ``TuneProgress`` before the first trial and after each.
    """
    from growml.data import prepare
    from growml.fitting import load_config_table

    settings = settings or TuneConfig()
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1 (got {trials}).")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs}).")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds (got {timeout}).")
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective must be metric or metric,params (got {objective!r}).")
    objectives = OBJECTIVES[objective]
    if settings.pruner == "hyperband" and PARAMS in objectives:
        raise ConfigError("Optuna prunes single-objective studies only; use --objective metric.")
    table = load_config_table(config)
    check_settings(config, table.task)
    training_device(config)
    binary = table.task == "classification" and len(set(table.target.to_pylist())) == 2
    metric = ranking_metric(metric, table.task, binary, config.loss.name)
    prepare(table, config.data, config.seed)  # a data set too small to split fails here
    space = build_space(config, settings.space, settings.default_space)
    name = study or table.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(
            f"--study {name!r} must be letters, digits, dots, dashes and underscores."
        )
    path = Path(out) if out is not None else Path("runs") / f"tune-{name}"
    directions = ["maximize"] + (["minimize"] if PARAMS in objectives else [])
    identity = _identity(config, table.name, table.task, space.to_dict(), objectives, metric)
    identity["max_params"] = settings.max_params
    url = storage or default_url(path)
    header = {
        "format_version": FORMAT_VERSION,
        "study": name,
        # The embedded default by its file name: the directory may move.
        "storage": shown_url(storage) if storage else DATABASE,
        **identity,
    }
    _check_directory(path, header)
    count = min(jobs, trials)
    lock, created = None, False
    try:
        lock, created = _enter(path)
        # Workers started together take turns to create the tables and the study: the study
        # they join is checked against each of them, and each takes its own sampler seeds.
        with turn(url):
            connection = connect(url, settings.heartbeat_interval, settings.grace_period)
            existing = check_study(connection, name, directions, identity)
            (path / TRIALS).mkdir(parents=True, exist_ok=True)
            found = open_study(connection, name, directions, identity)
            offset = join_workers(found, count)
    except OSError as error:
        _leave(path, lock, created)
        raise RunError(
            f"cannot create the tune directory {str(path)!r}: {error.strerror}."
        ) from None
    except BaseException:
        _leave(path, lock, created)
        raise
    # The directory stays shared by this command until it ends: another that fails on it
    # meanwhile leaves it in place.
    try:
        # Trials of workers killed outright: failed and queued again before anything is counted.
        fail_killed_trials(found)
        with exclusive(path / TRIALS):
            _mark_running(path / TUNE, header)

        started = time.perf_counter()
        _remove_stale_runs(found, path / TRIALS)
        state = TuneProgress(total=trials, earlier=existing, best=_best_value(found))
        if progress:
            progress(state)

        def report(outcome: str, values: list[float] | None) -> None:
            state.add(outcome, values)
            if progress:
                progress(state)

        # Seeded (tune.seed, else the seed setting) unless workers on other machines may join
        # the study: a single worker's study is then reproducible.
        seed = config.seed if settings.seed is None else settings.seed
        seeded = settings.seed is not None or storage is None
        job = Objective(
            config, space, table, metric, objectives, settings.max_params, path / TRIALS
        )
        workers = [
            WorkerJob(
                url=url,
                study=name,
                trials=trials // jobs + (worker < trials % jobs),
                timeout=timeout,
                # Each worker its own stream; a continued study does not repeat its first trials.
                # Counted modulo 2**32, the seeds a sampler takes.
                seed=(seed + offset + worker) % 2**32 if seeded else None,
                pruner=settings.pruner,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                objective=job,
            )
            for worker in range(count)
        ]
        run_workers(workers, report)
        this_run = {
            "trials": state.done,
            "earlier": existing,
            "pruned": state.pruned,
            "failed": state.failed,
            "jobs": len(workers),
            "seconds": time.perf_counter() - started,
        }
        fail_killed_trials(found)
        # Workers sharing the directory take turns (under a lock on trials/: the directory's own
        # is shared), each reading the storage once its turn has come: the last to write has
        # seen every trial the others finished.
        with exclusive(path / TRIALS):
            _remove_stale_runs(found, path / TRIALS)
            document = {**_document(found, header, objectives, metric, path), "this_run": this_run}
            atomic.write_json(path / TUNE, document)
        return Tuning(path=path, document=document)
    finally:
        os.close(lock)


def _enter(path: Path) -> tuple[int, bool]:
    """Make the tune directory ``path`` unless it exists, and lock it shared with the other
    tune commands using it (``share``); the lock's descriptor, and whether this call made it.
    The test of which command made it is ``mkdir`` itself: of two started together, one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            path.mkdir()
            created = True
        except FileExistsError:
            created = False
        try:
            lock = share(path)
        except FileNotFoundError:
            continue  # removed meanwhile by a command that failed on it
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(lock), path.stat()):
                return lock, created
        os.close(lock)  # removed while this command waited for the lock


def _leave(path: Path, lock: int | None, created: bool) -> None:
    """A command that failed before its search began removes the tune directory it made,
    unless another tune command has joined it meanwhile."""
    if lock is None:
        return
    if created and alone(lock):
        shutil.rmtree(path, ignore_errors=True)
    os.close(lock)


def _identity(
    config: FitConfig,
    data: str,
    task: str,
    space: dict[str, Any],
    objectives: list[str],
    metric: str,
) -> dict[str, Any]:
    """What makes two searches one study: the data, the settings (but where each worker
    trains: ``train.device``), the space, the objective."""
    settings = without_device(config.model_dump(mode="json"))
    return {
        "growml_version": __version__,
        "data": data,
        "task": task,
        "objective": objectives,
        "metric": metric,
        "settings": settings,
        "space": space,
    }


def _check_directory(path: Path, header: dict[str, Any]) -> None:
    """``path`` must be new, empty, or the tune directory of this very study and storage."""
    manifest = path / TUNE
    if not claim(path, "tune", [TUNE, DATABASE]) or not manifest.is_file():
        return
    previous = read_manifest(manifest, "choose another --out")
    if (previous.get("study"), previous.get("storage")) != (header["study"], header["storage"]):
        raise RunError(
            f"{str(path)!r} holds study {previous.get('study')!r} of {previous.get('storage')}; "
            "choose another --out for another study."
        )


def _mark_running(manifest: Path, header: dict[str, Any]) -> None:
    """``tune.json`` says a search is running; the findings of earlier ones stay in it."""
    previous = read_manifest(manifest, "choose another --out") if manifest.is_file() else {}
    atomic.write_json(manifest, {**previous, **header, "status": "running"})


def _remove_stale_runs(study: optuna.Study, trials: Path) -> None:
    """Run directories of trials that did not complete (a worker killed mid-write leaves a
    hidden partial one, a trial killed after its fit leaves a whole one): removed once the
    study no longer counts their trial as running."""
    # The listing before the states: a trial started in between is not among the states, and
    # its run, whose writer may not hold it yet, is spared.
    entries = list(trials.iterdir())
    states = {trial.number: trial.state for trial in study.get_trials(deepcopy=False)}
    for entry in entries:
        partial = partial_of(entry)
        match = re.fullmatch(r"trial-(\d+)", partial or entry.name)
        if match is None:
            continue
        state = states.get(int(match[1]))
        if state == TrialState.RUNNING or (state == TrialState.COMPLETE and partial is None):
            continue
        if partial is not None and (state is None or in_use(entry)):
            continue  # a worker may still write it, though its trial was taken for killed
        shutil.rmtree(entry, ignore_errors=True)


def _best_value(study: optuna.Study) -> float | None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max((trial.values[0] for trial in done), default=None)


def _document(
    study: optuna.Study,
    header: dict[str, Any],
    objectives: list[str],
    metric: str,
    path: Path,
) -> dict[str, Any]:
    with quiet_optuna():
        trials = study.get_trials(deepcopy=False)
        best = [trial_record(trial, path) for trial in best_trials(study, objectives)]
    counts = count_trials(trials)
    return {
        **header,
        # Other workers' trials may still be running: this document counts what is finished.
        "status": "running" if counts["running"] else "complete",
        "directions": [direction.name.lower() for direction in study.directions],
        "trials": counts,
        "failures": failures(trials),
        "best": best,
        # Two objectives: of the Pareto front, the most accurate network. Relative to the
        # tune directory, as every trial's run.
        "best_run": max(best, key=lambda record: record["value"])["run"] if best else None,
        "plots": draw_plots(study, path, objectives, metric),
    }
