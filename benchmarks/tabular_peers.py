"""growml against the tabular peers: RealMLP-TD, TabM-D, LightGBM and scikit-learn's MLP.

For each data set and seed, growml fits with its default settings (those of ``growml fit``)
on its own split of that seed; every peer (``tabular_peer_models.py``) is fitted on the same
training and validation rows together (holding out its own validation rows, as it does for a
user) and scored on the same test rows. torch, BLAS and OpenMP get the same thread count for
every model (``--threads``, default torch's own), one model after another in this process.

Reports per data set the test score (accuracy in %, 100·R² for regression), the size
(parameters; LightGBM: tree nodes) and the fit time, means over seeds, and the ratios the
goal is stated in: growml minus the best of RealMLP-TD and TabM-D (and its median over data
sets), growml's parameters and fit time over RealMLP-TD's. Prints rich tables; writes
``benchmarks/results/tabular_peers.json`` (per-seed results) and ``tabular_peers.md``.

The JSON is also the cache: a peer's result is reused while its data set, seed, package
version and thread count are the same, so a rerun after a change to growml fits only growml
(``--refresh`` fits the peers again). The results are written after every fit, so an
interrupted run keeps what it finished.

    .venv/bin/python benchmarks/tabular_peers.py [--seeds 3] [--datasets wine,diabetes]
        [--models growml,lightgbm] [--set train.lr=0.01 ...] [--threads 2] [--refresh]

The peers need the bench extra: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table as RichTable

import growml
from growml.atomic import write_json, write_text
from growml.config import DataConfig, parse_assignment
from growml.data import Table, load_table, split_rows

sys.path.insert(0, str(Path(__file__).parent))
from tabular_peer_models import PEERS, WEIGHTS  # noqa: E402

DATASETS = (
    "breast-cancer",
    "digits",
    "wine",
    "diabetes",
    "mnist1d",
    "friedman",
    "many-features",
    "clusters",
    "checkerboard",
)
GROWML = "growml"
MODELS = (GROWML, *PEERS)
LABELS = {GROWML: "growml", **{key: peer.label for key, peer in PEERS.items()}}
# The peers growml's score is measured against: the best of them on each data set.
NEURAL_PEERS = ("realmlp-td", "tabm-d")
REFERENCE = "realmlp-td"


def peer_split(table: Table, data: DataConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows the peers fit on (growml's training and validation rows of ``seed``) and the
    test rows growml holds out, both sorted."""
    train, validation, test = split_rows(table, data, seed)
    return np.sort(np.concatenate([train, validation])), test


