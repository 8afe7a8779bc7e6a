"""``diagnose_run``: what the theory behind growth says about a trained run (docs/theory.md).

* The width bound ⌈2n/(d + 1)⌉ for the run's n training rows and the d inputs its first
  hidden layer reads, beside the width growth kept, and what that means.
* Laziness: each dense layer's relative weight change from its births (each weight's value
  when it was born: at the start for the first neurons, at their growth step for the others),
  and the drift of the empirical NTK on the probe batch between the network of births and the
  kept one.
* Gradient confusion on the probe batch for the network of births and the kept one, and its
  course over the growth steps (recorded during the fit).

Laziness and confusion need what a fit records with ``diagnostics.enabled``
(``diagnostics.safetensors``); a run without it gets the width bound and a note saying so.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from growml import atomic
from growml.diagnose.measures import (
    Confusion,
    dense_parameters,
    empirical_ntk,
    gradient_confusion,
    kernel_drift,
    per_example_gradients,
    relative_change,
    width_bound,
)
from growml.diagnose.recording import BIRTHS, PROBE_X, PROBE_Y, probe_loss
from growml.errors import RunError
from growml.events import ConfusionMeasured, TrainStart
from growml.nn.mlp import GrowingMLP
from growml.runs import digests
from growml.runs.layout import DIAGNOSTICS, DIAGNOSTICS_RECORD, PLOTS
from growml.runs.run import Run, load_run

# The kernel has (probe rows × outputs)² float64 entries: its rows are capped to hold at most
# this many (160 MB).
KERNEL_ENTRIES = 20_000_000
# Kernel drift below this reads as the kernel regime (Woodworth et al.'s lazy training).
LAZY_DRIFT = 0.1
PLOT = "diagnostics.png"


@dataclass(frozen=True)
class WidthBound:
    """The width bound of the run's data beside the width it kept.

    Attributes:
        rows: n, the training rows.
        inputs: d, what the first hidden layer reads (columns, or an embedding's outputs).
        bound: ⌈2n/(d + 1)⌉.
        hidden_widths: the kept network's hidden widths.
        meaning: one sentence on what the two say together.
    """

    rows: int
    inputs: int
    bound: int
    hidden_widths: list[int]
    meaning: str


@dataclass(frozen=True)
class Laziness:
    """How far training moved the network from its births.

    Attributes:
        weight_change: ‖W − W_birth‖_F / ‖W_birth‖_F of each dense layer's weight (the
            hidden layers, then the output layer).
        kernel_drift: 1 − cos(K_birth, K) of the empirical NTK on ``kernel_rows`` probe rows.
        kernel_rows: the probe rows the kernel was measured on.
        meaning: one sentence.
    """

    weight_change: list[float]
    kernel_drift: float
    kernel_rows: int
    meaning: str


@dataclass(frozen=True)
class Diagnosis:
    """What ``growml diagnose`` found for a run (``diagnostics.json``)."""

    run: str
    parameters: int
    width_bound: WidthBound
    laziness: Laziness | None = None
    confusion_at_birth: Confusion | None = None
    confusion_kept: Confusion | None = None
    course: list[ConfusionMeasured] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["course"] = [event.to_dict() for event in self.course]
        return document


def diagnose_run(path: str | Path) -> Diagnosis:
    """The ``Diagnosis`` of the run directory at ``path``."""
    run = load_run(path)
    model = run.model
    if getattr(model, "conv_layers", 0):
        raise RunError(
            f"{str(path)!r} is a convolutional network; growml diagnose reads the dense layers "
            "of an MLP."
        )
    history = run.history()
    start = next((event for event in history if isinstance(event, TrainStart)), None)
    if start is None:
        raise RunError(f"the history of {str(path)!r} has no training; the run is damaged.")
    layers, _ = dense_parameters(model)
    grown = bool(run.config.get("growth", {}).get("enabled", True))
    bound = _width_bound(start.train_rows, layers[0][0].shape[1], model.hidden_widths, grown)
    record = _read_record(Path(path))
    if record is None:
        note = (
            "this run recorded no diagnostics: fit it with --set diagnostics.enabled=true (or "
            "run growml diagnose on its data) for laziness and gradient confusion."
        )
        return Diagnosis(str(path), model.n_parameters(), bound, notes=[note])
    births = _network_of_births(model, record, Path(path))
    x, y = record[PROBE_X], record[PROBE_Y]
    loss = probe_loss(run.task, model.output_size)
    target = loss.prepare_target(y.numpy(), None)
    return Diagnosis(
        run=str(path),
        parameters=model.n_parameters(),
        width_bound=bound,
        laziness=_laziness(births, model, x),
        confusion_at_birth=gradient_confusion(per_example_gradients(births, loss, x, target)),
        confusion_kept=gradient_confusion(per_example_gradients(model, loss, x, target)),
        course=[event for event in history if isinstance(event, ConfusionMeasured)],
        notes=_notes(run),
    )


def write_diagnosis(path: str | Path, diagnosis: Diagnosis) -> list[Path]:
    """Write ``diagnosis`` into its run directory: ``diagnostics.json`` and
    ``plots/diagnostics.png`` (each listed in ``digests.json``); returns their paths."""
    from growml.diagnose.plots import diagnosis_plot

    folder = Path(path)
    atomic.write_json(folder / DIAGNOSTICS, diagnosis.to_dict())
    written = [folder / DIAGNOSTICS]
    if diagnosis.laziness is not None:
        diagnosis_plot(diagnosis, folder / PLOTS / PLOT)
        written.append(folder / PLOTS / PLOT)
    for file in written:
        digests.add(folder, file.relative_to(folder).as_posix())
    return written


def _width_bound(rows: int, inputs: int, widths: list[int], grown: bool) -> WidthBound:
    """The bound for ``rows`` of ``inputs`` beside the kept ``widths``; ``grown``: growth
    chose them (else they were fixed)."""
    bound = width_bound(rows, inputs)
    width = widths[0]
    deep = len(widths) > 1
    network = "its first hidden layer" if deep else "the network"
    data = f"the width bound {bound} for {rows:,} rows of {inputs:,} inputs"
    if width >= bound:
        meaning = (
            f"{network} is {width} wide, at or above {data}: one hidden layer this wide can fit "
            "every training row exactly, so "
            + (
                "validation, not expressivity, set its size."
                if grown
                else "it is not short of width."
            )
        )
    else:
        where = f"growth kept {network} at {width}" if grown else f"{network} is {width} wide"
        meaning = (
            f"{where}, {bound / width:.1f}× below {data}: it cannot be sure to fit every "
            "training row"
            + (", and did not need to: more width stopped paying on validation" if grown else "")
            + " (the bound is what arbitrary labels need; structured data needs less)."
        )
    if deep:
        meaning += " The bound is proved for one hidden layer; deeper layers add expressivity."
    return WidthBound(rows, inputs, bound, list(widths), meaning)


def _read_record(path: Path) -> dict[str, torch.Tensor] | None:
    file = path / DIAGNOSTICS_RECORD
    if not file.is_file():
        return None
    digests.check(path, [DIAGNOSTICS_RECORD])
    try:
        return load_file(file)
    except (SafetensorError, OSError) as error:
        raise RunError(f"{str(file)!r} is damaged: {error}.") from None


def _network_of_births(
    model: GrowingMLP, record: dict[str, torch.Tensor], path: Path
) -> GrowingMLP:
    """``model`` with each parameter at its births."""
    births = copy.deepcopy(model)
    for name, param in births.named_parameters():
        value = record.get(BIRTHS + name)
        if value is None or value.shape != param.shape:
            raise RunError(
                f"{DIAGNOSTICS_RECORD} in {str(path)!r} does not match the model ({name!r}); "
                "the run directory is damaged."
            )
        param.data = value.to(param)
    return births


def _laziness(births: GrowingMLP, model: GrowingMLP, x: torch.Tensor) -> Laziness:
    start, _ = dense_parameters(births)
    end, _ = dense_parameters(model)
    change = relative_change([w for w, _ in start], [w for w, _ in end])
    rows = max(2, min(len(x), math.isqrt(KERNEL_ENTRIES) // model.output_size))
    drift = kernel_drift(empirical_ntk(births, x[:rows]), empirical_ntk(model, x[:rows]))
    regime = (
        "close to the kernel regime: the features barely moved from their births"
        if drift < LAZY_DRIFT
        else "in the rich regime: training reshaped the features it was born with"
    )
    hidden = ", ".join(f"{value:.3g}" for value in change[:-1])
    meaning = (
        f"the hidden layers moved {hidden} of their size from their births and the kernel "
        f"turned by {drift:.3g}: {regime} (drift {'<' if drift < LAZY_DRIFT else '≥'} "
        f"{LAZY_DRIFT})."
    )
    return Laziness(change, drift, rows, meaning)


def _notes(run: Run) -> list[str]:
    notes = []
    if run.config.get("loss", {}).get("name", "auto").startswith("soft-"):
        notes.append(
            "gradient confusion is measured with the task's standard loss: a soft-set loss is "
            "not a mean over rows, so it has no per-row gradient."
        )
    if run.model.embedding is not None:
        notes.append(
            "the measures read the dense layers: the embedding's outputs for the probe rows "
            "are their inputs, held fixed."
        )
    return notes
