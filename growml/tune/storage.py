"""Where a study lives: Optuna's RDB storage, SQLite by default, PostgreSQL to scale out.

Every worker, on this machine or another, opens the storage itself from its URL and joins the
study by name (``load_if_exists``); workers that may meet on a new database take turns
(``turn``) to create it. Heartbeats let a worker that dies mid-trial (``kill -9``, a lost
machine) be noticed: a running trial silent for the grace period is marked failed by the next
worker that starts, or starts a trial, and retried once (Optuna's
``RetryHeartbeatStaleTrialCallback``).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from growml.errors import ConfigError, RunError
from growml.runs.workdir import exclusive

DATABASE = "study.db"
IDENTITY = "growml"
# Seconds to wait for a PostgreSQL server, and for SQLite's lock when workers write at once.
CONNECT_TIMEOUT = 10
SQLITE_LOCK_TIMEOUT = 60


def default_url(out: Path) -> str:
    """SQLite in the tune directory: a second ``growml tune`` there continues the study."""
    return f"sqlite:///{(out / DATABASE).resolve()}"


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages and tune.json."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise ConfigError(
            f"--storage {url!r} is not a database URL; use one like sqlite:///study.db or "
            "postgresql://user@host/database."
        ) from None


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """No experimental-feature warnings, and no per-trial log lines: growml reports trials."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


# Tries at opening a storage whose tables something else is creating at the same moment (a
# process that does not take turns, like optuna-dashboard).
SCHEMA_ATTEMPTS = 5
# Any fixed 64-bit key: the PostgreSQL advisory lock that growml workers take turns under.
TURN_LOCK_KEY = 0x67726F776D6C
# What the losers of a race to create Optuna's tables see, by database: a table or type that
# already exists, or a second row of the schema's version.
_SCHEMA_RACE = ("already exists", "duplicate", "unique constraint failed")
# The workers that have joined a study: each takes the next sampler seeds.
WORKERS = "growml_workers"


def connect(
    url: str, heartbeat_interval: int, grace_period: int, *, retry: bool = True
) -> RDBStorage:
    """Open the storage at ``url``, creating Optuna's tables if it is new; ConfigError in one
    sentence when it cannot be reached. Optuna creates its tables, version row and migration
    stamp without guarding against another process doing the same: a worker that may meet
    others on a new database connects in its ``turn``.

    ``retry``: a trial taken for killed is queued again once, by whichever worker finds it
    stale; without, the caller queues again what it needs (a comparison, in its turn)."""
    with _storage_errors(url):
        return _open_storage(url, _engine_options(url), heartbeat_interval, grace_period, retry)


@contextlib.contextmanager
def turn(url: str) -> Iterator[None]:
    """Hold the lock that workers of the database at ``url`` take turns under (creating the
    tables, joining a study): a lock on the SQLite file itself (SQLite's own locks are of
    another kind and do not conflict), a PostgreSQL advisory lock for the length of a
    transaction; none for other databases."""
    from sqlalchemy.engine import make_url

    with _storage_errors(url):
        backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        with _sqlite_turn(url):
            yield
    elif backend == "postgresql":
        with _postgresql_turn(url):
            yield
    else:
        yield


@contextlib.contextmanager
def _sqlite_turn(url: str) -> Iterator[None]:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    database = Path(name or "")
    if name in (None, "", ":memory:") or not database.parent.is_dir():
        yield  # in memory, or a folder SQLite will refuse in its own words
        return
    database.touch(exist_ok=True)  # an empty file is an empty SQLite database
    with exclusive(database):
        yield


@contextlib.contextmanager
def _postgresql_turn(url: str) -> Iterator[None]:
    from sqlalchemy import create_engine, text

    with _storage_errors(url):
        locker = create_engine(url, **_engine_options(url))
        connection = locker.connect()
        transaction = connection.begin()
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TURN_LOCK_KEY})
    try:
        yield
    finally:
        transaction.rollback()  # ends the transaction, and its lock with it
        connection.close()
        locker.dispose()


