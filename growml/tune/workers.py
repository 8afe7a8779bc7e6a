"""Worker processes of a study: each opens the storage, joins the study and runs trials.

One worker runs in this process; more are spawned (``--jobs``), each with one torch thread,
its own storage connection and its own sampler seed. Every finished trial is reported back to
this process (the progress display) through a queue.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from growml.errors import GrowmlError
from growml.processes import spawn_context, start_worker, warm_up, worker_pool
from growml.tune.objective import Objective
from growml.tune.storage import (
    connect,
    failed_elsewhere,
    make_pruner,
    make_sampler,
    quiet_optuna,
)

# A finished trial as reported: its state (complete, pruned, fail) and its values.
Report = Callable[[str, "list[float] | None"], None]


@dataclass(frozen=True)
class WorkerJob:
    """What one worker runs: ``trials`` trials of study ``study`` at ``url`` (fewer when
    ``timeout`` seconds pass first)."""

    url: str
    study: str
    trials: int
    timeout: float | None
    seed: int | None
    pruner: str
    heartbeat_interval: int
    grace_period: int
    objective: Objective


def run_worker(job: WorkerJob, report: Report) -> None:
    """Join the study and run the job's trials; a GrowmlError fails its trial, not the worker."""
    with quiet_optuna():
        storage = connect(job.url, job.heartbeat_interval, job.grace_period)
        study = optuna.load_study(
            study_name=job.study,
            storage=storage,
            sampler=make_sampler(job.seed),
            pruner=make_pruner(job.pruner),
        )

        done = 0
        started = time.monotonic()
        ended: list[int] = []  # the trial whose objective last ended, for Optuna to tell

        def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            nonlocal done
            done += 1
            report(trial.state.name.lower(), trial.values)

        def objective(trial: optuna.Trial) -> Any:
            ended.clear()
            try:
                value = job.objective(trial)
            except optuna.TrialPruned:
                ended.append(trial.number)
                raise
            ended.append(trial.number)
            return value

        while done < job.trials:
            left = None if job.timeout is None else job.timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                return
            try:
                study.optimize(
                    objective,
                    n_trials=job.trials - done,
                    timeout=left,
                    catch=(GrowmlError,),
                    callbacks=[finished],
                )
                return
            # Optuna cannot tell the outcome of a trial failed meanwhile: ValueError, which its
            # own clean-up turns into an AssertionError when the objective returned a value.
            except (ValueError, AssertionError):
                if not ended or not failed_elsewhere(study, ended[0]):
                    raise
                # Silent past the grace period (a machine paused, say), this worker was taken
                # for killed: its trial was failed and is retried; this worker goes on.
                done += 1
                report("fail", None)


def run_workers(jobs: Sequence[WorkerJob], report: Report) -> None:
    """Run ``jobs`` side by side (the first in this process when there is only one).

    Ctrl-C reaches this process only; it stops the workers and propagates. A worker's trial
    interrupted that way stays running in the study until its heartbeat goes stale; the next
    trial started anywhere then marks it failed and retries it.
    """
    if len(jobs) == 1:
        warm_up()
        run_worker(jobs[0], report)
        return
    messages = spawn_context().Queue()
    with worker_pool(len(jobs), _start, (os.getpid(), messages)) as pool:
        result = pool.map_async(_run_in_worker, jobs)
        ended = 0
        while ended < len(jobs):
            try:
                message = messages.get(timeout=0.5)
            except queue.Empty:
                continue
            if message is None:
                ended += 1
            else:
                report(*message)
        result.get()


_messages: Any = None


def _start(parent: int, messages: Any) -> None:
    global _messages
    start_worker(parent)
    _messages = messages


def _run_in_worker(job: WorkerJob) -> None:
    try:
        run_worker(job, lambda state, values: _messages.put((state, values)))
    finally:
        _messages.put(None)  # after every report of this job: the queue keeps their order
