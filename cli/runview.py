"""How a run looks in a terminal: the fit's live progress and summary, and what ``growml report``
shows of a run directory (model, metrics, growth, pruning, training).

Two times are shown, under the same names everywhere: the *training time* (training, growth,
pruning and fine-tuning) and the *wall time* (the fit, from reading the data to the trained
network measured). The metrics shown are the *kept model*'s: the weights of the best validation
epoch, which may predate growth's last steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from growml.cli.render import number, progress_bar
from rich.console import Console
from rich.table import Table

from growml.events import (
    EpochEnd,
    Event,
    GrowthStep,
    TrainEnd,
    TrainStart,
    TrimEnd,
    TrimStep,
    kept_epoch,
)

if TYPE_CHECKING:
    from growml.runs.files import RunFiles
    from growml.runs.records import GrowthSummary, PruneSummary, RunMetrics, TrimSummary

_SHORT = {"accuracy": "acc", "macro_f1": "mF1"}
_METRIC_ORDER = ("accuracy", "macro_f1", "f1", "f1_at_0.5", "log_loss", "rmse", "mae", "r2")

# The symbols of the growth lines and the growth table, explained in `growml fit --help` and
# docs/growth.md ("Reading the growth lines").
GROWTH_LEGEND = (
    "Growth lines read 'epoch E: layer L +N (λ₁ S, γ A) loss B → C, widths W':",
    "  +N     neurons added to hidden layer L at epoch E; W: the hidden widths after it",
    "  λ₁     the best new neuron's score: √gain (pool) or top singular value λ (tiny),",
    "         which must beat the bar of a permutation null to count",
    "  γ      the new neurons' amplitude the line search chose (1: the full step)",
    "  B → C  the training loss on the statistics rows before and after the step",
    "  FO     (growml report) the predicted first-order loss decrease: loss ≈ B − γ²·FO",
    "The metrics shown are the kept model's: the weights of the best validation epoch.",
)


def metrics_table(metrics: RunMetrics, title: str = "Result") -> Table:
    """One row per metric, one column per split."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    splits = {
        split: values
        for split, values in (
            ("train", metrics.train),
            ("validation", metrics.validation),
            ("test", metrics.test),
        )
        if values is not None
    }
    for split in splits:
        table.add_column(split, justify="right")
    names = [m for m in _METRIC_ORDER if any(m in values for values in splits.values())]
    for name in names:
        table.add_row(name, *(number(values.get(name, "")) for values in splits.values()))
    return table


def kept_title(metrics: RunMetrics, monitor: str | None) -> str:
    """Whose metrics these are: the kept model's, the weights of its best validation epoch."""
    if metrics.best_epoch is None:
        return "the kept model"
    best = f"best validation {monitor}" if monitor else "best validation epoch"
    return f"the kept model (weights of epoch {metrics.best_epoch}: {best})"


def added_and_kept(growth: GrowthSummary) -> str:
    """Neurons growth added per layer, and those the kept (best validation) weights hold."""
    added = ", ".join(str(n) for n in growth.neurons_added)
    if growth.neurons_kept is None:  # runs written before it was recorded
        return added
    kept = ", ".join(str(n) for n in growth.neurons_kept)
    inserted = ", ".join(str(layer + 1) for layer in growth.layers_inserted)
    deeper = f"; layers inserted: {inserted}" if inserted else ""
    return f"{added} (kept {kept}, at epoch {growth.kept_epoch}{deeper})"


def pruning_line(pruning: PruneSummary) -> str:
    """What pruning removed: prunable weights before → after with the compression, and the
    parameters (fewer when whole neurons went; masked weights stay, as zeros)."""
    weights = (
        f"prunable weights {pruning.weights_before:,} → {pruning.weights_after:,} "
        f"({pruning.compression:.1f}×)"
    )
    if pruning.parameters_after < pruning.parameters_before:
        return f"{weights}, parameters {pruning.parameters_before:,} → {pruning.parameters_after:,}"
    return f"{weights}, masked as zeros among the {pruning.parameters_after:,} parameters"


