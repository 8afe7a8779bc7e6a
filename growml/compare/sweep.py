"""``compare``: a growing run against fixed widths on the same data, resumable, in parallel.

The comparison directory::

    runs/compare-<data>/
      compare.json        settings while running; every member's figures and the verdict at the end
      members/<key>.json  one record per finished member, written atomically
      runs/<key>/         the members' run directories (``growml report`` reads them)
      plots/compare.png   test metric against parameters and against wall time

Every check that can fail on the user's input runs before the directory is made, so a mistake
leaves nothing behind. Once made, the directory is the comparison's memory: run the same
comparison again and the members already recorded are skipped, so a killed comparison loses
only the members that were in flight.

With ``storage``, the comparison lives in an Optuna study that workers on many machines share
(``growml.compare.shared``): the directory then holds no ``members/``, only the runs of the
members trained here and, once every member is complete, the whole table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from growml import atomic
from growml.compare.members import Member, check_sklearn, plan, train_member
from growml.compare.shared import SharedStudy, join, train_shared
from growml.compare.summary import summarise, verdict
from growml.config import FitConfig, without_device
from growml.data import Table, prepare
from growml.errors import ConfigError, RunError
from growml.processes import start_worker, warm_up, worker_pool
from growml.runs.workdir import claim, read_manifest, refuse_current, remove_partials
from growml.scoring import check_settings, ranking_metric
from growml.train.device import training_device
from growml.tune.settings import GRACE_PERIOD, HEARTBEAT_INTERVAL
from growml.tune.storage import shown_url
from growml.version import __version__

COMPARE = "compare.json"
MEMBERS = "members"
RUNS = "runs"
PLOT = "plots/compare.png"
DEFAULT_WIDTHS = ((8,), (16,), (32,), (64,), (128,), (256,))
FORMAT_VERSION = 1
MAX_SEEDS = 100

Progress = Callable[[int, int, "dict[str, Any] | None"], None]


@dataclass
class Comparison:
    """A finished comparison: ``document`` is the content of ``compare.json``."""

    path: Path
    document: dict[str, Any]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.document["rows"]

    @property
    def verdict(self) -> dict[str, Any]:
        return self.document["verdict"]


def compare(
    config: FitConfig,
    widths: Sequence[Sequence[int]] = DEFAULT_WIDTHS,
    seeds: int = 3,
    *,
    variants: Mapping[str, Sequence[tuple[str, Any]]] | None = None,
    sklearn: bool = False,
    metric: str = "auto",
    jobs: int | None = None,
    out: str | Path | None = None,
    keep_runs: bool = True,
    overwrite: bool = False,
    progress: Progress | None = None,
    storage: str | None = None,
    study: str | None = None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
) -> Comparison:
    """Train ``config``'s growing run and fixed networks of ``widths`` on ``seeds`` splits.

    Args:
        config: the growing run's settings; every member shares its data, training, loss and
            pruning settings. Seeds are ``config.seed``, ``config.seed + 1``, ...
        widths: hidden widths of the fixed networks, one list per network.
        seeds: how many seeds (splits) to average over.
        variants: further growing configurations, label → dotted settings over ``config``.
        sklearn: also train scikit-learn's MLP at each width on the same arrays.
        metric: the test metric to rank by (``auto``: accuracy, F1 for a soft F-loss, R²).
        jobs: worker processes (default: the usable cores).
        out: the comparison directory (default ``runs/compare-<data name>``).
        keep_runs: keep the members' run directories.
        overwrite: start afresh in ``out`` instead of resuming the comparison there.
        progress: called as ``progress(done, total, record)``: once before training with the
            members already recorded (``record`` None), then after every member.
        storage: an Optuna storage URL (``postgresql://user@host/db``) that workers on many
            machines share: each member is trained once, by whichever worker claims it, and
            its record is kept there (``growml.compare.shared``). ``out`` then holds the runs
            of the members trained here, and the table once every member is complete.
        study: the shared comparison's study name (default ``compare-<data name>``).
        heartbeat_interval, grace_period: seconds between a shared member's heartbeats, and
            without one before its worker is taken for killed and the member trained again.
    """
    from growml.fitting import load_config_table

    if not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds must be between 1 and {MAX_SEEDS} (got {seeds}).")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs}).")
    if not widths:
        raise ConfigError("a comparison needs at least one fixed width.")
    if config.data.test_size == 0:
        raise ConfigError(
            "a comparison scores its members on the test split; data.test_size=0 leaves none."
        )
    table = load_config_table(config)
    check_settings(config, table.task)
    training_device(config)
    members = plan(
        config, widths, range(config.seed, config.seed + seeds), variants, sklearn=sklearn
    )
    if sklearn:
        check_sklearn(config)
    binary = table.task == "classification" and len(set(table.target.to_pylist())) == 2
    metric = ranking_metric(metric, table.task, binary, config.loss.name)
    for seed in sorted({member.seed for member in members}):
        prepare(table, config.data, seed)  # a data set too small to split fails here, not later
    path = Path(out) if out is not None else Path("runs") / f"compare-{table.name}"
    identity = _identity(config, table)
    comparison = {
        "metric": metric,
        "seeds": sorted({member.seed for member in members}),
        "widths": [list(network) for network in widths],
        "sklearn": sklearn,
        "variants": {
            label: [list(item) for item in items] for label, items in (variants or {}).items()
        },
    }
    started = time.perf_counter()
    if storage is None:
        _open(path, identity, overwrite)
        records = _train_here(members, table, path, keep_runs, jobs, progress)
        shared_run = {}
    else:
        if overwrite:
            raise ConfigError(
                "--overwrite starts a local comparison afresh; a shared one lives in its study, "
                "so choose another --study to start afresh."
            )
        shared = SharedStudy(
            storage, study or f"compare-{table.name}", heartbeat_interval, grace_period
        )
        records, shared_run = _share(
            shared, identity, comparison, members, table, path, keep_runs, jobs, progress
        )
    ordered = [records[member.key] for member in members]
    rows = summarise(ordered, metric)
    document = {
        **identity,
        **shared_run,
        "status": "complete",
        **comparison,
        "members": ordered,
        "rows": rows,
        "verdict": verdict(rows),
        "seconds": time.perf_counter() - started,
    }
    atomic.write_json(path / COMPARE, document)
    from growml.compare.plots import compare_plot

    compare_plot(document, path / PLOT)
    return Comparison(path=path, document=document)


def _share(
    shared: SharedStudy,
    identity: dict[str, Any],
    comparison: dict[str, Any],
    members: Sequence[Member],
    table: Table,
    path: Path,
    keep_runs: bool,
    jobs: int | None,
    progress: Progress | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Train ``members`` with the other workers of ``shared``: the directory is checked, then
    the study joined (or refused), and only then is the directory made. Returns every
    member's record by key, and what the document says of the study and this worker."""
    location = {"storage": shown_url(shared.url), "study": shared.name}
    keys = [member.key for member in members]
    _check_out(path, {**identity, **location}, shared=True)
    found = join(shared, {**identity, **comparison, "members": keys}, keys)
    _open(path, {**identity, **location}, overwrite=False, shared=True)
    workers = _jobs(jobs, len(members))
    with _trainer(table, path / RUNS, keep_runs, workers) as train:
        records, trained = train_shared(found, shared, members, train, workers, progress)
    return records, {**location, "trained_here": trained}


def read_comparison(path: Path) -> dict[str, Any]:
    """The finished comparison in ``path``: its ``compare.json``. One still under way or
    interrupted, or a damaged file, is refused in a sentence that says what to do."""
    document = read_manifest(path / COMPARE, "run the comparison again with --overwrite")
    if document.get("status") != "complete":
        done = len(list((path / MEMBERS).glob("*.json")))
        raise RunError(
            f"the comparison in {str(path)!r} has not finished ({done} members recorded); "
            "run the same growml compare command again to finish it."
        )
    missing = [key for key in ("data", "metric", "seeds", "rows", "verdict") if key not in document]
    if missing:
        raise RunError(
            f"{str(path / COMPARE)!r} is damaged (it has no {missing[0]!r}); run the comparison "
            "again with --overwrite."
        )
    return document


def _identity(config: FitConfig, table: Table) -> dict[str, Any]:
    """What makes two comparisons the same one: the data and every setting but the seed and
    where each worker trains (``train.device``)."""
    settings = without_device(config.model_dump(mode="json"))
    settings.pop("seed")
    return {
        "format_version": FORMAT_VERSION,
        "growml_version": __version__,
        "data": table.name,
        "task": table.task,
        "settings": settings,
    }


def _check_out(path: Path, identity: dict[str, Any], shared: bool = False) -> bool:
    """Check that ``path`` can be the comparison directory of ``identity`` without writing
    anything; returns whether it is one already. Refuses a path holding anything else, and a
    comparison of other data, settings or study."""
    if not path.exists():
        return False
    found = claim(path, "comparison", [COMPARE])
    refuse_current(path)
    if not found:
        return False
    # A shared comparison lives in its study: --overwrite would not start it afresh.
    remedy = "" if shared else "pass --overwrite to replace it or "
    damaged = (
        "choose another --out" if shared else "pass --overwrite to start the comparison afresh"
    )
    previous = read_manifest(path / COMPARE, damaged)
    if any(
        previous.get(key) != identity.get(key)
        for key in ("data", "task", "settings", "storage", "study")
    ):
        raise RunError(
            f"{str(path)!r} holds a comparison of other data or settings"
            f"{', or another study' if shared else ''}; {remedy}choose another --out."
        )
    return True


def _open(path: Path, identity: dict[str, Any], overwrite: bool, shared: bool = False) -> None:
    """Make ``path`` a comparison directory for ``identity``, or check that it already is one
    (``_check_out``); ``overwrite`` removes a comparison there first. A shared comparison's
    directory has no ``members/``: its records live in the study."""
    if overwrite and path.exists() and claim(path, "comparison", [COMPARE]):
        refuse_current(path)
        shutil.rmtree(path)
    if _check_out(path, identity, shared):
        remove_partials(path / RUNS)  # killed members' runs: they are trained again
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not shared:
            (path / MEMBERS).mkdir(exist_ok=True)
    except OSError as error:
        raise RunError(
            f"cannot create the comparison directory {str(path)!r}: {error.strerror}."
        ) from None
    atomic.write_json(path / COMPARE, {**identity, "status": "running"})


def _recorded(path: Path, members: Sequence[Member]) -> dict[str, dict[str, Any]]:
    """The records of ``members`` already in ``path``, when made with the same settings."""
    import json

    records = {}
    for member in members:
        file = path / MEMBERS / f"{member.key}.json"
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # absent or damaged: trained again
        saved = record.get("config") if isinstance(record, dict) else None
        if isinstance(saved, dict) and without_device(saved) == without_device(member.config):
            records[member.key] = record
    return records


def _train_here(
    members: Sequence[Member],
    table: Table,
    path: Path,
    keep_runs: bool,
    jobs: int | None,
    progress: Progress | None,
) -> dict[str, dict[str, Any]]:
    """Train the members not yet recorded in ``path``, recording each as it finishes; return
    every member's record by key."""
    records = _recorded(path, members)
    pending = [member for member in members if member.key not in records]
    if progress:
        progress(len(records), len(members), None)
    for record in _train(pending, table, path / RUNS, keep_runs, _jobs(jobs, len(pending))):
        atomic.write_json(path / MEMBERS / f"{record['key']}.json", record)
        records[record["key"]] = record
        if progress:
            progress(len(records), len(members), record)
    return records


def _jobs(jobs: int | None, members: int) -> int:
    """Worker processes: as asked (default: the usable cores), never more than members."""
    return max(1, min(jobs or len(os.sched_getaffinity(0)), members))


def _train(
    members: Sequence[Member], table: Table, runs: Path, keep_runs: bool, jobs: int
) -> Iterator[dict[str, Any]]:
    """Yield the record of every member as it finishes: in this process for one job, else in
    worker processes of one torch thread each.

    Ctrl-C reaches this process only; it stops the workers (each removes the run it was
    writing) and propagates. Workers of a process killed outright exit within a second.
    """
    if jobs <= 1:
        warm_up()
        for member in members:
            yield train_member(member, table, runs, keep_runs)
        return
    with worker_pool(jobs, _start_worker, (table, os.getpid())) as pool:
        tasks = [(member, runs, keep_runs) for member in members]
        yield from pool.imap_unordered(_train_in_worker, tasks)


@contextlib.contextmanager
def _trainer(
    table: Table, runs: Path, keep_runs: bool, jobs: int
) -> Iterator[Callable[[Member], dict[str, Any]]]:
    """A function that trains one member and returns its record, for callers that claim
    members one at a time (``jobs`` threads of a shared comparison): in this process for one
    job, else in ``jobs`` worker processes as ``_train``'s."""
    if jobs <= 1:
        warm_up()
        yield lambda member: train_member(member, table, runs, keep_runs)
        return
    with worker_pool(jobs, _start_worker, (table, os.getpid())) as pool:
        yield lambda member: pool.apply(_train_in_worker, ((member, runs, keep_runs),))


_worker_table: Table | None = None


def _start_worker(table: Table, parent: int) -> None:
    global _worker_table
    start_worker(parent)
    _worker_table = table


def _train_in_worker(task: tuple[Member, Path, bool]) -> dict[str, Any]:
    member, runs, keep_runs = task
    assert _worker_table is not None
    return train_member(member, _worker_table, runs, keep_runs)
