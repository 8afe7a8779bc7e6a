"""``metrics.json`` and ``model.json`` as typed records: what a run measured and what its model
is, read back by field, not by key.

The sections follow ``growml fit``: ``train``, ``validation`` and ``test`` metrics (by name:
``accuracy``, ``macro_f1``, ``f1`` and ``f1_at_0.5`` at a binary run's threshold, ``log_loss``;
``rmse``, ``r2`` for regression), the network's size, the epochs, the timings, and the growth,
pruning and threshold summaries of the runs that had them. Fields added since the first run
format are optional, so that every run growml ever wrote still reads; keys this growml does
not know are kept.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PositiveInt


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """The record as its JSON: the keys it was made with, in their order."""
        return self.model_dump(mode="json", exclude_unset=True)


class Seconds(_Record):
    """Seconds of a fit, two of them shown to users: the *training time* (``train``: training,
    growth, pruning and fine-tuning) and the *wall time* (``wall``: the fit from reading the
    data to the trained network measured; writing the run's files follows it), beside the
    training time per epoch and the time until the data was ready for training (``data``).
    Runs written before the wall time had its name call it ``total``."""

    data: float
    train: float
    per_epoch: float
    wall: float = Field(validation_alias=AliasChoices("wall", "total"))


class GrowthSummary(_Record):
    """What growth did: the steps that added neurons, per layer, the hidden layers it
    inserted (``growth.max_depth``), what the kept weights hold (they may predate the last
    steps), and why growth stopped."""

    method: str
    start_widths: list[int]
    steps: int
    neurons_added: list[int]
    kept_epoch: int | None = None
    kept_widths: list[int] | None = None
    neurons_kept: list[int] | None = None
    layers_inserted: list[int] = []
    seconds: float
    stopped: str


class PruneSummary(_Record):
    """What pruning removed: prunable weights and parameters before and after."""

    method: str
    structured: bool
    when: str
    weights_before: int
    weights_after: int
    compression: float
    parameters_before: int
    parameters_after: int
    hidden_widths: list[int]


class TrimSummary(_Record):
    """What trimming after growth removed (per hidden layer), the widths and parameters before
    and after, the validation ``monitor`` and the training loss untrimmed, after removal and
    after fine-tuning (None: nothing to trim), and whether the trimmed network was ``kept``."""

    monitor: str
    tolerance: float
    kept: bool
    removed: list[int]
    merged: list[int]
    widths_before: list[int]
    trimmed_widths: list[int]
    parameters_before: int
    parameters_after: int
    validation_before: float
    validation_after_removal: float
    validation_after: float | None
    training_loss_before: float | None = None
    training_loss_after_removal: float | None = None
    training_loss_after: float | None = None
    epochs: int
    seconds: float


class ThresholdSummary(_Record):
    """A binary run's decision threshold, and how it was chosen (``metric`` ``none``: 0.5)."""

    value: float
    metric: str
    validation_score: float | None = None
    gain_over_half: float | None = None
    gain_spread: float | None = None
    kept_half: bool | None = None


class RunMetrics(_Record):
    """The content of ``metrics.json``; a split without rows has no section."""

    task: str
    train: dict[str, float] | None = None
    validation: dict[str, float] | None = None
    test: dict[str, float] | None = None
    parameters: int
    hidden_widths: list[int]
    rows: dict[str, int] | None = None
    epochs: int
    best_epoch: int | None = None
    seconds: Seconds | None = None
    growth: GrowthSummary | None = None
    prune: PruneSummary | None = None
    trim: TrimSummary | None = None
    threshold: ThresholdSummary | None = None
    feature_gate: dict[str, float] | None = None


class ModelRecord(_Record):
    """The content of ``model.json``: the architecture, the task, its classes and the binary
    decision threshold, each within the values a run can have."""

    format_version: PositiveInt = 1
    growml_version: str | None = None
    input_size: PositiveInt
    hidden_widths: list[PositiveInt] = Field(min_length=1)
    output_size: PositiveInt
    activation: str
    embedding: dict[str, Any] | None = None
    feature_gate: bool = False
    # A convolutional network (growml/nn/conv.py); absent for an MLP.
    input_shape: list[PositiveInt] | None = None
    conv_layers: int = Field(default=0, ge=0)
    kernel_size: int = Field(default=0, ge=0)
    strides: list[PositiveInt] = []
    head: Literal["pool", "flatten"] = "pool"
    task: Literal["classification", "regression"]
    classes: list[Any] | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    feature_names: list[str] | None = None
    parameters: int | None = None
