"""Events of training, growth and pruning, consumed by observers (display, history, tuner).

An observer is any callable taking one event. Events are typed records (pydantic dataclasses,
one per kind, told apart by their ``event`` field): ``to_dict`` gives the JSON line that
``history.jsonl`` stores, and ``parse_event`` reads one back as the event it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, field
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter
from pydantic.dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """What every event has: its kind in ``event`` (each kind sets it), and its JSON line."""

    def to_dict(self) -> dict[str, Any]:
        """The event as its ``history.jsonl`` line: ``event`` first, then the fields in order."""
        fields = asdict(self)
        return {"event": fields.pop("event"), **fields}


@dataclass(frozen=True)
class TrainStart(Event):
    max_epochs: int
    train_rows: int
    validation_rows: int
    hidden_widths: list[int]
    parameters: int
    threads: int
    event: Literal["train_start"] = field(default="train_start", kw_only=True)


@dataclass(frozen=True)
class EpochEnd(Event):
    epoch: int
    train_loss: float
    validation: dict[str, float]
    hidden_widths: list[int]
    parameters: int
    improved: bool
    seconds: float
    event: Literal["epoch"] = field(default="epoch", kw_only=True)


@dataclass(frozen=True)
class TrainEnd(Event):
    epochs: int
    best_epoch: int
    stopped_early: bool
    seconds: float
    best_validation: dict[str, float] = field(default_factory=dict)
    event: Literal["train_end"] = field(default="train_end", kw_only=True)


@dataclass(frozen=True)
class GrowthStep(Event):
    """One growth decision: neurons added to a layer, or why none were. ``inserted_layer``:
    the hidden layer (0-based) inserted by this step to receive them, if one was."""

    epoch: int
    layer: int | None
    method: str
    added: int
    lambdas: list[float]
    noise_floor: float
    predicted_first_order: float
    gamma: float
    loss_before: float | None
    loss_after: float | None
    bottleneck_before: list[float | None]
    bottleneck_after: list[float | None]
    hidden_widths: list[int]
    parameters: int
    seconds: float
    reason: str
    finished: bool
    skipped: dict[int, str] = field(default_factory=dict)
    inserted_layer: int | None = None
    event: Literal["growth"] = field(default="growth", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """As every event's, without ``inserted_layer`` unless the step inserted one."""
        line = super().to_dict()
        if line["inserted_layer"] is None:
            del line["inserted_layer"]
        return line

    def describe(self) -> str:
        """One line for the step, as ``growml fit`` and ``verbose=1`` print it (the symbols
        are explained in ``growml fit --help``): ``epoch  12: layer 1 +3 (λ₁ 0.41, γ 1) loss
        0.512 → 0.430, widths 9``, or why nothing was added."""
        prefix = f"epoch {self.epoch:>3}: "
        if self.finished:
            return prefix + f"growth stopped: {self.reason}"
        if self.layer is None:
            return prefix + f"nothing grown: {self.reason}"
        layer = f"layer {self.layer + 1}"
        if not self.added:
            return prefix + f"{layer} not grown: {self.reason}"
        widths = ",".join(str(w) for w in self.hidden_widths)
        if self.inserted_layer is not None:
            layer = f"new {layer}"
        return (
            prefix + f"{layer} +{self.added} (λ₁ {self.lambdas[0]:.2g}, γ {self.gamma:.2g}) "
            f"loss {self.loss_before:.3f} → {self.loss_after:.3f}, widths {widths}"
        )


@dataclass(frozen=True)
class PruneStep(Event):
    """One iteration of a pruning schedule."""

    method: str
    structured: bool
    iteration: int
    kept_weights: list[int]
    hidden_widths: list[int]
    parameters: int
    synaptic_flow: float
    event: Literal["prune"] = field(default="prune", kw_only=True)


@dataclass(frozen=True)
class TrimStep(Event):
    """Trimming after growth: the neurons removed from the grown network (least harm to the
    validation ``monitor`` first), before fine-tuning; ``merged``: duplicates folded into a
    twin, which leaves the function unchanged."""

    monitor: str
    tolerance: float
    validation_before: float
    validation_after: float
    removed: list[int]
    merged: list[int]
    widths_before: list[int]
    hidden_widths: list[int]
    parameters_before: int
    parameters: int
    seconds: float
    event: Literal["trim"] = field(default="trim", kw_only=True)

    def describe(self) -> str:
        """One line: ``trimmed 14 neurons: widths 22 → 8, parameters 310 → 114, validation
        loss 0.081 → 0.082``."""
        gone = sum(self.removed) + sum(self.merged)
        if not gone:
            return (
                f"trimming: no neuron can go without a worse validation {self.monitor} "
                f"({self.validation_before:.4g})"
            )
        return (
            f"trimmed {gone} neurons: widths {_widths(self.widths_before)} → "
            f"{_widths(self.hidden_widths)}, parameters {self.parameters_before} → "
            f"{self.parameters}, validation {self.monitor} {self.validation_before:.4g} → "
            f"{self.validation_after:.4g}"
        )


