"""The PNG of a run's diagnosis (``plots/diagnostics.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from growml.runs.plots import pyplot, save_figure

if TYPE_CHECKING:
    from growml.diagnose.diagnosis import Diagnosis


def diagnosis_plot(diagnosis: Diagnosis, path: Path) -> None:
    """Gradient confusion over growth (left: the 5th-percentile and minimum cosine of the
    probe's per-example gradients against the network's parameters, at the start, just before
    and just after each growth step, and for the kept network) and laziness (right: each
    dense layer's relative weight change from its births, the kernel drift in the title)."""
    plt = pyplot()
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    figure, (course, moved) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    steps = diagnosis.course
    # In time order: growth moves right (more parameters), training between two steps moves
    # up or down at one size. Filled markers: at the start and after growth; open: before.
    parameters = [step.parameters for step in steps]
    for name, field, color, line in (
        ("5th percentile", "cosine_5th", "tab:blue", "-"),
        ("minimum", "min_cosine", "tab:orange", "--"),
    ):
        course.plot(parameters, [getattr(s, field) for s in steps], line, color=color, label=name)
        for stage, marker in (("start", "D"), ("before growth", "o"), ("after growth", "s")):
            chosen = [s for s in steps if s.stage == stage]
            course.plot(
                [s.parameters for s in chosen],
                [getattr(s, field) for s in chosen],
                marker,
                color=color,
                markerfacecolor="none" if stage == "before growth" else None,
            )
    kept = diagnosis.confusion_kept
    if kept is not None:
        course.plot(
            [diagnosis.parameters], [kept.cosine_5th], "*", markersize=14, label="kept network"
        )
    course.set_xscale("log")
    # Plain numbers at 1, 2 and 5 per decade: a log axis's own minor labels overlap.
    course.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    course.xaxis.set_major_formatter(ScalarFormatter())
    course.xaxis.set_minor_formatter(NullFormatter())
    course.set_xlabel("parameters (◆ start, ○ before a growth step, ■ after it)")
    course.set_ylabel("cosine between two rows' gradients")
    probe = kept.probe if kept is not None else 0
    course.set_title(f"Gradient confusion on {probe} probe rows")
    course.axhline(0, color="grey", linewidth=0.5)
    course.legend(fontsize=7)
    laziness = diagnosis.laziness
    if laziness is not None:
        names = [f"hidden {k + 1}" for k in range(len(laziness.weight_change) - 1)] + ["output"]
        moved.bar(names, laziness.weight_change, color="tab:blue")
        moved.set_ylabel("‖W − W_birth‖ / ‖W_birth‖")
        moved.set_title(f"Laziness: kernel drift {laziness.kernel_drift:.3g}")
    save_figure(figure, path)
