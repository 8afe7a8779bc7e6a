"""What numeric embeddings buy a grown network: ``growml fit DATA --set model.embedding=X``.

For each dataset, seed and embedding (``none``, ``periodic``, ``piecewise``), one default
growing fit; prints the test score (accuracy, or R² for regression), the final parameter count,
the final widths and the fit's wall time, and writes them as JSON. Runs are sequential, each on
torch's thread choice, so times compare only within one invocation on one machine.

    .venv/bin/python benchmarks/embeddings.py [--datasets digits,friedman] [--seeds 0,1]
        [--embeddings none,periodic,piecewise] [--set model.embedding_width=8 ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from growml.config import parse_assignment, resolve_config
from growml.fitting import fit


def measure(dataset: str, seed: int, embedding: str, extra: list[tuple[str, object]]) -> dict:
    overrides = [
        ("data.source", dataset),
        ("seed", seed),
        ("model.embedding", embedding),
        *extra,
    ]
    config = resolve_config(overrides=overrides)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        result = fit(config, out=Path(scratch) / "run", checkpoints=False)
    seconds = time.perf_counter() - started
    test = result.metrics["test"]
    return {
        "dataset": dataset,
        "seed": seed,
        "embedding": embedding,
        "score": test.get("accuracy", test.get("r2")),
        "metric": "accuracy" if "accuracy" in test else "r2",
        "parameters": result.metrics["parameters"],
        "hidden_widths": result.metrics["hidden_widths"],
        "epochs": result.metrics["epochs"],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,breast-cancer,friedman,mnist1d")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--embeddings", default="none,piecewise,periodic")
    parser.add_argument("--set", action="append", default=[], dest="assignments")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embeddings.json"))
    args = parser.parse_args()
    extra = [parse_assignment(text) for text in args.assignments]
    rows = []
    print(f"{'data':14} {'seed':>4} {'embedding':10} {'score':>7} {'params':>8} {'s':>7}  widths")
    for dataset in args.datasets.split(","):
        for embedding in args.embeddings.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                row = measure(dataset, seed, embedding, extra)
                rows.append(row)
                print(
                    f"{dataset:14} {seed:4} {embedding:10} {row['score']:7.4f} "
                    f"{row['parameters']:8} {row['seconds']:7.1f}  {row['hidden_widths']}",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": args.assignments, "runs": rows}, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
