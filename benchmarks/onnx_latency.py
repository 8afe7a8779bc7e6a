"""Export time, and onnxruntime against torch eager latency, for 1 row and 1,000 rows.

Two data sets: digits (64 numeric columns) and a generated mixed-type CSV (numbers with gaps,
categories with gaps and unseen values, a boolean). Each is grown with growml's defaults, then
exported in both input layouts: the default (the numeric columns as one float32 ``numbers``
input) and ``--no-group-numbers`` (one float32 input per numeric column); ``layout ratio`` is
the second's single-row graph latency over the default's.
Everything runs in this one process on one thread (torch and onnxruntime alike); every figure
is the median of many calls. Ratios are torch / onnxruntime (above 1: onnxruntime is faster).

* ``onnx graph``: ``InferenceSession.run`` on the raw column arrays — the whole path from raw
  values to labels and probabilities, preprocessing included, as a deployment calls it.
* ``torch net``: ``GrowingMLP.forward`` on an already preprocessed float32 tensor — torch's
  best case, without the preprocessing the ONNX graph carries.
* ``torch path`` / ``onnx path``: ``Run.predict_proba`` / ``OnnxModel.predict_proba`` from a
  pyarrow table of raw rows, the Python API of each engine.

    .venv/bin/python benchmarks/onnx_latency.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import growml

sys.path.insert(0, str(Path(__file__).parent))
from reporting import median_seconds  # noqa: E402

ROW_COUNTS = (1, 1000)


def mixed_csv(path: Path, rows: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["age,income,height,score,colour,city,member,label"]
    colours, cities = ["red", "green", "blue", "grey", "black"], [f"city{i}" for i in range(12)]
    for i in range(rows):
        age = rng.normal(40, 12)
        income = rng.lognormal(10, 1)
        height = rng.normal(170, 10)
        score = rng.normal()
        colour = colours[rng.integers(5)]
        city = cities[rng.integers(12)]
        member = rng.random() < 0.4
        signal = (age > 45) + (colour in ("red", "blue")) + member + (score > 0.5)
        lines.append(
            ",".join(
                [
                    "" if i % 17 == 0 else f"{age:.1f}",
                    f"{income:.2f}",
                    "" if i % 23 == 0 else f"{height:.1f}",
                    f"{score:.3f}",
                    "" if i % 19 == 0 else colour,
                    city,
                    "" if i % 29 == 0 else str(member).lower(),
                    "yes" if signal >= 2 else "no",
                ]
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(name: str, run_dir: Path, raw) -> dict:
    run = growml.load_run(run_dir)
    report: dict = {
        "data": name,
        "hidden_widths": run.model.hidden_widths,
        "parameters": run.model.n_parameters(),
        "source_columns": len(run.preprocessor.feature_names),
    }
    for layout, grouped in (("default", True), ("columns", False)):
        out = run_dir / f"model-{layout}.onnx"
        export_times = []
        for _ in range(3):
            started = time.perf_counter()
            result = growml.export_run(run_dir, out, grouped=grouped)
            export_times.append(time.perf_counter() - started)
        model = growml.load_onnx(out)
        entry = {
            "export_seconds": statistics.median(export_times),
            "size_bytes": result.size_bytes,
            "nodes": result.nodes,
            "inputs": result.inputs,
            "max_difference": result.parity.max_difference,
        }
        for rows in ROW_COUNTS:
            table = raw.take(np.arange(rows) % raw.num_rows)
            feeds = model.feeds(table)
            x = torch.as_tensor(run.preprocessor.transform(table))
            with torch.inference_mode():
                torch_net = median_seconds(partial(run.model, x))
            onnx_graph = median_seconds(partial(model.session.run, None, feeds))
            torch_path = median_seconds(partial(run.predict_proba, table))
            onnx_path = median_seconds(partial(model.predict_proba, table))
            entry[f"{rows}_rows_us"] = {
                "onnx_graph": 1e6 * onnx_graph,
                "torch_net": 1e6 * torch_net,
                "torch_path": 1e6 * torch_path,
                "onnx_path": 1e6 * onnx_path,
            }
        report[layout] = entry
    report["layout_ratio"] = (
        report["columns"]["1_rows_us"]["onnx_graph"] / report["default"]["1_rows_us"]["onnx_graph"]
    )
    return report


def show(report: dict) -> None:
    widths = ",".join(str(w) for w in report["hidden_widths"])
    print(
        f"\n{report['data']}: {report['source_columns']} columns, hidden {widths}, "
        f"{report['parameters']} parameters"
    )
    for layout in ("default", "columns"):
        entry = report[layout]
        print(
            f"  {layout:8s} export {entry['export_seconds']:.2f} s, "
            f"{entry['size_bytes'] / 1024:.1f} KiB, {entry['nodes']} nodes, "
            f"{entry['inputs']} inputs, max diff {entry['max_difference']:.1g}"
        )
        for rows in ROW_COUNTS:
            t = entry[f"{rows}_rows_us"]
            print(
                f"    {rows:>4} rows: onnx graph {t['onnx_graph']:8.1f} µs, torch net "
                f"{t['torch_net']:8.1f} µs ({t['torch_net'] / t['onnx_graph']:.2f}×) | "
                f"onnx path {t['onnx_path']:8.1f} µs, torch path {t['torch_path']:8.1f} µs "
                f"({t['torch_path'] / t['onnx_path']:.2f}×)"
            )
    print(
        f"  one input per column / default, one row through the graph: "
        f"{report['layout_ratio']:.2f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    reports = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sources = {
            "digits": ("digits", None),
            "mixed": (str(mixed_csv(root / "mixed.csv")), "label"),
        }
        for name, (source, target) in sources.items():
            overrides = [("data.source", source), ("train.threads", 1)]
            if target is not None:
                overrides.append(("data.target", target))
            result = growml.fit(growml.resolve_config(overrides=overrides), out=root / name)
            reports.append(measure(name, root / name, result.data.raw_test))
            show(reports[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "versions": {
            "growml": growml.__version__,
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "results": reports,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
