"""``plots/compare.png``: what growth bought, in parameters (left) and in wall time (right).

Both panels put the test metric (in points) on the y axis. Fixed widths are a line with
error bars (mean ± sd over seeds), one line per depth; scikit-learn's MLP a dashed line; every
growing run a marker of its own (one per seed) with its mean ± sd as a larger one. The band
under the best fixed width is the half point within which a network counts as as good.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from growml.runs.plots import pyplot, save_figure

_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "f1": "F1", "r2": "R²"}
_GROWN_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def compare_plot(document: dict[str, Any], path: Path) -> None:
    """``compare_figure`` as a PNG at ``path``."""
    save_figure(compare_figure(document), path)


def compare_figure(document: dict[str, Any]) -> Any:
    """The test metric against parameters (left) and against wall time (right)."""
    plt = pyplot()
    metric = document["metric"]
    members = [m for m in document["members"] if m["error"] is None]
    rows = [row for row in document["rows"] if row["score"] is not None]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True, constrained_layout=True)
    for axis, x_key, x_label in (
        (axes[0], "parameters", "parameters (count)"),
        (axes[1], "wall_seconds", "wall time per run (s)"),
    ):
        for kind, style in (("fixed", "-o"), ("sklearn", "--s")):
            if x_key != "parameters":
                style = style[-1]  # times do not grow with width in order: points, no line
            for depth, family in _families(rows, kind).items():
                name = "fixed" if kind == "fixed" else "scikit-learn"
                axis.errorbar(
                    [row[x_key] for row in family],
                    [100 * row["score"]["mean"] for row in family],
                    yerr=[100 * row["score"]["sd"] for row in family],
                    fmt=style,
                    color="tab:blue" if kind == "fixed" else "tab:grey",
                    alpha=1.0 / depth**0.5,
                    capsize=3,
                    markersize=4,
                    label=f"{name} widths" + (f" ({depth} layers)" if depth > 1 else ""),
                )
                if kind == "fixed":
                    for row in family:
                        axis.annotate(
                            row["label"].removeprefix("fixed "),
                            (row[x_key], 100 * row["score"]["mean"]),
                            textcoords="offset points",
                            xytext=(0, 7),
                            ha="center",
                            fontsize="x-small",
                            color="tab:blue",
                        )
        growing = [row for row in rows if row["kind"] == "grown"]
        for colour, row in zip(_GROWN_COLOURS, growing, strict=False):
            runs = [m for m in members if m["label"] == row["label"]]
            axis.scatter(
                [m["parameters"] if x_key == "parameters" else m["seconds"]["wall"] for m in runs],
                [100 * m["metrics"]["test"][metric] for m in runs],
                marker="*",
                s=70,
                color=colour,
                alpha=0.55,
                zorder=3,
            )
            axis.errorbar(
                [row[x_key]],
                [100 * row["score"]["mean"]],
                yerr=[100 * row["score"]["sd"]],
                fmt="*",
                markersize=15,
                color=colour,
                markeredgecolor="black",
                capsize=3,
                zorder=4,
                label=f"{row['label']} (mean; small stars: each seed)",
            )
        best = document["verdict"].get("best_fixed")
        if best:
            top = 100 * best["score"]
            axis.axhspan(
                top - 100 * document["verdict"]["tolerance"], top, color="tab:green", alpha=0.12
            )
        _x_scale(axis, [row[x_key] for row in rows])
        axis.set_xlabel(x_label)
        axis.set_ylabel(f"test {_NAMES.get(metric, metric)} (points)")
        axis.grid(alpha=0.3, which="both")
    axes[1].tick_params(labelleft=True)  # the shared metric axis, readable on both panels
    axes[0].legend(loc="lower right", fontsize="small")
    seeds = len(document["seeds"])
    figure.suptitle(
        f"{document['data']}: growth against fixed widths, mean ± sd over {seeds} seed"
        + ("s" if seeds > 1 else "")
        + " (green band: within half a point of the best fixed width)",
        fontsize="medium",
    )
    return figure


def _x_scale(axis: Any, values: list[float]) -> None:
    """A log axis for values over a decade or more (parameters of 8 to 256 neurons), labelled
    at 1, 2 and 5; a linear one otherwise, where a log axis might show no label at all (wall
    times of 2.5 to 4.5 s)."""
    from matplotlib import ticker

    low, high = min(values, default=1.0), max(values, default=1.0)
    if low <= 0 or high < 10 * low:
        return
    axis.set_xscale("log")
    for ticks in (axis.xaxis.set_major_formatter, axis.xaxis.set_minor_formatter):
        ticks(ticker.FuncFormatter(_tick))


def _tick(value: float, _: object) -> str:
    """Log-axis labels as plain numbers (0.3, 2, 1000), and only at 1, 2 and 5 of a decade."""
    from math import floor, log10

    if value <= 0:
        return ""
    leading = round(value / 10 ** floor(log10(value)), 6)
    return f"{value:g}" if leading in (1, 2, 5) else ""


def _families(rows: list[dict[str, Any]], kind: str) -> dict[int, list[dict[str, Any]]]:
    """Rows of ``kind`` by depth, each family sorted by parameters."""
    families: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if row["kind"] == kind:
            families.setdefault(len(row["widths"][0]), []).append(row)
    return {
        depth: sorted(family, key=lambda r: r["parameters"]) for depth, family in families.items()
    }
