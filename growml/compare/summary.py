"""From members' records to what a comparison says: one row per configuration and a verdict.

Scores are fractions (accuracy 0.96, R² 0.93); a *point* is 0.01 of them, so "within half a
point" of 96.0 % accuracy is 95.5 % or better, and of R² 0.930 is 0.925 or better.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from growml.compare.members import GROWN

# How close to the best fixed width counts as "as good": half a point.
TOLERANCE = 0.005


def summarise(records: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """One row per configuration, in the order configurations first appear in ``records``:
    the test ``metric`` (and F1 when the records have it) as mean and sd over the seeds that
    finished, parameters, epochs, training and wall seconds (means), and the widths reached."""
    labels = list(dict.fromkeys(record["label"] for record in records))
    rows = []
    for label in labels:
        members = [record for record in records if record["label"] == label]
        done = [record for record in members if record["error"] is None]
        test = [record["metrics"]["test"] for record in done]
        row = {
            "label": label,
            "kind": members[0]["kind"],
            "seeds": len(members),
            "failed": len(members) - len(done),
            "errors": sorted({record["error"] for record in members if record["error"]}),
            "widths": [record["hidden_widths"] for record in done],
            "score": _mean_sd([values[metric] for values in test]),
            "f1": _mean_sd([values["f1"] for values in test if "f1" in values]),
            "parameters": _mean([record["parameters"] for record in done]),
            "epochs": _mean([record["epochs"] for record in done]),
            "train_seconds": _mean([record["seconds"]["train"] for record in done]),
            "wall_seconds": _mean([record["seconds"]["wall"] for record in done]),
        }
        rows.append(row)
    return rows


def verdict(rows: Sequence[dict[str, Any]], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """What growth bought, against growml's own fixed widths.

    ``best_fixed``: the fixed configuration with the best mean score (fewer parameters break a
    tie); ``smallest_within``: the fixed one with the fewest parameters whose mean is within
    ``tolerance`` of it; ``grown``: the growing run. ``gap`` is grown − best (negative: growth
    fell short), ``matched`` whether it is within ``tolerance``; the wall time of the growing
    run is set against the whole sweep's (every fixed width, one seed each, one after another).
    """
    fixed = [row for row in rows if row["kind"] == "fixed" and row["score"] is not None]
    grown = next((row for row in rows if row["label"] == GROWN), None)
    if not fixed or grown is None or grown["score"] is None:
        missing = "fixed width" if not fixed else "growing run"
        return {"tolerance": tolerance, "summary": [f"No {missing} finished: nothing to compare."]}
    best = max(fixed, key=lambda row: (row["score"]["mean"], -row["parameters"]))
    floor = best["score"]["mean"] - tolerance
    within = min(
        (row for row in fixed if row["score"]["mean"] >= floor - 1e-12),
        key=lambda row: row["parameters"],
    )
    gap = grown["score"]["mean"] - best["score"]["mean"]
    sweep = sum(row["wall_seconds"] for row in fixed)
    result = {
        "tolerance": tolerance,
        "best_fixed": _brief(best),
        "smallest_within": _brief(within),
        "grown": _brief(grown),
        "gap": gap,
        "matched": gap >= -tolerance - 1e-12,
        "parameters_over_best": grown["parameters"] / best["parameters"],
        "parameters_over_smallest_within": grown["parameters"] / within["parameters"],
        "wall_seconds": {
            "grown": grown["wall_seconds"],
            "sweep": sweep,
            "grown_over_sweep": grown["wall_seconds"] / sweep if sweep > 0 else None,
        },
    }
    result["summary"] = _sentences(result)
    return result


def points(score: float) -> str:
    """A score in points: 0.9612 → ``"96.1"``."""
    return f"{100 * score:.1f}"


def _sentences(result: dict[str, Any]) -> list[str]:
    best, within, grown = result["best_fixed"], result["smallest_within"], result["grown"]
    tolerance = points(result["tolerance"])
    lines = [
        f"Best fixed width: {best['label']}, {points(best['score'])} "
        f"({best['parameters']:,.0f} parameters).",
        f"Smallest fixed width within {tolerance} point of it: {within['label']}, "
        f"{points(within['score'])} ({within['parameters']:,.0f} parameters).",
    ]
    gap = abs(result["gap"])
    size = result["parameters_over_smallest_within"]
    if result["matched"]:
        how = "beats" if result["gap"] > result["tolerance"] else "matches"
        lines.append(
            f"Growth {how} it: {points(grown['score'])} with {grown['parameters']:,.0f} "
            f"parameters ({size:.2g}× the smallest fixed width within {tolerance} point)."
        )
    else:
        lines.append(
            f"Growth falls {100 * gap:.1f} points short: {points(grown['score'])} with "
            f"{grown['parameters']:,.0f} parameters ({size:.2g}× the smallest fixed width "
            f"within {tolerance} point)."
        )
    wall = result["wall_seconds"]
    if wall["grown_over_sweep"] is not None:
        lines.append(
            f"One growing run took {wall['grown']:.1f} s of wall time; the sweep of fixed "
            f"widths took {wall['sweep']:.1f} s per seed ({wall['grown_over_sweep']:.2f}×)."
        )
    return lines


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": row["label"],
        "score": row["score"]["mean"],
        "sd": row["score"]["sd"],
        "parameters": row["parameters"],
    }


def _mean_sd(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None
