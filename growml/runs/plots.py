"""PNG plots of a run, drawn from its history events (matplotlib, no display needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from growml import atomic
from growml.events import EpochEnd, Event, GrowthStep, TrainEnd, kept_epoch, layer_slots

if TYPE_CHECKING:
    from growml.losses.threshold import ThresholdChoice


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: PNGs without a display."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Write ``figure`` as a PNG at ``path`` atomically and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot().close(figure)
    atomic.write_bytes(path, buffer.getvalue())


def growth_plot(history: Sequence[Event], monitor: str, path: Path) -> None:
    """``growth_figure`` as a PNG at ``path``."""
    save_figure(growth_figure(history, monitor), path)


def growth_figure(history: Sequence[Event], monitor: str) -> Any:
    """Width of every hidden layer (top) and the validation metric (bottom) against the
    growing training's epochs, growth steps marked, and the epoch whose weights were kept."""
    plt = pyplot()
    end = next((i for i, event in enumerate(history) if isinstance(event, TrainEnd)), None)
    growing = history if end is None else history[:end]
    epochs = [event for event in growing if isinstance(event, EpochEnd)]
    steps = [event for event in growing if isinstance(event, GrowthStep) and event.added]
    kept = kept_epoch(history)
    x = [event.epoch for event in epochs]
    figure, (widths_axis, metric_axis) = plt.subplots(
        2, 1, figsize=(7, 5), sharex=True, constrained_layout=True
    )
    # Layers inserted by depth growth start part-way (no line before they exist), and a block
    # inserted below the dense layers moves them up: each line follows one layer (its slot).
    inserted = [step.inserted_layer for step in steps if step.inserted_layer is not None]
    starting = len(epochs[0].hidden_widths) if epochs else 0
    slots = [layer_slots(starting, inserted, len(event.hidden_widths)) for event in epochs]
    final = layer_slots(starting, inserted, starting + len(inserted))
    for position, slot in enumerate(final):
        widths_axis.step(
            x,
            [
                event.hidden_widths[held.index(slot)] if slot in held else math.nan
                for event, held in zip(epochs, slots, strict=True)
            ],
            where="post",
            label=f"hidden layer {position + 1}",
        )
    widths_axis.set_ylabel("width (neurons)")
    metric_axis.plot(x, [event.validation[monitor] for event in epochs], color="tab:green")
    metric_axis.set_ylabel(f"validation {monitor}")
    widths_axis.tick_params(labelbottom=True)  # shared with the metric, shown on both
    for axis in (widths_axis, metric_axis):
        axis.set_xlabel("epoch")
    for axis in (widths_axis, metric_axis):
        for step in steps:
            axis.axvline(step.epoch, color="grey", alpha=0.3, linewidth=0.8)
        if kept is not None:
            axis.axvline(kept.epoch, color="tab:red", linestyle="--", linewidth=1.0)
        axis.grid(alpha=0.3)
    if kept is not None:
        widths_axis.plot([], [], color="tab:red", linestyle="--", label="kept")
    widths_axis.legend(loc="upper left", fontsize="small")
    reached = epochs[-1].hidden_widths if epochs else []
    title = f"{len(steps)} growth steps, widths reached {reached}"
    if kept is not None:
        title += f"; kept {kept.hidden_widths} (epoch {kept.epoch})"
    widths_axis.set_title(title)
    return figure


def threshold_plot(choice: ThresholdChoice, metric: str, path: Path) -> None:
    """``threshold_figure`` as a PNG at ``path``."""
    save_figure(threshold_figure(choice, metric), path)


def threshold_figure(choice: ThresholdChoice, metric: str) -> Any:
    """The validation metric against the decision threshold τ (as measured, and bagged over
    resamples), the chosen τ marked."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    axis.plot(choice.grid, choice.curve, color="tab:blue", alpha=0.5, label="validation rows")
    axis.plot(choice.grid, choice.bagged, color="tab:blue", label="bagged over resamples")
    label = f"chosen τ = {choice.value:.2f}" + (" (½ kept)" if choice.kept_half else "")
    axis.axvline(choice.value, color="tab:red", linestyle="--", label=label)
    axis.axvline(0.5, color="grey", alpha=0.4, linewidth=0.8)
    axis.set_xlabel("threshold τ on the positive-class probability")
    axis.set_ylabel(f"validation {metric}")
    axis.legend(loc="lower center", fontsize="small")
    axis.grid(alpha=0.3)
    return figure