def raw_arrays(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """The features as a user hands them to a peer (float64, unscaled) and the target: class
    indices for classification, the values for regression."""
    x = np.column_stack([column.to_numpy().astype(np.float64) for column in table.features.columns])
    target = table.target.to_numpy(zero_copy_only=False)
    if table.task == "classification":
        return x, np.unique(target, return_inverse=True)[1]
    return x, target.astype(np.float64)


def run_growml(table: Table, config: growml.FitConfig, test_rows: np.ndarray) -> dict[str, Any]:
    """growml fitted as ``growml fit`` would, into a throwaway run directory."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = growml.fit(config, out=Path(folder) / "run", table=table, checkpoints=False)
        seconds = time.perf_counter() - started
    if not result.data.raw_test.equals(table.features.take(test_rows)):
        raise AssertionError("growml's test rows differ from the peers' test rows")
    metrics = result.metrics
    score = metrics["test"]["accuracy" if table.task == "classification" else "r2"]
    return {
        "score": 100.0 * score,
        "size": metrics["parameters"],
        "unit": WEIGHTS,
        "seconds": seconds,
        "train_seconds": metrics["seconds"]["train"],
        "hidden_widths": metrics["hidden_widths"],
        "growml_threads": config.train.threads,
    }


def run_peer(
    key: str, table: Table, rows: tuple[np.ndarray, np.ndarray], seed: int, threads: int
) -> dict[str, Any]:
    """The peer ``key`` fitted on the first of ``rows`` and scored on the second."""
    x, y = raw_arrays(table)
    fit_rows, test_rows = rows
    with warnings.catch_warnings():
        # Convergence notes and the deprecations of pytabkit's dependencies, on every fit.
        warnings.simplefilter("ignore")
        result = PEERS[key].run(
            table.task, seed, threads, x[fit_rows], y[fit_rows], x[test_rows], y[test_rows]
        )
    return {
        "score": result.score,
        "size": result.size,
        "unit": result.unit,
        "seconds": result.seconds,
    }


def split_settings(data: DataConfig) -> dict[str, Any]:
    """The settings that decide the split, recorded with each cached result."""
    return data.model_dump(mode="json", include={"test_size", "validation_size", "stratify"})


def fit_model(model: str, table: Table, config: growml.FitConfig, threads: int) -> dict[str, Any]:
    """One model's result on ``table`` with the split of ``config`` (growml's settings)."""
    rows = peer_split(table, config.data, config.seed)
    if model == GROWML:
        entry = run_growml(table, config, rows[1])
    else:
        entry = run_peer(model, table, rows, config.seed, threads)
        entry["version"] = PEERS[model].version()
    return {**entry, "threads": threads, "split": split_settings(config.data)}


def cached(
    runs: dict[str, Any], run_key: str, model: str, threads: int, data: DataConfig
) -> dict | None:
    """A peer's earlier result on the same rows, with the same package version and threads."""
    entry = runs.get(run_key)
    if model == GROWML or entry is None:
        return None
    same = (entry.get("version"), entry.get("threads"), entry.get("split"))
    if same != (PEERS[model].version(), threads, split_settings(data)):
        return None
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(MODELS), help=", ".join(MODELS))
    parser.add_argument("--set", action="append", default=[], help="growml setting key=value")
    parser.add_argument("--threads", type=int, default=0, help="default: torch's own count")
    parser.add_argument("--refresh", action="store_true", help="fit the peers again")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tabular_peers.json"))
    parser.add_argument(
        "--table-only", action="store_true", help="print and rewrite the tables from --out's JSON"
    )
    args = parser.parse_args()
    console = Console(width=max(Console().width, 120))
    if args.table_only:
        document = _read_results(args.out)
        show(console, document, args.out)
        return
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    missing = [m for m in models if m in PEERS and PEERS[m].version() is None]
    if unknown or missing:
        problem = (
            f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}"
            if unknown
            else f"peer(s) {', '.join(missing)} need the bench extra; install it with "
            'pip install -e ".[bench]"'
        )
        print(f"tabular_peers: {problem}.", file=sys.stderr)
        raise SystemExit(2)
    threads = args.threads or torch.get_num_threads()
    datasets, seeds = args.datasets.split(","), list(range(args.seeds))
    try:
        extra = [parse_assignment(text) for text in args.set]
        tables = {name: load_table(name) for name in datasets}
        growml.resolve_config(overrides=extra)
    except growml.GrowmlError as error:
        print(f"tabular_peers: {error}", file=sys.stderr)
        raise SystemExit(2) from None

    document = _read_results(args.out)
    runs = document.setdefault("runs", {})
    document.update(threads=threads, settings=args.set, versions=_versions())
    console.print(f"{threads} threads; growml settings: {', '.join(args.set) or 'defaults'}")
    # Seeds outermost: an interrupted run has every data set for the first seeds.
    for seed in seeds:
        for name in datasets:
            table = tables[name]
            overrides = [("data.source", name), ("seed", seed), ("train.threads", threads)]
            config = growml.resolve_config(overrides=[*overrides, *extra])
            for model in models:
                run_key = f"{name}/{seed}/{model}"
                entry = None if args.refresh else cached(runs, run_key, model, threads, config.data)
                note = " (cached)" if entry is not None else ""
                if entry is None:
                    entry = fit_model(model, table, config, threads)
                    runs[run_key] = entry
                    write_json(args.out, document)
                console.print(
                    f"{name} seed {seed} {LABELS[model]}: {entry['score']:.1f}, "
                    f"{entry['size']} {entry['unit']}, {entry['seconds']:.1f} s{note}",
                    highlight=False,
                )
            document["report"] = summarise(runs, datasets, seeds, models, tables)
            write_json(args.out, document)
            write_text(args.out.with_suffix(".md"), markdown(document["report"], threads, args.set))
    show(console, document, args.out)


def show(console: Console, document: dict[str, Any], out: Path) -> None:
    """Print the report's tables and write the Markdown beside the JSON."""
    report = document["report"]
    write_text(out.with_suffix(".md"), markdown(report, document["threads"], document["settings"]))
    for table in rich_tables(report):
        console.print(table)
    for line in summary_lines(report):
        console.print(line, highlight=False)
    console.print(f"written {out} and {out.with_suffix('.md')}")


