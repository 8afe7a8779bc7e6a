"""Time per epoch of growml's trainer against scikit-learn's MLPClassifier and a plain torch loop,
and the share of a growing fit's time that its growth steps take.

Same data (growml's split and preprocessing), same architecture (one hidden ReLU layer), same
optimizer (Adam, same learning rate), same batch size and epochs, no early stopping, in one
process. Each measurement is repeated and the median kept; ratios are growml / MLPClassifier.

Then ``growml.fit`` with its defaults (growth from width 1, trimming) on each data set: the
seconds of its growth steps (statistics, candidates, line searches) against its training time
and its wall time, from ``metrics.json``.

    .venv/bin/python benchmarks/train_speed.py [--epochs 50] [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from growml.config import DataConfig, TrainConfig, resolve_config
from growml.data import load_table, prepare
from growml.fitting import fit
from growml.losses import default_loss
from growml.nn import GrowingMLP
from growml.train import Trainer

BATCH_SIZE = 200  # MLPClassifier's default, min(200, rows)
LEARNING_RATE = 1e-3


def time_sklearn(data, width, epochs, seed):
    model = MLPClassifier(
        hidden_layer_sizes=(width,),
        solver="adam",
        alpha=0.0,
        batch_size=BATCH_SIZE,
        learning_rate_init=LEARNING_RATE,
        max_iter=epochs,
        early_stopping=False,
        n_iter_no_change=10**9,
        tol=0.0,
        shuffle=True,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        model.fit(data.x_train, data.y_train)
        seconds = time.perf_counter() - started
    return seconds / epochs, float((model.predict(data.x_test) == data.y_test).mean())


def time_growml(data, width, epochs, seed):
    n_outputs = data.target_encoder.n_outputs
    model = GrowingMLP(
        data.x_train.shape[1], [width], n_outputs, generator=torch.Generator().manual_seed(seed)
    )
    config = TrainConfig(
        epochs=epochs, batch_size=BATCH_SIZE, lr=LEARNING_RATE, early_stopping=False
    )
    trainer = Trainer(
        config, default_loss("classification", n_outputs), "classification", seed=seed
    )
    result = trainer.run(model, data.x_train, data.y_train, data.x_val, data.y_val)
    with torch.no_grad():
        predicted = model(torch.as_tensor(data.x_test)).argmax(1).numpy()
    return result.seconds / epochs, float((predicted == data.y_test).mean())


def time_plain_torch(data, width, epochs, seed):
    """What a user would write: nn.Sequential, autograd, torch.optim.Adam, default threads."""
    torch.manual_seed(seed)
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    n_classes = data.target_encoder.n_outputs
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], width), torch.nn.ReLU(), torch.nn.Linear(width, n_classes)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            loss = F.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    with torch.no_grad():
        predicted = model(torch.as_tensor(data.x_test)).argmax(1).numpy()
    return seconds / epochs, float((predicted == data.y_test).mean())


def growth_share(name, seed):
    """A default growing fit of ``name``: its wall, training and growth-step seconds."""
    config = resolve_config({}, [("data.source", name), ("seed", seed)])
    with tempfile.TemporaryDirectory() as scratch:
        metrics = fit(config, out=Path(scratch) / "run", checkpoints=False).metrics
    return {
        "data": name,
        "seed": seed,
        "widths": ",".join(str(w) for w in metrics["hidden_widths"]),
        "wall": metrics["seconds"]["wall"],
        "train": metrics["seconds"]["train"],
        "growth": metrics["growth"]["seconds"],
    }


PEERS = {"sklearn": time_sklearn, "torch": time_plain_torch, "growml": time_growml}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--growth-seeds", type=int, default=3)
    parser.add_argument("--datasets", default="digits,mnist1d")
    parser.add_argument("--widths", default="32,256")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_speed.json"))
    args = parser.parse_args()

    rows = []
    header = (
        f"{'data':<8} {'width':>5} {'sklearn ms':>10} {'torch ms':>9} {'growml ms':>9} "
        f"{'growml/sk':>9} {'torch/sk':>8} {'acc sk':>6} {'acc torch':>9} {'acc growml':>10}"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads available, "
        f"batch {BATCH_SIZE}, {args.epochs} epochs, median of {args.repeats}"
    )
    print(header)
    for name in args.datasets.split(","):
        data = prepare(load_table(name), DataConfig(), seed=0)
        for width in (int(w) for w in args.widths.split(",")):
            seconds = {peer: [] for peer in PEERS}
            accuracy = {peer: [] for peer in PEERS}
            for repeat in range(args.repeats):
                # Interleave the peers so drifts in machine load hit all of them alike.
                for peer, measure in PEERS.items():
                    per_epoch, acc = measure(data, width, args.epochs, seed=repeat)
                    seconds[peer].append(per_epoch)
                    accuracy[peer].append(acc)
            ms = {peer: 1000 * statistics.median(values) for peer, values in seconds.items()}
            acc = {peer: float(np.mean(values)) for peer, values in accuracy.items()}
            row = {
                "data": name,
                "width": width,
                "ms_per_epoch": ms,
                "test_accuracy": acc,
                "growml_over_sklearn": ms["growml"] / ms["sklearn"],
                "torch_over_sklearn": ms["torch"] / ms["sklearn"],
            }
            rows.append(row)
            print(
                f"{name:<8} {width:>5} {ms['sklearn']:>10.2f} {ms['torch']:>9.2f} "
                f"{ms['growml']:>9.2f} {row['growml_over_sklearn']:>9.2f} "
                f"{row['torch_over_sklearn']:>8.2f} {acc['sklearn']:>6.3f} {acc['torch']:>9.3f} "
                f"{acc['growml']:>10.3f}"
            )
    growth = [
        growth_share(name, seed)
        for name in args.datasets.split(",")
        for seed in range(args.growth_seeds)
    ]
    print(
        f"{'data':<8} {'seed':>4} {'widths':>8} {'wall s':>7} {'train s':>7} {'growth s':>8} "
        f"{'of train':>8} {'of wall':>7}"
    )
    for row in growth:
        print(
            f"{row['data']:<8} {row['seed']:>4} {row['widths']:>8} {row['wall']:>7.2f} "
            f"{row['train']:>7.2f} {row['growth']:>8.2f} {row['growth'] / row['train']:>8.1%} "
            f"{row['growth'] / row['wall']:>7.1%}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {"epochs": args.epochs, "batch_size": BATCH_SIZE, "rows": rows, "growth": growth}
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