def _engine_options(url: str) -> dict[str, Any]:
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine["connect_args"] = {"timeout": SQLITE_LOCK_TIMEOUT}
    elif url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return engine


@contextlib.contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    """The storage's failures (no driver, no server, no file) as one ConfigError sentence."""
    shown = shown_url(url)
    try:
        yield
    except ImportError as error:  # Optuna's, around the driver's ModuleNotFoundError
        missing = getattr(error.__cause__, "name", None) or getattr(error, "name", None)
        raise ConfigError(
            f"the storage {shown} needs the Python package {missing or 'its database driver'}; "
            "for PostgreSQL pip install 'psycopg[binary]'."
        ) from None
    except Exception as error:  # sqlalchemy's errors for every driver and failure
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0].rstrip(".")
        raise ConfigError(f"cannot open the storage {shown}: {reason}.") from None


def _open_storage(
    url: str, engine: dict[str, Any], heartbeat_interval: int, grace_period: int, retry: bool
) -> RDBStorage:
    callback = RetryHeartbeatStaleTrialCallback(max_retry=1) if retry else None
    attempt = 0
    while True:
        try:
            with quiet_optuna():
                return RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=callback,
                )
        except Exception as error:
            # The tables exist once the race is lost: connecting again finds them.
            attempt += 1
            message = str(error).lower()
            if attempt == SCHEMA_ATTEMPTS or not any(race in message for race in _SCHEMA_RACE):
                raise
            time.sleep(0.2 * attempt)


def check_study(
    storage: RDBStorage, name: str, directions: Sequence[str], identity: dict[str, Any]
) -> int:
    """Refuse joining study ``name`` when it optimises other directions or other data and
    settings; return how many trials it already holds (0 for a new study)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    existing = [direction.name.lower() for direction in storage.get_study_directions(study_id)]
    if existing != list(directions):
        raise ConfigError(
            f"study {name!r} already exists and optimises {', '.join(existing)}, not "
            f"{', '.join(directions)}; choose another --study or the --objective it was made with."
        )
    recorded = storage.get_study_user_attrs(study_id).get(IDENTITY)
    if recorded is not None and recorded != identity:
        raise RunError(
            f"study {name!r} already holds a search of other data, settings or space; choose "
            "another --study (and --out)."
        )
    return len(storage.get_all_trials(study_id, deepcopy=False))


def open_study(
    storage: RDBStorage,
    name: str,
    directions: Sequence[str],
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create study ``name`` or join it (workers racing to create it all end up in one)."""
    with quiet_optuna():
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=list(directions),
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    if IDENTITY not in study.user_attrs:
        study.set_user_attr(IDENTITY, identity)
    return study


def fail_killed_trials(study: optuna.Study) -> None:
    """Mark failed the running trials silent for the grace period (their worker was killed)
    and queue each again once; Optuna does this only as a worker starts its next trial."""
    with quiet_optuna():
        optuna.storages.fail_stale_trials(study)


def join_workers(study: optuna.Study, count: int) -> int:
    """Count ``count`` more workers in ``study`` (call it in a ``turn``); returns the offset
    of their sampler seeds: no two workers of a study, started together or one after another,
    sample with the same seed."""
    joined = study.user_attrs.get(WORKERS, 0)
    study.set_user_attr(WORKERS, joined + count)
    # Studies of earlier versions counted no workers: their trials stand in.
    return joined + len(study.get_trials(deepcopy=False))


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """Median (Optuna's default) after 5 finished trials and 5 epochs, Hyperband, or none."""
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "median":
        # The first epochs of a growing network say little: it starts at one neuron.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    return optuna.pruners.NopPruner()


def make_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    """TPE, Optuna's default for one objective and several; ``constant_liar`` keeps workers
    that sample at the same time from proposing the same point."""
    with quiet_optuna():
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def failed_elsewhere(study: optuna.Study, number: int) -> bool:
    """Whether trial ``number``, which this worker was running, is marked failed: another
    worker took this one for killed (silent past the grace period) and failed it, and Optuna
    refuses to record its outcome."""
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    return any(trial.number == number for trial in failed)
