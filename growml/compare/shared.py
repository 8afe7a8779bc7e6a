"""A comparison shared by workers on many machines through one Optuna study.

The study (``--storage URL --study NAME``) holds the whole comparison:

* its plan, a user attribute of the study (``growml_compare``): the data, the settings, the
  widths, the seeds and the members' keys; a worker whose plan differs is refused;
* one trial per member, queued (``WAITING``) with the member's key as a user attribute.
  ``study.ask`` hands a waiting trial to one worker only (the storage moves it to ``RUNNING``
  in a transaction that checks it was still waiting), so each member is trained once;
* the member's record (what ``members/<key>.json`` holds in a local comparison) in the user
  attributes of its completed trial, so that any worker builds the table from the storage.

Training goes through ``study.optimize``: Optuna's heartbeats mark a running trial alive, and a
trial silent for the grace period is failed by the next worker that looks (its worker was
killed). Every queueing happens in the database's ``turn`` (the lock all growml workers of a
database share), by one rule: a member with no trial waiting, running or complete is queued.
So no member is queued twice, a killed worker's member is queued again once its trial is
failed, and a plan whose creator was killed while queueing is completed by the next worker.

A worker with nothing left to claim waits for the members other workers are training, taking
over any whose worker dies, and returns once every member is complete.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from growml.compare.members import Member
from growml.errors import RunError
from growml.tune.storage import (
    connect,
    fail_killed_trials,
    failed_elsewhere,
    quiet_optuna,
    turn,
)

PLAN = "growml_compare"
MEMBER = "member"
RECORD = "record"
WORKER = "worker"
# A member whose trials failed this often (workers killed on it, or a bug that stopped them)
# is not queued again: the comparison stops with a sentence instead of feeding it workers.
MAX_ATTEMPTS = 3
# Seconds between two looks at the study of a worker with nothing left to claim: it reports
# the members finished elsewhere, and takes over those of killed workers.
POLL_SECONDS = 1.0

Train = Callable[[Member], dict[str, Any]]
Progress = Callable[[int, int, "dict[str, Any] | None"], None]


@dataclass(frozen=True)
class SharedStudy:
    """Where a shared comparison lives: study ``name`` in the storage at ``url``, and how
    often a running member's worker heartbeats (``heartbeat_interval``) and how long a silent
    one has before its member is taken for killed (``grace_period``), in seconds."""

    url: str
    name: str
    heartbeat_interval: int
    grace_period: int


def join(shared: SharedStudy, plan: dict[str, Any], keys: Sequence[str]) -> optuna.Study:
    """Open the study ``shared`` names: create it with ``plan`` and queue the members ``keys``,
    or check that it holds the same plan. A study of another plan, or of something else, is
    refused in one sentence before anything is written to it."""
    with turn(shared.url):
        storage = connect(shared.url, shared.heartbeat_interval, shared.grace_period, retry=False)
        _check_plan(storage, shared.name, plan)
        with quiet_optuna():
            study = optuna.create_study(
                storage=storage, study_name=shared.name, direction="minimize", load_if_exists=True
            )
        if PLAN not in study.user_attrs:
            study.set_user_attr(PLAN, plan)
        _queue_missing(study, keys)
    return study


def train_shared(
    study: optuna.Study,
    shared: SharedStudy,
    members: Sequence[Member],
    train: Train,
    jobs: int,
    progress: Progress | None = None,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Claim the study's waiting members and ``train`` them, ``jobs`` at a time, until every
    member is complete, by this worker or others; return every member's record by key and
    the keys of those trained here.

    ``progress(done, total, record)`` counts the members complete in the study: once with
    those already complete (``record`` None), then once per member as any worker finishes it.
    """
    by_key = {member.key: member for member in members}
    keys = list(by_key)
    trained: list[str] = []
    seen: dict[str, dict[str, Any]] = {}
    ended: list[tuple[int, str]] = []  # the trial and member trained last, for Optuna to tell
    lock = threading.Lock()

    def update() -> None:
        with lock:
            for key, record in _records(study, keys).items():
                if key not in seen:
                    seen[key] = record
                    if progress:
                        progress(len(seen), len(keys), record)

    def objective(trial: optuna.Trial) -> float:
        ended.clear()
        key = trial.user_attrs.get(MEMBER)
        if key is None:
            raise optuna.TrialPruned()  # asked as the last waiting member was claimed elsewhere
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        record = train(by_key[key])
        ended[:] = [(trial.number, key)]
        trial.set_user_attr(RECORD, record)
        trained.append(key)
        return record["seconds"]["wall"]

    def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        update()
        if not _tidy(study, shared, keys):
            study.stop()

    seen.update(_records(study, keys))
    if progress:
        progress(len(seen), len(keys), None)
    while True:
        waiting = _tidy(study, shared, keys)
        update()
        if len(seen) == len(keys):
            return {key: seen[key] for key in keys}, trained
        if waiting:
            with quiet_optuna():
                try:
                    study.optimize(objective, n_jobs=jobs, callbacks=[finished])
                # Optuna cannot tell the outcome of a trial failed meanwhile: ValueError, which
                # its own clean-up turns into an AssertionError when the objective returned.
                except (ValueError, AssertionError):
                    if not ended or not failed_elsewhere(study, ended[0][0]):
                        raise
                    # Silent past the grace period (a machine paused, say), this worker was
                    # taken for killed: its record is dropped, and the member queued again.
                    if ended[0][1] in trained:
                        trained.remove(ended[0][1])
                    ended.clear()
        else:
            time.sleep(POLL_SECONDS)  # members still run elsewhere