def trimming_line(trim: TrimSummary) -> str:
    """What trimming after growth did: the widths and parameters before → after, and whether
    the trimmed network was kept."""
    widths = ",".join(str(w) for w in trim.widths_before)
    trimmed = ",".join(str(w) for w in trim.trimmed_widths)
    change = (
        f"widths {widths} → {trimmed}, parameters {trim.parameters_before:,} → "
        f"{trim.parameters_after:,}"
    )
    if trim.validation_after is None:
        return f"nothing to trim (widths {widths})"
    if trim.kept:
        return f"{change}, kept"
    return f"{change}, not kept (validation {trim.monitor} worse after fine-tuning)"


def times(metrics: RunMetrics) -> dict[str, str]:
    """The training time (with its time per epoch), the growth steps' share of it (their
    statistics, candidates and line searches) and the wall time, as every command shows
    them."""
    if metrics.seconds is None:
        return {}
    seconds = metrics.seconds
    shown = {
        "training time": f"{seconds.train:.2f} s ({1000 * seconds.per_epoch:.1f} ms per epoch)"
    }
    if metrics.growth and metrics.growth.steps:
        share = metrics.growth.seconds / max(seconds.wall, 1e-9)
        shown["growth steps"] = f"{metrics.growth.seconds:.2f} s ({share:.0%} of the wall time)"
    shown["wall time"] = f"{seconds.wall:.2f} s"
    return shown


def run_summary(metrics: RunMetrics, path: str) -> dict[str, Any]:
    """The fit's last lines: where the run is, the kept network, its epochs and times."""
    rows: dict[str, Any] = {
        "run": path,
        "hidden widths": ", ".join(str(w) for w in metrics.hidden_widths),
    }
    if metrics.growth:
        rows["neurons added"] = added_and_kept(metrics.growth)
    rows["parameters"] = f"{metrics.parameters:,}"
    if metrics.trim:
        rows["trimming"] = trimming_line(metrics.trim)
    if metrics.prune:
        rows["pruning"] = pruning_line(metrics.prune)
    rows["epochs"] = f"{metrics.epochs} (kept: best validation epoch {metrics.best_epoch})"
    return {**rows, **times(metrics)}


def growth_table(steps: Sequence[GrowthStep]) -> Table:
    """The growth steps of a run, one row each."""
    table = Table(title="Growth", title_justify="left", caption="symbols: growml fit --help")
    for column in ("epoch", "layer", "added", "λ₁", "FO", "γ", "loss", "widths", "ms"):
        table.add_column(column, justify="right", no_wrap=column == "loss")
    for step in steps:
        if not step.added:
            continue
        table.add_row(
            str(step.epoch),
            f"{step.layer + 1} (new)" if step.inserted_layer is not None else str(step.layer + 1),
            str(step.added),
            f"{step.lambdas[0]:.2g}",
            f"{step.predicted_first_order:.2g}",
            f"{step.gamma:.2g}",
            f"{step.loss_before:.3f} → {step.loss_after:.3f}",
            ",".join(str(w) for w in step.hidden_widths),
            f"{1000 * step.seconds:.0f}",
        )
    return table


