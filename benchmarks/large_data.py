"""Data larger than memory: `growml fit` on a seeded synthetic CSV of 20 numeric columns and a
binary target, at 1M and 4M rows (and 10M unless ``--no-10m``), each in a fresh process.

Reports each run's peak resident memory (the child's ``ru_maxrss``, which counts the resident
pages of the memory-mapped cache) and wall time, the ratio of the 4M time to the 1M time
(linear: 4; the goal is at most 4.4), and the 1M run with ``data.stream=off`` (the whole file
in memory) beside it. The CSV files are written with pyarrow's writer into a temporary folder
and deleted afterwards. JSON to ``benchmarks/results/large_data.json``.

    .venv/bin/python benchmarks/large_data.py [--epochs 3] [--no-10m] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

COLUMNS = 20
CHUNK_ROWS = 500_000
MILLION = 1_000_000
RESULTS = Path(__file__).parent / "results" / "large_data.json"
GROWML = Path(sys.executable).with_name("growml")
# The child's peak resident set, read after it exits (kilobytes on Linux).
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "seconds = time.perf_counter() - started\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(code, seconds, peak)\n"
)


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` rows of 20 standard normal columns (4 decimals) and ``y``: whether a fixed
    linear score of them plus noise is positive."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=COLUMNS)
    names = [f"x{i}" for i in range(COLUMNS)] + ["y"]
    schema = pa.schema([(name, pa.float64()) for name in names[:-1]] + [("y", pa.int64())])
    with pacsv.CSVWriter(path, schema) as writer:
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            x = np.round(rng.normal(size=(count, COLUMNS)), 4)
            y = (x @ weights + rng.normal(scale=2.0, size=count) > 0).astype(np.int64)
            arrays = [pa.array(x[:, j]) for j in range(COLUMNS)] + [pa.array(y)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def fit(path: Path, out: Path, epochs: int, stream: str) -> dict[str, float]:
    command = [
        str(GROWML),
        "fit",
        str(path),
        "--target",
        "y",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--overwrite",
        "--set",
        f"data.stream={stream}",
    ]
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True
    )
    code, seconds, peak = measured.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"growml fit failed on {path.name} (exit {code})")
    return {"seconds": round(float(seconds), 2), "peak_rss_mb": round(int(peak) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-10m", dest="ten", action="store_false")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    args = parser.parse_args()
    sizes = [MILLION, 4 * MILLION] + ([10 * MILLION] if args.ten else [])
    runs = []
    with tempfile.TemporaryDirectory(prefix="growml-large-") as folder:
        for rows in sizes:
            path = Path(folder) / f"rows-{rows // MILLION}m.csv"
            started = time.perf_counter()
            write_csv(path, rows)
            written = time.perf_counter() - started
            modes = ["on", "off"] if args.baseline and rows == MILLION else ["on"]
            for stream in modes:
                result = fit(path, Path(folder) / "run", args.epochs, stream)
                runs.append(
                    {
                        "rows": rows,
                        "stream": stream,
                        "file_mb": round(path.stat().st_size / 1e6, 1),
                        "float32_mb": round(rows * COLUMNS * 4 / 1e6, 1),
                        **result,
                    }
                )
                print(json.dumps(runs[-1]), f"(CSV written in {written:.0f} s)", flush=True)
            path.unlink()
    streamed = {run["rows"]: run["seconds"] for run in runs if run["stream"] == "on"}
    document = {
        "command": "growml fit FILE --target y --epochs "
        f"{args.epochs} --set data.stream=on|off (default growth)",
        "runs": runs,
        "ratio_4m_to_1m": round(streamed[4 * MILLION] / streamed[MILLION], 2),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"4M / 1M time: {document['ratio_4m_to_1m']} (linear: 4, goal ≤ 4.4)")


if __name__ == "__main__":
    main()
