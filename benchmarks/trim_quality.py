"""What trimming buys: growth with and without ``growth.trim`` against fixed widths.

On each dataset, ``growml compare`` trains on the same splits (one per seed): the growing run
untrimmed (``grown``, ``growth.trim=false``), the same run trimmed after growth (the ``trim``
variant, ``growth.trim=true``), and fixed widths 2 … 128. Prints and writes (JSON and
Markdown, under ``benchmarks/results/``) per dataset: the test score and parameters of both,
and their parameters over the smallest fixed width within half a point of the best fixed width (the
comparison's own verdict for ``grown``, the same rule for ``trim``).

    .venv/bin/python benchmarks/trim_quality.py [--seeds 2] [--datasets xor,circles]
        [--work DIR]   # keeps each comparison in DIR/<data>; an existing one is resumed
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

DATASETS = ("xor", "circles", "spirals", "breast-cancer", "digits")
WIDTHS = "2,4,8,16,32,64,128"
RESULTS = Path(__file__).parent / "results"


def run_comparison(data: str, seeds: int, out: Path) -> dict[str, Any]:
    """``growml compare`` of ``data`` with the trimmed variant; its compare.json."""
    growml = Path(sys.executable).parent / "growml"
    command = [
        str(growml),
        "compare",
        data,
        "--seeds",
        str(seeds),
        "--seed",
        "0",
        "--widths",
        WIDTHS,
        "--set",
        "growth.trim=false",
        "--variant",
        "trim growth.trim=true",
        "--jobs",
        "1",
        "--out",
        str(out),
        "--no-keep-runs",
    ]
    subprocess.run(command, check=True, capture_output=True)
    return json.loads((out / "compare.json").read_text())


def summarise(document: dict[str, Any]) -> dict[str, Any]:
    """The two growing runs against the smallest fixed width within the verdict's tolerance."""
    rows = {row["label"]: row for row in document["rows"]}
    verdict = document["verdict"]
    smallest = verdict["smallest_within"]
    best = verdict["best_fixed"]
    line: dict[str, Any] = {
        "data": document["data"],
        "metric": document["metric"],
        "smallest_fixed": {"label": smallest["label"], "parameters": smallest["parameters"]},
        "best_fixed": {"label": best["label"], "score": best["score"]},
    }
    for label in ("grown", "trim"):
        row = rows[label]
        line[label] = {
            "score": row["score"]["mean"],
            "sd": row["score"]["sd"],
            "parameters": row["parameters"],
            "widths": row["widths"],
            "over_smallest": row["parameters"] / smallest["parameters"],
            "matches": row["score"]["mean"] >= best["score"] - verdict["tolerance"],
        }
    return line


def markdown(lines: list[dict[str, Any]], seeds: int) -> str:
    head = (
        f"Test score (mean ± sd over {seeds} seeds, points), parameters, and parameters over the "
        "smallest fixed width within 0.5 point of the best fixed width (fixed widths "
        f"{WIDTHS}).\n\n"
        "| data | grown | params | / smallest | trimmed | params | / smallest | smallest fixed |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    body = []
    for line in lines:
        grown, trim = line["grown"], line["trim"]
        smallest = line["smallest_fixed"]
        body.append(
            f"| {line['data']} | {100 * grown['score']:.1f} ± {100 * grown['sd']:.1f} | "
            f"{grown['parameters']:.0f} | {grown['over_smallest']:.2f} | "
            f"{100 * trim['score']:.1f} ± {100 * trim['sd']:.1f} | {trim['parameters']:.0f} | "
            f"{trim['over_smallest']:.2f} | {smallest['label']} ({smallest['parameters']:.0f}) |"
        )
    return head + "\n".join(body) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--work", type=Path, default=Path("runs/trim-quality"))
    args = parser.parse_args()
    lines = []
    for data in args.datasets.split(","):
        out = args.work / data
        found = out / "compare.json"
        document = (
            json.loads(found.read_text())
            if found.is_file()
            else run_comparison(data, args.seeds, out)
        )
        lines.append(summarise(document))
        print(json.dumps(lines[-1]), flush=True)
    table = markdown(lines, args.seeds)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trim_quality.json").write_text(json.dumps(lines, indent=1) + "\n")
    (RESULTS / "trim_quality.md").write_text(table)


if __name__ == "__main__":
    main()
