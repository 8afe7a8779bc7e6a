"""The time cost of row weights: growml's trainer and estimator with and without sample_weight,
beside scikit-learn's MLPClassifier with and without it.

Same data (growml's split and preprocessing of digits), one hidden ReLU layer of 64, Adam,
batch 64, no early stopping; weights are random integers 1–3 (all alike would be no weights).
The estimator rows grow from width 1 on breast-cancer with the defaults, where weights change
the path (epochs, growth steps), so they compare seconds per epoch. Runs are interleaved and
the median of the repeats kept; ratios are weighted / unweighted.

    .venv/bin/python benchmarks/sample_weight_cost.py [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from growml.config import DataConfig, TrainConfig
from growml.data import load_table, prepare
from growml.losses import default_loss
from growml.nn import GrowingMLP
from growml.sklearn import GrowingMLPClassifier
from growml.train import Trainer

WIDTH, BATCH_SIZE, EPOCHS, LEARNING_RATE = 64, 64, 20, 1e-3


def trainer_epoch(data, weights):
    """Seconds per epoch of growml's trainer on ``data`` (``weights``: the training rows')."""
    n_outputs = data.target_encoder.n_outputs
    model = GrowingMLP(
        data.x_train.shape[1], [WIDTH], n_outputs, generator=torch.Generator().manual_seed(0)
    )
    config = TrainConfig(
        epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE, early_stopping=False
    )
    trainer = Trainer(config, default_loss("classification", n_outputs), "classification")
    validation = None if weights is None else np.ones(len(data.y_val), np.float32) * 2
    result = trainer.run(
        model, data.x_train, data.y_train, data.x_val, data.y_val,
        train_weights=weights, validation_weights=validation,
    )  # fmt: skip
    return result.seconds / EPOCHS


def sklearn_epoch(data, weights):
    """Seconds per epoch of scikit-learn's MLPClassifier on the same rows."""
    model = MLPClassifier(
        hidden_layer_sizes=(WIDTH,), batch_size=BATCH_SIZE, learning_rate_init=LEARNING_RATE,
        max_iter=EPOCHS, n_iter_no_change=10**9, tol=0.0, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        model.fit(data.x_train, data.y_train, sample_weight=weights)
    return (time.perf_counter() - started) / EPOCHS


def estimator_epoch(X, y, weights):
    """Seconds per epoch of a growing ``GrowingMLPClassifier.fit`` at its defaults."""
    started = time.perf_counter()
    estimator = GrowingMLPClassifier(random_state=0).fit(X, y, sample_weight=weights)
    return (time.perf_counter() - started) / estimator.n_iter_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/sample_weight_cost.json")
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = prepare(load_table("digits"), DataConfig(), seed=0)
    train_weights = rng.integers(1, 4, len(data.y_train)).astype(np.float32)
    X, y = load_breast_cancer(return_X_y=True)
    fit_weights = rng.integers(1, 4, len(y)).astype(float)
    cases = {
        "growml trainer": (lambda w: trainer_epoch(data, w), train_weights),
        "MLPClassifier": (lambda w: sklearn_epoch(data, w), train_weights),
        "growml estimator": (lambda w: estimator_epoch(X, y, w), fit_weights),
    }
    times: dict[str, dict[str, list[float]]] = {
        case: {"unweighted": [], "weighted": []} for case in cases
    }
    for _ in range(args.repeats):
        # Interleaved so that drifts in machine load hit both sides alike.
        for case, (measure, weights) in cases.items():
            times[case]["unweighted"].append(measure(None))
            times[case]["weighted"].append(measure(weights))
    rows = []
    print(f"{'case':<17} {'unweighted ms/epoch':>19} {'weighted ms/epoch':>17} {'ratio':>6}")
    for case, measured in times.items():
        plain = 1000 * statistics.median(measured["unweighted"])
        weighted = 1000 * statistics.median(measured["weighted"])
        rows.append({"case": case, "unweighted_ms": plain, "weighted_ms": weighted})
        print(f"{case:<17} {plain:>19.2f} {weighted:>17.2f} {weighted / plain:>6.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
