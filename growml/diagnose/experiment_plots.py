"""PNG plots of an experiment's table (``growml.diagnose.experiments``), error bars from the
spread over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from growml.diagnose.experiments import ExperimentResult
from growml.runs.plots import pyplot, save_figure


def experiment_plot(result: ExperimentResult, path: Path) -> None:
    """``result``'s plot as a PNG at ``path``: width-bound, the training loss against width
    with the bound marked; init-scale, weight change and kernel drift against the scale;
    confusion, the 5th-percentile and minimum cosine against width and against depth."""
    figures = {
        "width-bound": _width_bound_figure,
        "init-scale": _init_scale_figure,
        "confusion": _confusion_figure,
    }
    save_figure(figures[result.name](result), path)


def _width_bound_figure(result: ExperimentResult) -> Any:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
    widths = result.column("width")
    mean, low, high = (result.column(name) for name in ("mse_mean", "mse_min", "mse_max"))
    below = [m - lo for m, lo in zip(mean, low, strict=True)]
    above = [hi - m for m, hi in zip(mean, high, strict=True)]
    axis.errorbar(widths, mean, yerr=[below, above], marker="o", capsize=3, label="mean, min–max")
    bound = result.settings["bound"]
    axis.axvline(bound, color="tab:red", linestyle="--", label=f"bound ⌈2n/(d+1)⌉ = {bound}")
    axis.set_yscale("log")
    axis.set_xlabel("hidden width")
    axis.set_ylabel("training MSE on random targets")
    axis.set_title(f"Random targets fitted: n = {result.settings['n']}, d = {result.settings['d']}")
    _finish(axis)
    return figure


def _init_scale_figure(result: ExperimentResult) -> Any:
    plt = pyplot()
    figure, (change_axis, drift_axis) = plt.subplots(
        1, 2, figsize=(9, 3.8), constrained_layout=True
    )
    scales = result.column("init_scale")
    for name, label in (("hidden_change", "hidden layer"), ("output_change", "output layer")):
        change_axis.errorbar(
            scales,
            result.column(name),
            yerr=result.column(f"{name}_sd"),
            marker="o",
            capsize=3,
            label=label,
        )
    change_axis.set_ylabel("relative weight change ‖W_T − W_0‖ / ‖W_0‖")
    change_axis.set_title("Weight change")
    drift_axis.errorbar(
        scales,
        result.column("kernel_drift"),
        yerr=result.column("kernel_drift_sd"),
        marker="o",
        capsize=3,
        color="tab:green",
        label="probe batch",
    )
    drift_axis.set_ylabel("kernel drift 1 − cos(K_0, K_T)")
    drift_axis.set_title("Empirical NTK drift")
    for axis in (change_axis, drift_axis):
        axis.set_xscale("log")
        # The scales tried as the ticks: a log axis's own minor labels overlap on a short span.
        axis.set_xticks(scales, [f"{scale:g}" for scale in scales])
        axis.minorticks_off()
        axis.set_xlabel("init_scale")
        _finish(axis)
    return figure


def _confusion_figure(result: ExperimentResult) -> Any:
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.8), constrained_layout=True)
    kinds = result.column("kind")
    for axis, kind, label in zip(
        axes, ("width", "depth"), ("hidden width (one layer)", "hidden layers"), strict=True
    ):
        chosen = [index for index, value in enumerate(kinds) if value == kind]
        values = [result.column("value")[i] for i in chosen]
        for name, legend in (("cosine_5th", "5th percentile"), ("min_cosine", "minimum")):
            axis.errorbar(
                values,
                [result.column(name)[i] for i in chosen],
                yerr=[result.column(f"{name}_sd")[i] for i in chosen],
                marker="o",
                capsize=3,
                label=legend,
            )
        axis.set_xscale("log", base=2)
        axis.set_xlabel(label)
        axis.set_ylabel("cosine between two rows' gradients")
        axis.set_title(f"Gradient confusion against {kind}")
        _finish(axis)
    return figure


def _finish(axis: Any) -> None:
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
