"""What heartbeats cost a trial, and how late they come on a loaded machine.

A study's running trials write a heartbeat every ``tune.heartbeat_interval`` seconds from a
thread of their worker; a trial silent for ``tune.grace_period`` seconds counts as killed and
is retried. The interval sets the cost (one write to the storage each time) and the grace
period must outlast the longest gap between two heartbeats of a live trial, or a live trial is
failed under its worker.

* ``write``: milliseconds per heartbeat written to a new SQLite study (the default storage).
* ``overhead``: the same seeded study (iris, one worker, no pruning) with heartbeats at the
  default interval and with none during a trial (an interval longer than the study), seconds
  per trial, the runs alternated.
* ``gaps``: the longest gap between two heartbeats of a study with heartbeats every second
  while ``--load`` processes per core spin beside it, and two workers write to the storage.

    .venv/bin/python benchmarks/tune_heartbeat.py [--trials 6] [--load 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages import RDBStorage

import growml
from growml.tune import TuneConfig, tune
from growml.tune.settings import HEARTBEAT_INTERVAL

RESULTS = Path(__file__).parent / "results"
NEVER = 3600  # an interval longer than the study: one heartbeat as a trial starts, no more


def write_cost(work: Path, writes: int = 200) -> float:
    """Milliseconds per heartbeat written to a SQLite study."""
    storage = RDBStorage(f"sqlite:///{work / 'write.db'}", heartbeat_interval=1)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    started = time.perf_counter()
    for _ in range(writes):
        storage.record_heartbeat(trial._trial_id)
    return 1000 * (time.perf_counter() - started) / writes


def seconds_per_trial(work: Path, name: str, trials: int, interval: int, jobs: int = 1) -> float:
    config = growml.resolve_config({"data": {"source": "iris"}})
    settings = TuneConfig(
        pruner="none", seed=0, heartbeat_interval=interval, grace_period=interval + 1
    )
    result = tune(config, settings, trials=trials, jobs=jobs, out=work / name)
    return result.document["this_run"]["seconds"] / trials


def _spin(until: float) -> None:
    while time.time() < until:
        pass


def longest_gap(work: Path, trials: int, load: int) -> float:
    """The longest gap between two heartbeats of one trial (seconds), heartbeats every
    second, under ``load`` spinning processes per core."""
    beats: dict[int, list[float]] = {}
    record = RDBStorage.record_heartbeat

    def recorded(storage: RDBStorage, trial_id: int) -> None:
        record(storage, trial_id)
        beats.setdefault(trial_id, []).append(time.monotonic())

    RDBStorage.record_heartbeat = recorded  # type: ignore[method-assign]
    spinners = [
        multiprocessing.Process(target=_spin, args=(time.time() + 600,))
        for _ in range(load * (os.cpu_count() or 1))
    ]
    for spinner in spinners:
        spinner.start()
    try:
        seconds_per_trial(work, "loaded", trials, 1)
    finally:
        for spinner in spinners:
            spinner.terminate()
        RDBStorage.record_heartbeat = record  # type: ignore[method-assign]
    gaps = [
        later - earlier for times in beats.values() for earlier, later in itertools.pairwise(times)
    ]
    return max(gaps, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--load", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        times: dict[int, list[float]] = {HEARTBEAT_INTERVAL: [], NEVER: []}
        for round_ in range(args.rounds):
            for interval in times:
                name = f"overhead-{interval}-{round_}"
                times[interval].append(seconds_per_trial(work, name, args.trials, interval))
        result = {
            "write_ms": write_cost(work),
            "seconds_per_trial": {
                f"heartbeat every {HEARTBEAT_INTERVAL} s": statistics.median(
                    times[HEARTBEAT_INTERVAL]
                ),
                "no heartbeat during a trial": statistics.median(times[NEVER]),
            },
            "longest_gap_seconds_at_1_s": longest_gap(work, args.trials, args.load),
            "load_processes_per_core": args.load,
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tune_heartbeat.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "tune_heartbeat.md").write_text(markdown(result))
    print(markdown(result), end="")


def markdown(result: dict) -> str:
    seconds = result["seconds_per_trial"]
    lines = ["| measure | value |", "|---|---:|"]
    lines.append(f"| heartbeat written to SQLite | {result['write_ms']:.1f} ms |")
    lines += [f"| seconds per trial, {name} | {value:.2f} s |" for name, value in seconds.items()]
    lines.append(
        f"| longest gap between heartbeats every 1 s, {result['load_processes_per_core']} "
        f"spinning process per core | {result['longest_gap_seconds_at_1_s']:.2f} s |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