def _read_results(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _versions() -> dict[str, str | None]:
    packages = {peer.package: peer.version() for peer in PEERS.values()}
    return {"growml": growml.__version__, "torch": torch.__version__, **packages}


def summarise(
    runs: dict[str, Any],
    datasets: list[str],
    seeds: list[int],
    models: list[str],
    tables: dict[str, Table],
) -> dict[str, Any]:
    """Means over the seeds every model has finished, per data set, and the goal's ratios.

    A data set's ratios: ``growml_minus_best_neural`` (points; the best of RealMLP-TD and
    TabM-D by mean score), ``growml_minus_lightgbm``, ``parameters_over_realmlp`` and
    ``seconds_over_realmlp`` (fit times); ``medians`` are their medians over data sets.
    """
    report: dict[str, Any] = {"seeds": seeds, "models": models, "datasets": {}}
    for name in datasets:
        done = [s for s in seeds if all(f"{name}/{s}/{m}" in runs for m in models)]
        if not done:
            continue
        results = {}
        for model in models:
            entries = {str(s): runs[f"{name}/{s}/{model}"] for s in done}
            scores = [e["score"] for e in entries.values()]
            results[model] = {
                "score": statistics.fmean(scores),
                "score_sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                "size": statistics.fmean(e["size"] for e in entries.values()),
                "unit": next(iter(entries.values()))["unit"],
                "seconds": statistics.fmean(e["seconds"] for e in entries.values()),
                "seeds": entries,
            }
        report["datasets"][name] = {
            "task": tables[name].task,
            "seeds_done": done,
            "models": results,
            "ratios": _ratios(results),
        }
    ratios = [entry["ratios"] for entry in report["datasets"].values()]
    report["medians"] = {
        key: statistics.median(r[key] for r in ratios if key in r)
        for key in ("growml_minus_best_neural", "growml_minus_lightgbm")
        + ("parameters_over_realmlp", "seconds_over_realmlp")
        if any(key in r for r in ratios)
    }
    return report


def _ratios(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if GROWML not in results:
        return {}
    grown = results[GROWML]
    ratios: dict[str, Any] = {}
    neural = [m for m in NEURAL_PEERS if m in results]
    if neural:
        best = max(neural, key=lambda m: results[m]["score"])
        ratios["best_neural"] = best
        ratios["growml_minus_best_neural"] = grown["score"] - results[best]["score"]
    if "lightgbm" in results:
        ratios["growml_minus_lightgbm"] = grown["score"] - results["lightgbm"]["score"]
    if REFERENCE in results:
        reference = results[REFERENCE]
        ratios["parameters_over_realmlp"] = grown["size"] / reference["size"]
        ratios["seconds_over_realmlp"] = grown["seconds"] / reference["seconds"]
    return ratios


# The three tables: what each shows of a result, and the ratios beside it.
_TABLES = {
    "score": (
        "Test score (accuracy in %, 100·R² for regression), mean ± sd over seeds",
        lambda r: f"{r['score']:.1f} ± {r['score_sd']:.1f}",
        {"growml_minus_best_neural": "growml − best NN", "growml_minus_lightgbm": "− LightGBM"},
    ),
    "size": (
        "Parameters (LightGBM: tree nodes, leaves and splits)",
        lambda r: _size(r),
        {"parameters_over_realmlp": "growml / RealMLP-TD"},
    ),
    "seconds": (
        "Fit time in seconds",
        lambda r: f"{r['seconds']:.1f}",
        {"seconds_over_realmlp": "growml / RealMLP-TD"},
    ),
}


def _size(result: dict[str, Any]) -> str:
    size = result["size"]
    text = f"{size / 1000:.0f}k" if size >= 10_000 else f"{size:.0f}"
    return text + (" nodes" if result["unit"] != WEIGHTS else "")


def _ratio(key: str, value: float) -> str:
    return f"{value:+.1f}" if key.startswith("growml_minus") else f"{value:.3g}"


def _cells(report: dict[str, Any], what: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one of ``_TABLES``, shared by the rich output and the Markdown."""
    _, cell, ratio_names = _TABLES[what]
    models = report["models"]
    header = ["data", "seeds", *(LABELS[m] for m in models), *ratio_names.values()]
    rows = []
    for name, entry in report["datasets"].items():
        row = [name, str(len(entry["seeds_done"]))]
        row += [cell(entry["models"][model]) for model in models]
        ratios = entry["ratios"]
        row += [_ratio(key, ratios[key]) if key in ratios else "—" for key in ratio_names]
        rows.append(row)
    return header, rows


def rich_tables(report: dict[str, Any]) -> list[RichTable]:
    """The results as rich tables: scores, sizes, fit times."""
    tables = []
    for what, (title, _, _) in _TABLES.items():
        header, rows = _cells(report, what)
        table = RichTable(title=title)
        for column in header:
            table.add_column(column, justify="left" if column == "data" else "right")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The goal's numbers: medians over data sets."""
    medians = report["medians"]
    words = {
        "growml_minus_best_neural": "growml − best of RealMLP-TD and TabM-D: {:+.1f} points",
        "growml_minus_lightgbm": "growml − LightGBM: {:+.1f} points",
        "parameters_over_realmlp": "growml's parameters / RealMLP-TD's: {:.3g}",
        "seconds_over_realmlp": "growml's fit time / RealMLP-TD's: {:.2f}",
    }
    return [f"Median over data sets, {words[k].format(v)}." for k, v in medians.items()]


def markdown(report: dict[str, Any], threads: int, settings: list[str]) -> str:
    """The results file: the three tables and the medians, as the README shows them."""
    done = [len(entry["seeds_done"]) for entry in report["datasets"].values()]
    seeds = len(report["seeds"])
    shown = (
        f"{seeds} seeds"
        if set(done) == {seeds}
        else f"up to {max(done, default=0)} of {seeds} seeds"
    )
    lines = [
        f"# growml against tabular peers ({shown}, {threads} thread{'s' * (threads > 1)})",
        "",
        f"growml settings: {', '.join(settings) or 'defaults'}. Every model sees the same test "
        "rows (growml's split of each seed); the peers fit on growml's training and validation "
        "rows together and hold out their own validation rows. Fit time: the whole `fit` call "
        "(growml's includes preparing the data and writing its run directory).",
        "",
    ]
    for what, (title, _, _) in _TABLES.items():
        header, rows = _cells(report, what)
        lines += [
            f"{title}:",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows),
            "",
        ]
    return "\n".join([*lines, *summary_lines(report), ""])


if __name__ == "__main__":
    main()
