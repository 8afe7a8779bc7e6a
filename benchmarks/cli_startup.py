"""How fast the command line answers when it trains nothing: `growml --help`, `growml
datasets`, and the error for a missing file. Each is a fresh process (the console script),
timed end to end; the figure is the median of ``--repeat`` runs, beside a bare `python -c
pass` in the same run and the 0.5 s goal.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.5
COMMANDS = {
    "growml --help": ["--help"],
    "growml datasets": ["datasets"],
    "growml fit missing.csv": ["fit", "missing.csv", "--target", "y"],
}


def median_seconds(command: list[str], repeat: int, folder: str) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, cwd=folder, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    script = str(Path(sys.executable).parent / "growml")
    with tempfile.TemporaryDirectory() as folder:
        bare = median_seconds([sys.executable, "-c", "pass"], args.repeat, folder)
        print(f"{'command':<26}{'median s':>10}{'× python':>10}{'× goal':>9}")
        print(f"{'python -c pass':<26}{bare:>10.3f}{1.0:>10.1f}{bare / GOAL:>9.2f}")
        for label, flags in COMMANDS.items():
            seconds = median_seconds([script, *flags], args.repeat, folder)
            print(f"{label:<26}{seconds:>10.3f}{seconds / bare:>10.1f}{seconds / GOAL:>9.2f}")


if __name__ == "__main__":
    main()
