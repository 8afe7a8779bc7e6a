"""Does training on soft F1 beat cross-entropy on imbalanced data? Test F1, same network.

On `imbalanced` (5 % positives), `breast-cancer` (37 %) and a generated set with 1 % positives
(10 000 rows), 5 seeds, one 32-16 ReLU network and one training budget for every variant:

* bce            cross-entropy, decisions at 0.5
* bce + τ        cross-entropy, threshold chosen for F1 on the validation split
* bce weighted   cross-entropy with balanced class weights, decisions at 0.5
* soft-f1        1 − soft F1 averaged over τ = 0.1 … 0.9, threshold chosen for F1 (in [0.1, 0.9])

    .venv/bin/python benchmarks/f1_losses.py [--seeds 0,1,2,3,4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import growml

VARIANTS = {
    "bce": [("loss.name", "bce")],
    "bce + τ": [("loss.name", "bce"), ("threshold.metric", "f1")],
    "bce weighted": [("loss.name", "bce"), ("loss.class_weight", "balanced")],
    "soft-f1": [("loss.name", "soft-f1")],
}
THRESHOLDED = ("bce + τ", "soft-f1")  # the variants whose threshold is chosen on validation
NETWORK = [("growth.enabled", False), ("model.hidden_widths", [32, 16])]


def one_percent_positives(folder: Path) -> str:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=10_000,
        n_features=20,
        n_informative=6,
        weights=[0.99],
        flip_y=0,
        class_sep=1.0,
        random_state=0,
    )
    path = folder / "one-percent.csv"
    header = ",".join([f"x{i}" for i in range(x.shape[1])] + ["label"])
    np.savetxt(
        path,
        np.column_stack([x, y]),
        delimiter=",",
        header=header,
        comments="",
        fmt=["%.6f"] * x.shape[1] + ["%d"],
    )
    return str(path)


def test_f1(
    source: str, target: str | None, seed: int, settings: list, folder: Path
) -> tuple[float, float]:
    """Test F1 at the stored threshold, and at 0.5 (equal when no threshold was chosen)."""
    overrides = [("data.source", source), ("seed", seed), *NETWORK, *settings]
    if target:
        overrides.append(("data.target", target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = growml.fit(
            growml.resolve_config(overrides=overrides), out=folder / f"run-{time.perf_counter_ns()}"
        )
    test = result.metrics["test"]
    return test["f1"], test.get("f1_at_0.5", test["f1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/f1_losses.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        datasets = {
            "imbalanced (5 %)": ("imbalanced", None),
            "breast-cancer (37 %)": ("breast-cancer", None),
            "generated (1 %)": (one_percent_positives(folder), "label"),
        }
        print(f"test F1, mean ± std over seeds {seeds}")
        print(f"  {'data':<22}" + "".join(f"{variant:>16}" for variant in VARIANTS))
        gains = {}
        for label, (source, target) in datasets.items():
            row, at_half = {}, {}
            for variant, settings in VARIANTS.items():
                pairs = [test_f1(source, target, s, settings, folder) for s in seeds]
                row[variant] = [stored for stored, _ in pairs]
                at_half[variant] = [half for _, half in pairs]
            report[label] = {"f1": row, "f1_at_0.5": at_half}
            gains[label] = {
                variant: float(np.mean(row[variant]) - np.mean(at_half[variant]))
                for variant in THRESHOLDED
            }
            cells = "".join(f"{np.mean(v):>9.3f} ± {np.std(v):.3f}".rjust(16) for v in row.values())
            print(f"  {label:<22}{cells}")
        print("\ntest F1 at the stored threshold minus at 0.5, mean over seeds")
        print(f"  {'data':<22}" + "".join(f"{variant:>16}" for variant in THRESHOLDED))
        for label, row in gains.items():
            print(f"  {label:<22}" + "".join(f"{gain:>+16.3f}" for gain in row.values()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
