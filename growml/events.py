"""Events of training, growth and pruning, consumed by observers (display, history, tuner).

An observer is any callable taking one event. Events are plain data: ``to_dict`` gives the JSON
line that ``history.jsonl`` stores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class TrainStart(Event):
    kind: ClassVar[str] = "train_start"
    max_epochs: int
    train_rows: int
    validation_rows: int
    hidden_widths: list[int]
    parameters: int
    threads: int


@dataclass(frozen=True)
class EpochEnd(Event):
    kind: ClassVar[str] = "epoch"
    epoch: int
    train_loss: float
    validation: dict[str, float]
    hidden_widths: list[int]
    parameters: int
    improved: bool
    seconds: float


@dataclass(frozen=True)
class TrainEnd(Event):
    kind: ClassVar[str] = "train_end"
    epochs: int
    best_epoch: int
    stopped_early: bool
    seconds: float
    best_validation: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GrowthStep(Event):
    """One growth decision: neurons added to a layer, or why none were."""

    kind: ClassVar[str] = "growth"
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


@dataclass(frozen=True)
class PruneStep(Event):
    """One iteration of a pruning schedule."""

    kind: ClassVar[str] = "prune"
    method: str
    structured: bool
    iteration: int
    kept_weights: list[int]
    hidden_widths: list[int]
    parameters: int
    synaptic_flow: float


Observer = Callable[[Event], None]
