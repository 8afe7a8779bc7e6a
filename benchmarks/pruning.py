"""SynFlow against magnitude and random pruning, and grow-then-prune against the alternatives.

(a) Layer collapse: a 6-layer MLP (784 → 100 × 5 → 10) pruned to compressions 10^0.25 … 10^4;
    for each method, the highest compression at which input and output stay connected
    (synaptic flow R > 0). SynFlow is iterative (100 steps), magnitude and random one-shot as in
    the paper, and magnitude also iterative.
(b) Test accuracy after training a fixed 256-256 network pruned at initialisation to 10×, 100×
    and 1000× on digits and mnist1d, for the three methods (seeds 0–2).
(c) Grow-then-prune (structured SynFlow, 2× and 4×) against grow-only and fixed widths:
    test accuracy against parameters.

    .venv/bin/python benchmarks/pruning.py [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import growml
from growml.nn import GrowingMLP
from growml.prune import make_pruner, prune_weights, synaptic_flow

COLLAPSE_GRID = [10 ** (k / 4) for k in range(1, 17)]


def layer_collapse() -> dict[str, float]:
    network = GrowingMLP(784, [100] * 5, 10, generator=torch.Generator().manual_seed(0))
    variants = {
        "synflow (100 steps)": ("synflow", 100),
        "magnitude (one shot)": ("magnitude", 1),
        "magnitude (100 steps)": ("magnitude", 100),
        "random (one shot)": ("random", 1),
    }
    reached = {}
    for label, (method, iterations) in variants.items():
        best = 1.0
        for compression in COLLAPSE_GRID:
            model = copy.deepcopy(network)
            masks, _ = prune_weights(
                model, make_pruner(method), compression, iterations, min_per_layer=0
            )
            if synaptic_flow(model, masks) > 0:
                best = compression
            else:
                break
        reached[label] = best
    return reached


def fit(data: str, seed: int, settings: list, folder: Path) -> dict:
    config = growml.resolve_config(overrides=[("data.source", data), ("seed", seed), *settings])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = growml.fit(config, out=folder / f"run-{time.perf_counter_ns()}")
    prune = result.metrics.get("prune", {})
    return {
        "accuracy": result.metrics["test"]["accuracy"],
        "parameters": result.metrics["parameters"],
        "kept_weights": prune.get("weights_after"),
        "widths": result.metrics["hidden_widths"],
    }


def summary(rows: list[dict]) -> str:
    accuracy = [row["accuracy"] for row in rows]
    parameters = np.mean([row["parameters"] for row in rows])
    kept = [row["kept_weights"] for row in rows if row["kept_weights"] is not None]
    kept_text = f", {np.mean(kept):.0f} weights kept" if kept else ""
    return f"{np.mean(accuracy):.3f} ± {np.std(accuracy):.3f} ({parameters:.0f} params{kept_text})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default="digits,mnist1d")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pruning.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    report: dict = {"seeds": seeds}

    print("(a) layer collapse: highest compression with input and output still connected")
    report["collapse"] = layer_collapse()
    for label, compression in report["collapse"].items():
        print(f"  {label:<24} {compression:>10.0f}×")

    fixed = [("growth.enabled", False), ("model.hidden_widths", [256, 256])]
    report["at_init"], report["grow_then_prune"] = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        print("\n(b) fixed 256-256, pruned at init, then trained: test accuracy")
        for data in args.datasets.split(","):
            for method in ("synflow", "magnitude", "random"):
                for compression in (10.0, 100.0, 1000.0):
                    settings = [
                        *fixed,
                        ("prune.method", method),
                        ("prune.compression", compression),
                    ]
                    rows = [fit(data, seed, settings, Path(folder)) for seed in seeds]
                    report["at_init"][f"{data} {method} {compression:.0f}x"] = rows
                    print(f"  {data:<8} {method:<10} {compression:>5.0f}×  {summary(rows)}")

        print("\n(c) grow-then-prune: test accuracy against parameters")
        variants = {
            "grow only": [],
            "grow, prune neurons 2×": [
                ("prune.method", "synflow"),
                ("prune.structured", True),
                ("prune.compression", 2.0),
            ],
            "grow, prune neurons 4×": [
                ("prune.method", "synflow"),
                ("prune.structured", True),
                ("prune.compression", 4.0),
            ],
            **{
                f"fixed {w}": [("growth.enabled", False), ("model.hidden_widths", [w])]
                for w in (16, 32, 64, 256)
            },
        }
        for data in args.datasets.split(","):
            for label, settings in variants.items():
                rows = [fit(data, seed, settings, Path(folder)) for seed in seeds]
                report["grow_then_prune"][f"{data} {label}"] = rows
                print(f"  {data:<8} {label:<24} {summary(rows)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
