"""How fast the command line answers: `growml --help`, `growml datasets`, the error for a
missing file and `growml report` of a run, each timed end to end, and the first line of
`growml fit` on a terminal (the time until it writes anything). Each is a fresh process (the
console script); the figure is the median of ``--repeat`` runs, beside a bare `python -c pass`
in the same run and the 0.5 s goal (1 s for fit's first line).

    .venv/bin/python benchmarks/cli_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.5
FIRST_LINE_GOAL = 1.0
COMMANDS = {
    "growml --help": ["--help"],
    "growml datasets": ["datasets"],
    "growml fit missing.csv": ["fit", "missing.csv", "--target", "y"],
    "growml report RUN": ["report", "run"],
}


def median_seconds(command: list[str], repeat: int, folder: str) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, cwd=folder, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def median_first_output_on_terminal(command: list[str], repeat: int, folder: str) -> float:
    """Seconds from starting ``command`` on a terminal (a pseudo-terminal) to its first
    output; the command is stopped there."""
    times = []
    for number in range(repeat):
        started = time.perf_counter()
        pid, terminal = pty.fork()
        if pid == 0:  # the child
            os.chdir(folder)
            os.execv(command[0], [*command, "--out", f"terminal-{number}"])
        os.read(terminal, 1)
        times.append(time.perf_counter() - started)
        os.kill(pid, 15)
        os.waitpid(pid, 0)
        os.close(terminal)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    script = str(Path(sys.executable).parent / "growml")
    with tempfile.TemporaryDirectory() as folder:
        fit = [script, "fit", "iris", "--fixed", "4", "--epochs", "3"]
        subprocess.run([*fit, "--out", "run"], capture_output=True, cwd=folder, check=True)
        bare = median_seconds([sys.executable, "-c", "pass"], args.repeat, folder)
        print(f"{'command':<26}{'median s':>10}{'× python':>10}{'× goal':>9}")
        print(f"{'python -c pass':<26}{bare:>10.3f}{1.0:>10.1f}{bare / GOAL:>9.2f}")
        for label, flags in COMMANDS.items():
            seconds = median_seconds([script, *flags], args.repeat, folder)
            print(f"{label:<26}{seconds:>10.3f}{seconds / bare:>10.1f}{seconds / GOAL:>9.2f}")
        first = median_first_output_on_terminal(fit, args.repeat, folder)
        label = "growml fit: first line"
        print(f"{label:<26}{first:>10.3f}{first / bare:>10.1f}{first / FIRST_LINE_GOAL:>9.2f}")


if __name__ == "__main__":
    main()