class FitProgress:
    """A rich progress bar fed by the trainer's events (an observer), and a line per growth
    step; each training (fine-tuning after pruning is a second one) has its own bar."""

    def __init__(self, console: Console) -> None:
        # Redrawn at each epoch, by no thread: one left drawing when training fails would
        # outlive the command's error.
        self.progress = progress_bar(console, "epoch", 16, auto_refresh=False)
        self.task_id: Any = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, TrainStart):
            self.progress.start()
            widths = ",".join(str(w) for w in event.hidden_widths)
            self.task_id = self.progress.add_task(
                "training", total=event.max_epochs, status=f"widths {widths}"
            )
        elif isinstance(event, EpochEnd):
            if self.task_id is None:  # a resumed training: its start was before the checkpoint
                widths = ",".join(str(w) for w in event.hidden_widths)
                self.progress.console.print(
                    f"resumed after epoch {event.epoch - 1}, hidden widths {widths}"
                )
                self.progress.start()
                self.task_id = self.progress.add_task("training", total=None, status="resumed")
            status = f"loss {event.train_loss:.4f} · val " + " ".join(
                f"{_SHORT.get(key, key)} {value:.4f}" for key, value in event.validation.items()
            )
            widths = ",".join(str(w) for w in event.hidden_widths)
            self.progress.update(
                self.task_id,
                completed=event.epoch,
                status=f"{status} · widths {widths}",
                refresh=True,
            )
        elif isinstance(event, GrowthStep | TrimStep | TrimEnd):
            self.progress.console.print(event.describe(), highlight=False)
        elif isinstance(event, TrainEnd):
            self.progress.update(
                self.task_id, total=event.epochs, completed=event.epochs, refresh=True
            )
            self.progress.stop()
            # Shown once: the next training's bar must not draw this one again.
            self.progress.remove_task(self.task_id)
            self.task_id = None

    def close(self) -> None:
        """Take down a display that training left running (it stopped with an error): the
        bar goes, so that the error is the only line."""
        if self.task_id is not None:
            self.progress.remove_task(self.task_id)
            self.progress.live.stop()
            self.task_id = None


def model_rows(files: RunFiles) -> dict[str, Any]:
    """The ``Model`` section of a report: the data, the task and the network."""
    model = files.description
    columns = len(files.preprocessor.feature_names)
    embedding = model.embedding
    embedded = (
        {"embedding": f"{embedding['kind']} ({len(embedding['numeric'])} numeric columns)"}
        if embedding
        else {}
    )
    return {
        "run": str(files.path),
        "data": files.setting("data.source") or "?",
        "task": model.task,
        "classes": ", ".join(str(c) for c in model.classes or []) or "—",
        "inputs": f"{model.input_size} ({columns} raw columns)",
        **_scaling_row(files.setting("data.scaling")),
        **embedded,
        **_conv_rows(model),
        "hidden widths": ", ".join(str(w) for w in model.hidden_widths),
        "activation": model.activation,
        **_gate_row(files.metrics_record),
        "parameters": "?" if model.parameters is None else f"{model.parameters:,}",
        "threshold": _describe_threshold(model.threshold, files.metrics_record),
    }


def _conv_rows(model: Any) -> dict[str, str]:
    """A convolutional network's shape: its input, blocks and dense head (none for an MLP)."""
    if not model.conv_layers:
        return {}
    blocks = model.conv_layers
    head = model.hidden_widths[blocks:]
    return {
        "input shape": " × ".join(str(n) for n in model.input_shape or []),
        "convolution": f"{blocks} blocks, kernel {model.kernel_size}, strides "
        f"{', '.join(str(s) for s in model.strides)}, "
        f"channels {', '.join(str(w) for w in model.hidden_widths[:blocks])}; "
        + ("flattened" if model.head == "flatten" else "global average pooling")
        + "; dense widths "
        + (", ".join(str(w) for w in head) or "none"),
    }


def _scaling_row(scaling: str | None) -> dict[str, str]:
    """``scaling``: how the numeric columns were scaled (runs from before the setting: none)."""
    return {} if scaling is None else {"scaling": f"{scaling} (numeric columns)"}


# A column counts as kept by the feature gate at this share of the strongest column's gate.
GATE_KEPT_SHARE = 0.1
# The strongest columns a report names.
GATE_NAMED = 5


def _gate_row(metrics: RunMetrics | None) -> dict[str, str]:
    """``feature gate``: how many columns it keeps, and the strongest by name."""
    gate = metrics.feature_gate if metrics is not None else None
    if not gate:
        return {}
    strongest = max(gate.values())
    kept = sum(value >= GATE_KEPT_SHARE * strongest for value in gate.values())
    named = ", ".join(f"{name} {value:.2g}" for name, value in list(gate.items())[:GATE_NAMED])
    share = f"{GATE_KEPT_SHARE:.0%}"
    return {
        "feature gate": f"{kept} of {len(gate)} columns at {share} of the strongest or more; "
        f"strongest: {named}"
    }


