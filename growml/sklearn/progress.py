"""``verbose=1``: the training's progress as plain lines on stderr, one per epoch and one per
growth, pruning or trimming step, the way scikit-learn's ``MLPClassifier(verbose=True)`` prints its
iterations (``growml fit`` draws the same events as a live display)."""

from __future__ import annotations

import sys

from growml.events import (
    EpochEnd,
    Event,
    GrowthStep,
    PruneStep,
    TrainEnd,
    TrainStart,
    TrimEnd,
    TrimStep,
)


def progress_line(event: Event) -> str | None:
    """The line ``event`` prints, or None for an event that prints nothing."""
    if isinstance(event, TrainStart):
        return (
            f"training on {event.train_rows} rows ({event.validation_rows} for validation), "
            f"widths {_widths(event.hidden_widths)}, {event.parameters} parameters"
        )
    if isinstance(event, EpochEnd):
        validation = ", ".join(f"{key} {value:.4f}" for key, value in event.validation.items())
        return (
            f"epoch {event.epoch}: loss {event.train_loss:.4f}, validation {validation}, "
            f"widths {_widths(event.hidden_widths)}"
        )
    if isinstance(event, GrowthStep | TrimStep | TrimEnd):
        return event.describe()
    if isinstance(event, PruneStep):
        return (
            f"pruning ({event.method}, iteration {event.iteration}): {event.parameters} "
            f"parameters, widths {_widths(event.hidden_widths)}"
        )
    if isinstance(event, TrainEnd):
        ending = "stopped early" if event.stopped_early else "finished"
        return (
            f"training {ending} after {event.epochs} epochs; kept the weights of epoch "
            f"{event.best_epoch}"
        )
    return None


class Progress:
    """An observer of ``growml.fit`` that prints ``progress_line`` of every event to stderr."""

    def __call__(self, event: Event) -> None:
        line = progress_line(event)
        if line is not None:
            print(line, file=sys.stderr, flush=True)


def _widths(widths: list[int]) -> str:
    return ",".join(str(width) for width in widths)
