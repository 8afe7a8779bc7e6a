"""GrowingMLPClassifier against scikit-learn's MLPClassifier through scikit-learn's own API.

5-fold ``cross_val_score`` (stratified, accuracy) on digits and breast-cancer, each estimator
behind the same ``StandardScaler`` in a ``Pipeline``. The grown network starts at width 1 with
growml's defaults; MLPClassifier has one hidden layer of 16, 64 or 256 neurons and its defaults
except the batch size, which is growml's 64 (same Adam, learning rate 1e-3 and 200-epoch cap).
Reported per dataset and estimator: mean and spread of the fold scores, hidden widths and
parameters of the fitted networks (mean over folds), and the wall time of the five fits with
their scoring; ratios are growml / MLPClassifier. Folds run one after another in one process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sklearn_api.py [--out FILE]

(one thread for both, so that neither waits on the other's thread pool; the JSON goes to
benchmarks/results/sklearn_api.json by default)
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from growml import GrowingMLPClassifier

DATASETS = {"digits": load_digits, "breast-cancer": load_breast_cancer}
WIDTHS = (16, 64, 256)
FOLDS = 5
SEED = 0


def mlp_parameters(model: MLPClassifier) -> int:
    return sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)


def measure(name: str, estimator, X: np.ndarray, y: np.ndarray) -> dict:
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    pipeline = make_pipeline(StandardScaler(), estimator)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = cross_validate(pipeline, X, y, cv=folds, return_estimator=True)
    seconds = time.perf_counter() - started
    fitted = [fold[-1] for fold in result["estimator"]]
    if isinstance(estimator, GrowingMLPClassifier):
        parameters = [model.n_parameters_ for model in fitted]
        widths = [model.hidden_widths_[0] for model in fitted]
    else:
        parameters = [mlp_parameters(model) for model in fitted]
        widths = [model.hidden_layer_sizes[0] for model in fitted]
    scores = result["test_score"]
    return {
        "estimator": name,
        "accuracy": float(scores.mean()),
        "accuracy_std": float(scores.std()),
        "hidden_widths": widths,
        "parameters": float(np.mean(parameters)),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sklearn_api.json"))
    args = parser.parse_args()
    results = {}
    for dataset, load in DATASETS.items():
        X, y = load(return_X_y=True)
        rows = [measure("growml", GrowingMLPClassifier(random_state=SEED), X, y)]
        for width in WIDTHS:
            sklearn = MLPClassifier((width,), batch_size=64, random_state=SEED)
            rows.append(measure(f"sklearn {width}", sklearn, X, y))
        grown = rows[0]
        for row in rows[1:]:
            row["parameters_ratio"] = grown["parameters"] / row["parameters"]
            row["time_ratio"] = grown["seconds"] / row["seconds"]
        results[dataset] = rows
        print(f"\n{dataset}: {len(y)} rows, {FOLDS}-fold cross_val_score (accuracy)")
        print(
            f"{'estimator':<12} {'accuracy %':>12} {'width':>7} {'params':>8} {'time s':>7}"
            f" {'params ×':>9} {'time ×':>7}"
        )
        for row in rows:
            low, high = min(row["hidden_widths"]), max(row["hidden_widths"])
            widths = str(low) if low == high else f"{low}-{high}"
            ratios = (
                f" {row['parameters_ratio']:>9.2f} {row['time_ratio']:>7.2f}"
                if "time_ratio" in row
                else ""
            )
            accuracy = f"{100 * row['accuracy']:.1f} ± {100 * row['accuracy_std']:.1f}"
            print(
                f"{row['estimator']:<12} {accuracy:>12} {widths:>7} "
                f"{row['parameters']:>8,.0f} {row['seconds']:>7.1f}{ratios}"
            )
        print("ratios: growml / MLPClassifier")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