def growth_rows(metrics: RunMetrics | None, steps: Sequence[GrowthStep]) -> dict[str, Any]:
    """The lines under a report's growth table: where growth started, what it added and kept,
    its share of the training time, and why it stopped."""
    growth = metrics.growth if metrics is not None else None
    stop = next((step.describe() for step in steps if step.finished), None)
    if growth is None:
        return {"stopped": stop or "—"}
    return {
        "start widths": ", ".join(str(w) for w in growth.start_widths),
        "neurons added": added_and_kept(growth),
        "growth steps": f"{growth.seconds:.2f} s of the training time",
        "stopped": stop or growth.stopped,
    }


def pruning_rows(pruning: PruneSummary) -> dict[str, Any]:
    """A report's ``Pruning`` section."""
    return {
        "pruning": f"{pruning.method}, {'neurons' if pruning.structured else 'weights'}, "
        f"{pruning.when}",
        "prunable weights": f"{pruning.weights_before:,} → {pruning.weights_after:,} "
        f"({pruning.compression:.1f}×)",
        "parameters": f"{pruning.parameters_before:,} → {pruning.parameters_after:,}",
        "widths after": ", ".join(str(w) for w in pruning.hidden_widths),
    }


def trimming_rows(trim: TrimSummary) -> dict[str, Any]:
    """A report's ``Trimming`` section."""
    removed = ", ".join(str(n) for n in trim.removed)
    merged = ", ".join(str(n) for n in trim.merged)
    rows = {
        "neurons removed": f"{removed} (and {merged} merged into a twin)",
        "widths": f"{', '.join(str(w) for w in trim.widths_before)} → "
        f"{', '.join(str(w) for w in trim.trimmed_widths)}",
        "parameters": f"{trim.parameters_before:,} → {trim.parameters_after:,}",
        f"validation {trim.monitor}": f"{trim.validation_before:.4g} untrimmed, "
        f"{trim.validation_after_removal:.4g} trimmed",
    }
    if trim.training_loss_before is not None:
        rows["training loss"] = (
            f"{trim.training_loss_before:.4g} untrimmed, "
            f"{trim.training_loss_after_removal:.4g} trimmed"
        )
    if trim.validation_after is not None and trim.epochs:
        tuned = f" after {trim.epochs} epochs of fine-tuning"
        rows[f"validation {trim.monitor}"] += f", {trim.validation_after:.4g}{tuned}"
        if trim.training_loss_after is not None:
            rows["training loss"] += f", {trim.training_loss_after:.4g}{tuned}"
    rows["kept"] = "yes" if trim.kept else "no: the untrimmed network"
    return rows


def training_rows(metrics: RunMetrics | None, history: Sequence[Event]) -> dict[str, Any]:
    """A report's ``Training`` section: epochs, the kept epoch, the losses and the times."""
    epochs = [event for event in history if isinstance(event, EpochEnd)]
    end = next((event for event in history if isinstance(event, TrainEnd)), None)
    first, last = epochs[0], epochs[-1]
    kept = kept_epoch(history, final=True) or last
    best = metrics.best_epoch if metrics is not None else None
    rows = {
        "epochs run": metrics.epochs if metrics is not None else len(epochs),
        "kept epoch": best if best is not None else (end.best_epoch if end else "?"),
        "stopped early": end.stopped_early if end else "?",
        "train loss": f"{first.train_loss:.4f} → {last.train_loss:.4f}",
        "validation loss": f"{first.validation['loss']:.4f} → "
        f"{kept.validation['loss']:.4f} kept (last {last.validation['loss']:.4f})",
    }
    return {**rows, **(times(metrics) if metrics is not None else {})}


def _describe_threshold(threshold: float | None, metrics: RunMetrics | None) -> str:
    if threshold is None:
        return "—"
    chosen = metrics.threshold if metrics is not None else None
    if chosen is None or chosen.metric == "none":
        return f"{threshold:g}"
    return f"{threshold:g} (maximises validation {chosen.metric})"
