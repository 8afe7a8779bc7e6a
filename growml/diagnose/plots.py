"""The PNG of a run's diagnosis (``plots/diagnostics.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from growml.runs.plots import pyplot, save_figure

if TYPE_CHECKING:
    from growml.diagnose.diagnosis import Diagnosis


def diagnosis_plot(diagnosis: Diagnosis, path: Path) -> None:
    """Gradient confusion over growth (left: the 5th-percentile and minimum cosine of the
    probe's per-example gradients against the network's parameters, at birth, after each
    growth step and at the kept epoch) and laziness (right: each dense layer's relative weight
    change from its births, the kernel drift in the title)."""
    plt = pyplot()
    figure, (course, moved) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    steps = diagnosis.course
    if steps:
        parameters = [step.parameters for step in steps]
        course.plot(parameters, [s.cosine_5th for s in steps], "o-", label="5th percentile")
        course.plot(parameters, [s.min_cosine for s in steps], "s--", label="minimum")
    kept = diagnosis.confusion_kept
    if kept is not None:
        course.plot(
            [diagnosis.parameters], [kept.cosine_5th], "*", markersize=14, label="kept network"
        )
    course.set_xscale("log")
    course.set_xlabel("parameters (at the start, after each growth step, kept)")
    course.set_ylabel("cosine between two rows' gradients")
    probe = kept.probe if kept is not None else 0
    course.set_title(f"Gradient confusion on {probe} probe rows")
    course.axhline(0, color="grey", linewidth=0.5)
    course.legend(fontsize=8)
    laziness = diagnosis.laziness
    if laziness is not None:
        names = [f"hidden {k + 1}" for k in range(len(laziness.weight_change) - 1)] + ["output"]
        moved.bar(names, laziness.weight_change, color="tab:blue")
        moved.set_ylabel("‖W − W_birth‖ / ‖W_birth‖")
        moved.set_title(f"Laziness: kernel drift {laziness.kernel_drift:.3g}")
    save_figure(figure, path)