@dataclass(frozen=True)
class TrimEnd(Event):
    """Trimming's decision after ``epochs`` of fine-tuning: ``kept`` the trimmed network (its
    validation ``monitor`` no worse than the untrimmed one's, within the tolerance) or went
    back to the untrimmed one; ``validation_trimmed`` is None when nothing was trimmed."""

    kept: bool
    monitor: str
    validation_untrimmed: float
    validation_trimmed: float | None
    epochs: int
    hidden_widths: list[int]
    parameters: int
    event: Literal["trim_end"] = field(default="trim_end", kw_only=True)

    def describe(self) -> str:
        if self.validation_trimmed is None:
            return "trimming kept the grown network: nothing to trim"
        tuned = f" after {self.epochs} epochs of fine-tuning" if self.epochs else ""
        scores = (
            f"validation {self.monitor} {self.validation_trimmed:.4g}{tuned}, "
            f"{self.validation_untrimmed:.4g} untrimmed"
        )
        if self.kept:
            return f"trimming kept the trimmed network ({scores})"
        return f"trimming went back to the grown network ({scores})"


def _widths(widths: Sequence[int]) -> str:
    return ",".join(str(width) for width in widths)


@dataclass(frozen=True)
class ConfusionMeasured(Event):
    """Gradient confusion on a run's probe batch (``diagnostics.enabled``; docs/theory.md):
    at the ``start`` of training (epoch 0), and around each growth step that changed the
    widths, just ``before growth`` and just ``after growth`` (the new neurons not yet trained).
    ``probe``: the rows measured."""

    epoch: int
    stage: Literal["start", "before growth", "after growth"]
    hidden_widths: list[int]
    parameters: int
    probe: int
    eta: float
    min_cosine: float
    cosine_5th: float
    mean_cosine: float
    event: Literal["confusion"] = field(default="confusion", kw_only=True)


@dataclass(frozen=True)
class DataProgress(Event):
    """How far a step of reading a large file has got (``growml.data.streaming``): ``done`` of
    ``total`` ``unit`` (bytes of the file, or rows). Shown while data is read; not part of a
    run's history, which begins with training."""

    step: str
    done: int
    total: int
    unit: Literal["bytes", "rows"] = "rows"
    event: Literal["data_progress"] = field(default="data_progress", kw_only=True)


AnyEvent = Annotated[
    TrainStart
    | EpochEnd
    | TrainEnd
    | GrowthStep
    | PruneStep
    | TrimStep
    | TrimEnd
    | ConfusionMeasured,
    Field(discriminator="event"),
]
_EVENTS: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def parse_event(line: dict[str, Any]) -> Event:
    """The event a ``history.jsonl`` line (parsed JSON) records; raises pydantic's
    ``ValidationError`` for anything that is not one."""
    return _EVENTS.validate_python(line)


Observer = Callable[[Event], None]


def kept_epoch(history: Sequence[Event], final: bool = False) -> EpochEnd | None:
    """The epoch event whose weights a training kept (its best epoch): the first training's
    (the growing one), or with ``final`` the last one's (fine-tuning after trimming or
    pruning, when there is one, and a trimming was kept); None before any epoch."""
    trainings: list[tuple[list[EpochEnd], int | None]] = []
    epochs: list[EpochEnd] = []
    for event in history:
        if isinstance(event, EpochEnd):
            epochs.append(event)
        elif isinstance(event, TrainEnd):
            trainings.append((epochs, event.best_epoch))
            epochs = []
        elif isinstance(event, TrimEnd) and event.epochs and not event.kept:
            trainings.pop()  # the fine-tuning of a trimmed network that was not kept
    if epochs or not trainings:
        trainings.append((epochs, None))  # still training: its latest epoch
    epochs, best = trainings[-1] if final else trainings[0]
    return next((e for e in epochs if e.epoch == best), epochs[-1] if epochs else None)


def layer_slots(starting: int, insertions: Sequence[int], layers: int) -> list[int]:
    """Which of a run's hidden layers each of a network's ``layers`` hidden layers is, in the
    network's order: 0 … ``starting`` − 1 the starting layers, ``starting`` + i the layer the
    i-th depth-growth step inserted. ``insertions``: each inserted layer's position when it was
    inserted, in order (``GrowthStep.inserted_layer``); the network has had the first
    ``layers − starting`` of them. A block goes in below the dense layers, so a layer's
    position can change while its slot stays."""
    slots = list(range(starting))
    for number, position in enumerate(insertions[: layers - starting]):
        slots.insert(position, starting + number)
    return slots
