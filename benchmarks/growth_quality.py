"""What growth buys: TINY from width 1 against fixed widths, ablations and the gromo package.

On each dataset, ``growml.compare`` trains on the same splits (one per seed) and in the same
process pool:

* growml's TINY growth from one hidden layer of width 1 (default settings);
* fixed widths 8 … 256 (growth off) and a fixed network of the width TINY ended with;
* random and GradMax growth through the same engine, capped at TINY's parameter count;

and, on the same prepared arrays, the PyPI ``gromo`` package's growing MLP with its documented
TINY settings, when installed (``pip install -e ".[bench]"``).

Prints the comparison table with its verdict, and the ratios the targets are about: the gap to
the best fixed width, parameters against it, TINY against random growth, TINY's time against
the fixed network of its own width and against gromo, and the growth step's own cost as a
fraction of an epoch; writes JSON.

    .venv/bin/python benchmarks/growth_quality.py [--seeds 3]
        [--datasets digits,mnist1d,breast-cancer] [--set growth.noise_factor=0.5 ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from growml.cli.render import compare_table
from rich.console import Console

import growml
from growml.compare import DEFAULT_WIDTHS, Comparison, compare
from growml.config import parse_assignment
from growml.data import load_table, prepare

sys.path.insert(0, str(Path(__file__).parent))
from gromo_peer import gromo_available, run_gromo  # noqa: E402


def growth_costs(comparison: Comparison) -> dict[str, float]:
    """TINY's growth steps against its epochs, from the grown members' histories."""
    step_over_epoch, share = [], []
    for member in comparison.document["members"]:
        if member["label"] != "grown" or member["run"] is None:
            continue
        history = growml.load_run(comparison.path / member["run"]).history()
        steps = [e["seconds"] for e in history if e["event"] == "growth" and e["added"]]
        epochs = [e["seconds"] for e in history if e["event"] == "epoch"]
        step_over_epoch.append(statistics.fmean(steps or [0.0]) / statistics.fmean(epochs))
        share.append(sum(steps) / member["seconds"]["train"])
    return {
        "growth_step_over_epoch": statistics.fmean(step_over_epoch),
        "growth_share_of_training": statistics.fmean(share),
    }


def gromo_row(name: str, config: growml.FitConfig, seeds: list[int]) -> dict[str, float]:
    table = load_table(name)
    accuracy, parameters, seconds = [], [], []
    for seed in seeds:
        data = prepare(table, config.data, seed)
        started = time.perf_counter()
        outcome = run_gromo(
            data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test, seed
        )
        accuracy.append(outcome["test_accuracy"])
        parameters.append(outcome["parameters"])
        seconds.append(outcome.get("seconds", time.perf_counter() - started))
    return {
        "accuracy_mean": statistics.fmean(accuracy),
        "accuracy_sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
        "parameters": statistics.fmean(parameters),
        "seconds": statistics.fmean(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="digits,mnist1d,breast-cancer")
    parser.add_argument("--set", action="append", default=[], help="growml setting for all runs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/growth_quality.json"))
    args = parser.parse_args()
    extra = [parse_assignment(text) for text in args.set]
    console = Console()
    report = {"settings": args.set, "seeds": args.seeds, "datasets": {}}
    settings = args.set or "defaults"
    print(f"gromo available: {gromo_available()}; {args.seeds} seeds; settings {settings}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.datasets.split(","):
            config = growml.resolve_config(overrides=[("data.source", name), *extra])
            out = Path(folder) / name
            first = compare(config, DEFAULT_WIDTHS, args.seeds, jobs=args.jobs, out=out)
            grown = next(row for row in first.rows if row["label"] == "grown")
            grown_width = round(statistics.fmean(w[0] for w in grown["widths"]))
            widths = [list(w) for w in DEFAULT_WIDTHS]
            if [grown_width] not in widths:
                widths = sorted([*widths, [grown_width]])
            budget = [("growth.max_params", round(grown["parameters"]))]
            # The same directory: the members of the first comparison are reused.
            result = compare(
                config,
                widths,
                args.seeds,
                variants={
                    "random": [*budget, ("growth.method", "random")],
                    "gradmax": [*budget, ("growth.method", "gradmax")],
                },
                jobs=args.jobs,
                out=out,
            )
            rows = {row["label"]: row for row in result.rows}
            verdict = result.verdict
            ratios = {
                "best_fixed": verdict["best_fixed"]["label"],
                "accuracy_gap_to_best_fixed": -verdict["gap"],
                "parameters_over_best_fixed": verdict["parameters_over_best"],
                "seconds_over_fixed_grown_width": rows["grown"]["train_seconds"]
                / rows[f"fixed {grown_width}"]["train_seconds"],
                "tiny_minus_random": rows["grown"]["score"]["mean"]
                - rows["random"]["score"]["mean"],
                **growth_costs(result),
            }
            entry = {"comparison": result.document, "ratios": ratios}
            if gromo_available():
                entry["gromo"] = gromo_row(name, config, result.document["seeds"])
                ratios["seconds_over_gromo"] = (
                    rows["grown"]["train_seconds"] / entry["gromo"]["seconds"]
                )
            report["datasets"][name] = entry
            console.print(compare_table(result.document))
            for line in verdict["summary"]:
                console.print(line, highlight=False)
            if "gromo" in entry:
                gromo = entry["gromo"]
                console.print(
                    f"gromo: {100 * gromo['accuracy_mean']:.1f} ± {100 * gromo['accuracy_sd']:.1f}"
                    f", {gromo['parameters']:.0f} parameters, {gromo['seconds']:.2f} s"
                )
            console.print(
                "; ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in ratios.items()
                ),
                highlight=False,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
