"""What a finished fit measured, as ``metrics.json`` holds it (``growml.runs.records``).

The sections: every split's metrics at the run's threshold (a split without rows has none),
the network's size, the epochs and timings, and the summaries of growth, pruning and the
binary threshold for the runs that had them, and of trimming after growth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from growml.config import FitConfig
from growml.data import PreparedData
from growml.events import Event, GrowthStep, TrainEnd, kept_epoch, layer_slots
from growml.nn.mlp import GrowingMLP
from growml.runs.run import Run
from growml.train.metrics import evaluate
from growml.train.trainer import TrainResult


def fit_metrics(
    run: Run,
    config: FitConfig,
    data: PreparedData,
    trained: TrainResult,
    history: Sequence[Event],
    seconds: Mapping[str, float],
    pruning: dict[str, Any] | None = None,
    threshold: dict[str, Any] | None = None,
    trimming: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``metrics.json`` for ``run``, trained with ``config`` on ``data`` as
    ``trained`` and ``history`` say; ``seconds``: the time of reading and preparing the data
    (``data``) and the fit's (``wall``), both counted from the command's start."""
    model = run.model
    splits = evaluate_splits(model, data, run.threshold)
    metrics: dict[str, Any] = {
        "task": data.task,
        **splits,
        "parameters": model.n_parameters(),
        "hidden_widths": model.hidden_widths,
        "rows": {
            "train": len(data.x_train),
            "validation": len(data.x_val),
            "test": len(data.x_test),
        },
        "epochs": trained.epochs,
        "best_epoch": trained.best_epoch,
        "seconds": {
            "data": seconds["data"],
            "train": trained.seconds,
            "per_epoch": trained.seconds / max(trained.epochs, 1),
            "wall": seconds["wall"],
        },
    }
    gate = model.gate_by_column()
    if gate is not None:
        metrics["feature_gate"] = gate_summary(gate, data.preprocessor.output_names)
    if config.growth.enabled:
        metrics["growth"] = growth_summary(config, history)
    if trimming is not None:
        metrics["trim"] = trimming
    if pruning is not None:
        metrics["prune"] = pruning
    if threshold is not None:
        metrics["threshold"] = threshold
        # At a threshold of 0.5 the metrics at 0.5 are those just computed.
        at_half = splits if run.threshold == 0.5 else evaluate_splits(model, data, 0.5)
        for split, values in at_half.items():
            metrics[split]["f1_at_0.5"] = values["f1"]
    return metrics


def evaluate_splits(
    model: GrowingMLP, data: PreparedData, threshold: float | None
) -> dict[str, dict[str, float]]:
    """Every split's metrics at ``threshold`` (weighted when its rows are); a split without
    rows (no test part: ``data.test_size=0``) has none."""
    splits = {
        "train": (data.x_train, data.y_train, data.w_train),
        "validation": (data.x_val, data.y_val, data.w_val),
        "test": (data.x_test, data.y_test, data.w_test),
    }
    return {
        split: evaluate(model, x, y, data.target_encoder, threshold, weights)
        for split, (x, y, weights) in splits.items()
        if len(x)
    }


def gate_summary(gate: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """Each prepared column's feature gate (``GrowingMLP.gate_by_column``) by its name,
    strongest first."""
    pairs = sorted(zip(names, gate, strict=True), key=lambda pair: -pair[1])
    return {name: round(value, 6) for name, value in pairs}


def growth_summary(config: FitConfig, history: Sequence[Event]) -> dict[str, Any]:
    """What growth did, from the run's ``history``: the steps that added neurons, per layer,
    the hidden layers it inserted, what the kept weights hold (they may predate the last
    steps, and have fewer layers), and why growth stopped."""
    start = config.model.layer_widths
    steps = [event for event in history if isinstance(event, GrowthStep)]
    added = [event for event in steps if event.added]
    inserted = [event.inserted_layer for event in added if event.inserted_layer is not None]
    # Per slot (layer_slots); an inserted layer starts at width 0 here: its identity units
    # count as neurons kept.
    start_of = [*start, *[0] * len(inserted)]
    per_slot = [0] * len(start_of)
    seen = 0
    for event in added:
        seen += event.inserted_layer is not None
        slots = layer_slots(len(start), inserted, len(start) + seen)
        per_slot[slots[event.layer]] += event.added
    stop = next((event.reason for event in steps if event.finished), None)
    if stop is None:
        ends = [event for event in history if isinstance(event, TrainEnd)]
        stopped_early = bool(ends) and ends[0].stopped_early  # the growing run's
        stop = (
            "training stopped early while growing (validation stopped improving)"
            if stopped_early
            else "the epoch budget ran out while growing"
        )
    kept = kept_epoch(history)
    kept_widths = kept.hidden_widths if kept else start
    final = layer_slots(len(start), inserted, len(start_of))
    kept_slots = layer_slots(len(start), inserted, len(kept_widths))
    return {
        "method": config.growth.method,
        "start_widths": start,
        "steps": len(added),
        "neurons_added": [per_slot[slot] for slot in final],
        "kept_epoch": kept.epoch if kept else 0,
        "kept_widths": kept_widths,
        "layers_inserted": inserted,
        "neurons_kept": [
            width - start_of[slot] for width, slot in zip(kept_widths, kept_slots, strict=True)
        ],
        "seconds": sum(event.seconds for event in steps),
        "stopped": stop,
    }
