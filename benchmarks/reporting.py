"""What several benchmarks share: timing a call, the line of ratios, and the results files."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def median_seconds(call: Callable[[], object], budget: float = 0.6, minimum: int = 30) -> float:
    """Median over repeated calls, after a warm-up, for about ``budget`` seconds."""
    for _ in range(20):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < minimum or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ratio_line(ratios: dict) -> str:
    """``name value; ...``, numbers to three decimals."""
    return "; ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in ratios.items()
    )


def write_results(out: Path, report: dict, markdown: Callable[[dict], str]) -> None:
    """``report`` as JSON at ``out`` and its Markdown table beside it (``.md``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = out.with_suffix(".md")
    table.write_text(markdown(report))
    print(f"\nwritten {out} and {table}")