def _tidy(study: optuna.Study, shared: SharedStudy, keys: Sequence[str]) -> bool:
    """Fail the trials of killed workers and queue their members again, in the database's
    turn; whether any member is waiting."""
    with turn(shared.url):
        fail_killed_trials(study)
        _queue_missing(study, keys)
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _check_plan(storage: RDBStorage, name: str, plan: dict[str, Any]) -> None:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return
    attrs = storage.get_study_user_attrs(study_id)
    recorded = attrs.get(PLAN)
    if recorded == plan:
        return
    if isinstance(recorded, dict):
        differs = next((key for key in plan if recorded.get(key) != plan[key]), "members")
        raise RunError(
            f"study {name!r} holds a comparison with other {differs.replace('_', ' ')} than "
            "this one; run the command that started it, or choose another --study."
        )
    if attrs or storage.get_all_trials(study_id, deepcopy=False):
        raise RunError(
            f"study {name!r} holds something other than a growml comparison; choose another "
            "--study."
        )


def _queue_missing(study: optuna.Study, keys: Sequence[str]) -> None:
    """Queue every member with no trial waiting, running or complete (call it in a turn)."""
    trials = study.get_trials(deepcopy=False)
    taken = {trial.user_attrs.get(MEMBER) for trial in trials if trial.state != TrialState.FAIL}
    for key in keys:
        if key in taken:
            continue
        failures = sum(trial.user_attrs.get(MEMBER) == key for trial in trials)
        if failures >= MAX_ATTEMPTS:
            raise RunError(
                f"member {key!r} of study {study.study_name!r} failed {failures} times (its "
                "workers were killed or stopped on an error); see their output, then choose "
                "another --study to start afresh."
            )
        study.enqueue_trial({}, user_attrs={MEMBER: key})


def _records(study: optuna.Study, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The records of the members complete in ``study``, by key (the first of a member
    completed twice: a live worker taken for killed)."""
    records: dict[str, dict[str, Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = trial.user_attrs.get(MEMBER)
        if key in keys and RECORD in trial.user_attrs:
            records.setdefault(key, trial.user_attrs[RECORD])
    return records
