"""What tuning buys: growth with default settings, growth tuned by Optuna, and a fixed-width
network tuned by the same Optuna budget, side by side on two built-in data sets.

* ``growth, defaults``: one ``growml fit`` with the default settings.
* ``growth, tuned``: ``growml tune`` with the default space (learning rate, batch size, weight
  decay, initial scale, neurons per step, failures before stopping, step size), ``--trials``
  trials, median pruning; the best trial's run.
* ``fixed width, tuned``: the same study with growth off, the width (8 to 256, log-uniform)
  searched in place of the growth settings, the same trials.

Every study selects on the validation split only; the test metric of the selected run is
reported, with its parameters and the wall time of the whole fit or study (one worker, one
process, on whatever machine runs this). Writes the figures as JSON and a Markdown table.

    .venv/bin/python benchmarks/tune_value.py [--trials 30] [--data digits breast-cancer]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import growml
from growml.tune import TuneConfig, tune

RESULTS = Path(__file__).parent / "results"


def measure(data: str, trials: int, work: Path) -> list[dict]:
    rows = []
    config = growml.resolve_config({"data": {"source": data}})
    started = time.perf_counter()
    fitted = growml.fit(config, out=work / f"{data}-default")
    rows.append(_row(data, "growth, defaults", fitted.metrics, time.perf_counter() - started, 1))
    for label, overrides in (
        ("growth, tuned", []),
        ("fixed width, tuned", [("growth.enabled", False)]),
    ):
        study_config = growml.resolve_config({"data": {"source": data}}, overrides)
        started = time.perf_counter()
        result = tune(
            study_config,
            TuneConfig(),
            trials=trials,
            out=work / f"{data}-{label.split(',')[0].replace(' ', '-')}",
        )
        wall = time.perf_counter() - started
        best = growml.load_run(result.best_run)
        row = _row(data, label, best.metrics, wall, trials)
        row["validation"] = result.best[0]["value"]
        row["pruned"] = result.document["trials"]["pruned"]
        row["best_settings"] = result.best[0]["settings"]
        rows.append(row)
    return rows


def _row(data: str, label: str, metrics: dict, wall: float, trials: int) -> dict:
    return {
        "data": data,
        "config": label,
        "trials": trials,
        "test_accuracy": metrics["test"]["accuracy"],
        "validation": metrics["validation"]["accuracy"],
        "parameters": metrics["parameters"],
        "hidden_widths": metrics["hidden_widths"],
        "wall_seconds": wall,
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| data | configuration | trials | pruned | test accuracy | validation | widths | "
        "params | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['data']} | {row['config']} | {row['trials']} | {row.get('pruned', '—')} | "
            f"{100 * row['test_accuracy']:.1f} | {100 * row['validation']:.1f} | "
            f"{','.join(map(str, row['hidden_widths']))} | {row['parameters']:,} | "
            f"{row['wall_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--data", nargs="+", default=["digits", "breast-cancer"])
    parser.add_argument("--out", type=Path, default=RESULTS / "tune_value.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for data in args.data:
            rows += measure(data, args.trials, Path(work))
            print(markdown(rows), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
