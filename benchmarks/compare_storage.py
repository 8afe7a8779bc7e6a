"""Two ``growml compare`` workers on one database against one local worker (``--jobs 1``).

Both workers run the same command with ``--storage URL`` at the same moment, each with its own
``--out``; then the same comparison runs locally with ``--jobs 1``. Reported:

* ``trials``: the study's trials by state, and how many members were completed more than once
  or never (both must be 0);
* ``trained_here``: how many members each worker trained (together: every member);
* ``same_table``: whether each worker's rows and members, times left out, equal the local ones;
* wall seconds of each worker and of the local run.

    .venv/bin/python benchmarks/compare_storage.py --storage postgresql://user@host/db \\
        [--data moons] [--seeds 3] [--widths 8,16,32,64,128,256]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from growml.compare.shared import MEMBER

RESULTS = Path(__file__).parent / "results"
GROWML = str(Path(sys.executable).parent / "growml")
TIMES = ("seconds", "train_seconds", "wall_seconds")


def without_times(document: dict) -> list:
    return [
        [{key: value for key, value in item.items() if key not in TIMES} for item in document[part]]
        for part in ("rows", "members")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--data", default="moons")
    parser.add_argument("--seeds", default="3")
    parser.add_argument("--widths", default="8,16,32,64,128,256")
    args = parser.parse_args()
    study = f"bench-{int(time.time())}"
    common = [GROWML, "compare", args.data, "--seeds", args.seeds, "--widths", args.widths]
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        workers = [
            subprocess.Popen(
                [*common, "--storage", args.storage, "--study", study, "--jobs", "1"]
                + ["--out", f"{work}/w{i}", "--json"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in (0, 1)
        ]
        documents, worker_seconds = [], []
        for process in workers:
            stdout, _ = process.communicate()
            assert process.returncode == 0
            documents.append(json.loads(stdout))
            worker_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        local = subprocess.run(
            [*common, "--jobs", "1", "--out", f"{work}/local", "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        local_seconds = time.perf_counter() - started
    reference = without_times(json.loads(local.stdout))
    trials = optuna.load_study(study_name=study, storage=args.storage).trials
    complete = collections.Counter(
        t.user_attrs[MEMBER] for t in trials if t.state == optuna.trial.TrialState.COMPLETE
    )
    keys = [member["key"] for member in documents[0]["members"]]
    result = {
        "data": args.data,
        "seeds": int(args.seeds),
        "widths": args.widths,
        "members": len(keys),
        "trials": dict(collections.Counter(t.state.name for t in trials)),
        "completed_twice": sum(count > 1 for count in complete.values()),
        "never_completed": sum(key not in complete for key in keys),
        "trained_here": [len(document["trained_here"]) for document in documents],
        "same_table": [without_times(document) == reference for document in documents],
        "worker_seconds": worker_seconds,
        "local_seconds": local_seconds,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare_storage.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
