"""What growth buys: growth from width 1 against fixed widths, ablations and the gromo package.

On each dataset, ``growml.compare`` trains on the same splits (one per seed) and in the same
process pool:

* growml's default growth from one hidden layer of width 1 (default settings);
* fixed widths 8 … 256 (growth off) and a fixed network of the width growth ended with;
* TINY, random and GradMax growth through the same engine, capped at the grown run's
  parameter count;

and, on the same prepared arrays, the PyPI ``gromo`` package's growing MLP with its documented
TINY settings, when installed (``pip install -e ".[bench]"``).

Prints the comparison table with its verdict, and the ratios the targets are about: the gap to
the best fixed width, parameters against the smallest fixed width within half a point of it,
the growing run's wall time against one fixed width-64 training and against the whole sweep,
growth against random growth, and against gromo; writes JSON and a Markdown table
(``benchmarks/results/growth_quality.md``).

    .venv/bin/python benchmarks/growth_quality.py [--seeds 3] [--datasets digits,moons]
        [--set growth.max_new_neurons=16 ...]
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
from growml.compare import DEFAULT_WIDTHS, Comparison, compare, verdict
from growml.config import parse_assignment
from growml.data import load_table, prepare
from growml.events import EpochEnd, GrowthStep

sys.path.insert(0, str(Path(__file__).parent))
from gromo_peer import gromo_available, run_gromo  # noqa: E402
from reporting import ratio_line, write_results  # noqa: E402

DATASETS = (
    "digits",
    "mnist1d",
    "breast-cancer",
    "wine",
    "iris",
    "moons",
    "circles",
    "friedman",
    "imbalanced",
    "spirals",
    "xor",
    "sine",
)


def standard_verdict(document: dict) -> dict:
    """The verdict against the standard sweep (widths 8 … 256) alone: the fixed network at the
    grown width is an ablation, not part of the sweep."""
    sweep = {f"fixed {w[0]}" for w in DEFAULT_WIDTHS}
    return verdict(
        [row for row in document["rows"] if row["kind"] != "fixed" or row["label"] in sweep]
    )


def growth_costs(comparison: Comparison) -> dict[str, float]:
    """TINY's growth steps against its epochs, from the grown members' histories."""
    step_over_epoch, share = [], []
    for member in comparison.document["members"]:
        if member["label"] != "grown" or member["run"] is None:
            continue
        history = growml.load_run(comparison.path / member["run"]).history()
        steps = [e.seconds for e in history if isinstance(e, GrowthStep) and e.added]
        epochs = [e.seconds for e in history if isinstance(e, EpochEnd)]
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
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--set", action="append", default=[], help="growml setting for all runs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/growth_quality.json"))
    parser.add_argument(
        "--table-only", action="store_true", help="rewrite the Markdown table from --out's JSON"
    )
    args = parser.parse_args()
    if args.table_only:
        report = json.loads(args.out.read_text())
        args.out.with_suffix(".md").write_text(markdown(report))
        return
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
                    "tiny": [*budget, ("growth.method", "tiny")],
                    "random": [*budget, ("growth.method", "random")],
                    "gradmax": [*budget, ("growth.method", "gradmax")],
                },
                jobs=args.jobs,
                out=out,
            )
            rows = {row["label"]: row for row in result.rows}
            verdict = standard_verdict(result.document)
            ratios = {
                "best_fixed": verdict["best_fixed"]["label"],
                "accuracy_gap_to_best_fixed": -verdict["gap"],
                "parameters_over_best_fixed": verdict["parameters_over_best"],
                "seconds_over_fixed_grown_width": rows["grown"]["train_seconds"]
                / rows[f"fixed {grown_width}"]["train_seconds"],
                "parameters_over_smallest_within": verdict["parameters_over_smallest_within"],
                "wall_over_fixed_64": rows["grown"]["wall_seconds"]
                / rows["fixed 64"]["wall_seconds"],
                "wall_over_sweep": verdict["wall_seconds"]["grown_over_sweep"],
                "grown_minus_random": rows["grown"]["score"]["mean"]
                - rows["random"]["score"]["mean"],
                "grown_minus_tiny": rows["grown"]["score"]["mean"] - rows["tiny"]["score"]["mean"],
                **growth_costs(result),
            }
            entry = {"comparison": result.document, "ratios": ratios}
            if gromo_available() and result.document["task"] == "classification":
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
            console.print(ratio_line(ratios), highlight=False)
    write_results(args.out, report, markdown)


def markdown(report: dict) -> str:
    """The table of the results file: one row per dataset, and the targets met."""
    lines = [
        f"# Growth against fixed widths ({report['seeds']} seeds, widths 8…256, same budget)",
        "",
        f"Settings: {', '.join(report['settings']) or 'defaults'}. Scores in points (accuracy "
        "in %, 100·R² for regression), mean ± sd over seeds; params are means.",
        "",
        "| data | grown (widths) | params | best fixed | smallest within 0.5 | gap | params / "
        "smallest | wall / w64 | wall / sweep | TINY | random | gromo |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    met = {"within": 0, "compact": 0, "wall_64": 0, "wall_sweep": 0}
    for name, entry in report["datasets"].items():
        document, ratios = entry["comparison"], entry["ratios"]
        rows = {row["label"]: row for row in document["rows"]}
        verdict = standard_verdict(document)
        grown = rows["grown"]
        widths = sorted({w[0] for w in grown["widths"]})
        shown = f"{widths[0]}–{widths[-1]}" if len(widths) > 1 else f"{widths[0]}"
        best, within = verdict["best_fixed"], verdict["smallest_within"]
        gromo = entry.get("gromo")
        compactness = verdict["parameters_over_smallest_within"]
        over_sweep = verdict["wall_seconds"]["grown_over_sweep"]
        met["within"] += verdict["matched"]
        met["compact"] += verdict["matched"] and compactness <= 1
        met["wall_64"] += ratios["wall_over_fixed_64"] <= 1.5
        met["wall_sweep"] += over_sweep <= 0.25
        cells = [
            name,
            f"{100 * grown['score']['mean']:.1f} ± {100 * grown['score']['sd']:.1f} ({shown})",
            f"{grown['parameters']:.0f}",
            f"{100 * best['score']:.1f} ({best['label'].removeprefix('fixed ')})",
            f"{100 * within['score']:.1f} ({within['label'].removeprefix('fixed ')}, "
            f"{within['parameters']:.0f})",
            f"{100 * verdict['gap']:+.1f}",
            f"{compactness:.2f}",
            f"{ratios['wall_over_fixed_64']:.2f}",
            f"{over_sweep:.2f}",
            f"{100 * rows['tiny']['score']['mean']:.1f}",
            f"{100 * rows['random']['score']['mean']:.1f}",
            f"{100 * gromo['accuracy_mean']:.1f} ({gromo['parameters']:.0f})" if gromo else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    total = len(report["datasets"])
    lines += [
        "",
        f"Within 0.5 point of the best fixed width: {met['within']} of {total}; as compact as "
        f"the smallest fixed width within 0.5 point: {met['compact']} of {total}; wall time at "
        f"most 1.5× one fixed w64 training: {met['wall_64']} of {total}, at most 0.25× the "
        f"sweep: {met['wall_sweep']} of {total}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
