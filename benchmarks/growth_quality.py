"""What growth buys: TINY from width 1 against fixed widths, ablations and the gromo package.

On each dataset and seed, in one process and on the same split:

* growml's TINY growth from one hidden layer of width 1 (default settings);
* a fixed network of the width TINY ended with, and fixed widths 8 … 256 (growth off);
* random and GradMax growth through the same engine, capped at TINY's parameter count;
* the PyPI ``gromo`` package's growing MLP with its documented TINY settings, when installed
  (``pip install -e ".[bench]"``).

Prints test accuracy (mean ± std over seeds), parameters and training seconds, the ratios the
targets are about, and the growth step's own cost as a fraction of an epoch; writes JSON.

    .venv/bin/python benchmarks/growth_quality.py [--seeds 0,1,2]
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

import numpy as np

import growml
from growml.config import DataConfig, parse_assignment
from growml.data import load_table, prepare

sys.path.insert(0, str(Path(__file__).parent))
from gromo_peer import gromo_available, run_gromo  # noqa: E402

FIXED_WIDTHS = (8, 16, 32, 64, 128, 256)


def fit(name: str, seed: int, settings: list[tuple[str, object]], workdir: Path) -> dict:
    config = growml.resolve_config(overrides=[("data.source", name), ("seed", seed), *settings])
    result = growml.fit(config, out=workdir / f"run-{time.perf_counter_ns()}")
    history = result.run.history()
    growth_seconds = sum(e["seconds"] for e in history if e["event"] == "growth")
    epochs = [e["seconds"] for e in history if e["event"] == "epoch"]
    steps = [e for e in history if e["event"] == "growth" and e["added"]]
    return {
        "test_accuracy": result.metrics["test"]["accuracy"],
        "parameters": result.metrics["parameters"],
        "seconds": result.metrics["seconds"]["train"],
        "hidden_widths": result.metrics["hidden_widths"],
        "growth_seconds": growth_seconds,
        "growth_steps": len(steps),
        "step_over_epoch": (growth_seconds / max(len(steps), 1)) / statistics.mean(epochs),
    }


def peers_for(name: str, seed: int, extra: list, workdir: Path) -> dict[str, dict]:
    results = {"tiny": fit(name, seed, extra, workdir)}
    grown = results["tiny"]
    fixed_off = [("growth.enabled", False)]
    results["fixed, grown width"] = fit(
        name, seed, [*extra, *fixed_off, ("model.hidden_widths", grown["hidden_widths"])], workdir
    )
    for width in FIXED_WIDTHS:
        results[f"fixed {width}"] = fit(
            name, seed, [*extra, *fixed_off, ("model.hidden_widths", [width])], workdir
        )
    budget = [("growth.max_params", grown["parameters"])]
    for method in ("random", "gradmax"):
        results[method] = fit(name, seed, [*extra, *budget, ("growth.method", method)], workdir)
    if gromo_available():
        data = prepare(load_table(name), DataConfig(), seed)
        started = time.perf_counter()
        outcome = run_gromo(
            data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test, seed
        )
        results["gromo"] = {
            "test_accuracy": outcome["test_accuracy"],
            "parameters": outcome["parameters"],
            "seconds": outcome.get("seconds", time.perf_counter() - started),
            "hidden_widths": [outcome["hidden_width"]],
        }
    return results


def summarise(runs: list[dict[str, dict]]) -> dict[str, dict]:
    summary = {}
    for peer in runs[0]:
        values = [run[peer] for run in runs]
        accuracy = [v["test_accuracy"] for v in values]
        summary[peer] = {
            "accuracy_mean": float(np.mean(accuracy)),
            "accuracy_std": float(np.std(accuracy)),
            "parameters": float(np.mean([v["parameters"] for v in values])),
            "seconds": float(np.mean([v["seconds"] for v in values])),
            "widths": [v["hidden_widths"] for v in values],
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default="digits,mnist1d,breast-cancer")
    parser.add_argument("--set", action="append", default=[], help="growml setting for all runs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/growth_quality.json"))
    args = parser.parse_args()
    extra = [parse_assignment(text) for text in args.set]
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {"settings": args.set, "seeds": seeds, "datasets": {}}
    print(f"gromo available: {gromo_available()}; seeds {seeds}; settings {args.set or 'defaults'}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.datasets.split(","):
            runs = [peers_for(name, seed, extra, Path(folder)) for seed in seeds]
            summary = summarise(runs)
            tiny = summary["tiny"]
            best_fixed = max(
                (p for p in summary if p.startswith("fixed ") and "grown" not in p),
                key=lambda p: summary[p]["accuracy_mean"],
            )
            step_cost = float(np.mean([run["tiny"]["step_over_epoch"] for run in runs]))
            growth_share = float(
                np.mean([run["tiny"]["growth_seconds"] / run["tiny"]["seconds"] for run in runs])
            )
            ratios = {
                "best_fixed": best_fixed,
                "accuracy_gap_to_best_fixed": summary[best_fixed]["accuracy_mean"]
                - tiny["accuracy_mean"],
                "parameters_over_best_fixed": tiny["parameters"]
                / summary[best_fixed]["parameters"],
                "seconds_over_fixed_grown_width": tiny["seconds"]
                / summary["fixed, grown width"]["seconds"],
                "tiny_minus_random": tiny["accuracy_mean"] - summary["random"]["accuracy_mean"],
                "growth_step_over_epoch": step_cost,
                "growth_share_of_training": growth_share,
            }
            if "gromo" in summary:
                ratios["seconds_over_gromo"] = tiny["seconds"] / summary["gromo"]["seconds"]
            report["datasets"][name] = {"summary": summary, "ratios": ratios, "runs": runs}
            print(f"\n{name}")
            print(f"  {'peer':<20} {'test accuracy':>15} {'parameters':>10} {'seconds':>8}  widths")
            for peer, row in summary.items():
                widths = ", ".join(str(w) for w in row["widths"])
                print(
                    f"  {peer:<20} {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f} "
                    f"{row['parameters']:>10.0f} {row['seconds']:>8.2f}  {widths}"
                )
            print(
                "  "
                + "; ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in ratios.items()
                )
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
