"""A trained run, in memory or loaded from its directory, and prediction from raw rows."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from growml.data import Preprocessor, TargetEncoder, as_arrow
from growml.data.checks import check_inputs, unknown_inputs
from growml.errors import RunError
from growml.events import Event
from growml.nn.conv import network_from_spec
from growml.nn.mlp import GrowingMLP, ModelSpec
from growml.predictions import prediction_table
from growml.runs.files import FORMAT_VERSION, read_history, read_run_files
from growml.runs.layout import (
    CONFIG,
    METRICS,
    MODEL_SPEC,
    MODEL_WEIGHTS,
    PLOTS,
    PREPROCESS,
)
from growml.runs.plots import growth_plot
from growml.runs.records import RunMetrics
from growml.runs.rundir import RunWriter
from growml.train.metrics import decide, probabilities
from growml.version import __version__


@dataclass
class Run:
    """A trained network with the preprocessing it was trained with.

    Attributes:
        model: the network (eval mode).
        preprocessor: turns raw feature rows into the network's inputs.
        target_encoder: class labels or the regression target's scale.
        threshold: decision threshold on the positive-class probability (binary tasks).
        metrics: contents of ``metrics.json`` (empty before it is written); typed, as
            ``metrics_record``.
        config: the resolved settings, as saved in ``config.yaml``.
        path: the run directory, once it exists.
        device: where ``predict`` runs the network (the CPU by default).
    """

    model: GrowingMLP
    preprocessor: Preprocessor
    target_encoder: TargetEncoder
    threshold: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    device: torch.device | None = None

    @property
    def task(self) -> str:
        return self.target_encoder.task

    @property
    def classes(self) -> list[Any]:
        return list(self.target_encoder.classes)

    @property
    def decimal_comma(self) -> list[str]:
        """The numeric columns whose numbers, given as text, are written with a decimal comma."""
        return self.preprocessor.decimal_comma

    @property
    def metrics_record(self) -> RunMetrics | None:
        """``metrics`` as a typed record; None before ``metrics.json`` is written."""
        return RunMetrics.model_validate(self.metrics) if self.metrics else None

    def model_info(self) -> dict[str, Any]:
        """The contents of ``model.json``."""
        return {
            "format_version": FORMAT_VERSION,
            "growml_version": __version__,
            **self.model.spec().to_dict(),
            "task": self.task,
            "classes": self.classes if self.task == "classification" else None,
            "threshold": self.threshold,
            "feature_names": self.preprocessor.feature_names,
            "parameters": self.model.n_parameters(),
        }

    def _outputs(self, rows: Any, strict: bool) -> torch.Tensor:
        table = as_arrow(rows, self.preprocessor.feature_names)
        found = unknown_inputs(
            table,
            [*self.preprocessor.feature_names, *self.preprocessor.dropped],
            self.preprocessor.categories,
            self.target_encoder.name,
        )
        check_inputs(found, strict)
        x = self.preprocessor.transform(table)
        return inference_outputs(self.model, x, self.device).float()

    def _probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        return probabilities(outputs, self.target_encoder.n_outputs).numpy()

    def _decisions(self, outputs: torch.Tensor) -> np.ndarray:
        if self.task == "regression":
            return self.target_encoder.decode(outputs.squeeze(1).numpy())
        return self.target_encoder.decode(decide(outputs, self.threshold).numpy())

    def predict_proba(self, rows: Any, strict: bool = False) -> np.ndarray:
        """Class probabilities (rows × classes, in ``classes`` order) for raw feature rows."""
        if self.task != "classification":
            raise RunError("predict_proba needs a classification run; this one is regression.")
        return self._probabilities(self._outputs(rows, strict))

    def predict(self, rows: Any, strict: bool = False) -> np.ndarray:
        """Predicted labels (classification) or values (regression) for raw feature rows.

        ``rows``: a pyarrow Table, a pandas DataFrame, a dict of columns, a list of records, or
        a 2-D array whose columns are ``preprocessor.feature_names`` in order. Columns the
        model does not use and category values it has no category for are warned about once
        each (``strict``: refused); a missing column is an error.
        """
        return self._decisions(self._outputs(rows, strict))

    def prediction_table(self, rows: Any, strict: bool = False) -> pa.Table:
        """Predictions for raw rows as a table: ``prediction``, and for classification one
        ``probability_<class>`` column per class."""
        outputs = self._outputs(rows, strict)
        proba = self._probabilities(outputs) if self.task == "classification" else None
        return prediction_table(self._decisions(outputs), proba, self.classes)

    def history(self) -> list[Event]:
        """The events of ``history.jsonl``, typed (``EpochEnd``, ``GrowthStep``...)."""
        return read_history(self.path) if self.path is not None else []


def load_run(path: str | Path) -> Run:
    """Load a run directory written by ``growml fit``; no code is executed while loading."""
    files = read_run_files(path)
    path = files.path
    try:
        model = network_from_spec(ModelSpec.from_dict(files.model))
        weights = load_file(path / MODEL_WEIGHTS)
        mismatch = _weights_mismatch(model, weights)
        if mismatch:
            raise RunError(
                f"{MODEL_WEIGHTS} does not match {MODEL_SPEC} in {str(path)!r}: {mismatch}; "
                "the run directory is damaged."
            )
        model.load_state_dict(weights)
        target_encoder = TargetEncoder.from_dict(files.preprocess["target"])
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError, OSError) as exc:
        raise RunError(f"run directory {str(path)!r} is damaged: {exc}.") from None
    return Run(
        model=model.eval(),
        preprocessor=files.preprocessor,
        target_encoder=target_encoder,
        threshold=files.description.threshold,
        metrics=files.metrics,
        config=files.config,
        path=path,
    )


def save_run(writer: RunWriter, run: Run, history: Sequence[Event]) -> None:
    """Write ``run`` into ``writer``'s directory: its settings, weights, architecture,
    preprocessing and metrics, and the growth plot of its ``history`` (the events
    ``history.jsonl`` already holds); ``load_run`` reads it back."""
    writer.write_yaml(CONFIG, run.config)
    writer.write_weights(run.model.state_dict())
    writer.write_json(MODEL_SPEC, run.model_info())
    writer.write_json(
        PREPROCESS,
        {"features": run.preprocessor.to_dict(), "target": run.target_encoder.to_dict()},
    )
    writer.write_json(METRICS, run.metrics)
    monitor = run.config["train"]["monitor"]
    growth_plot(history, monitor, writer.path / PLOTS / "growth.png")


def _weights_mismatch(model: GrowingMLP, weights: dict[str, torch.Tensor]) -> str | None:
    """The first difference between the tensors ``model`` needs and ``weights``, or None."""
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    for name, shape in expected.items():
        if name not in weights:
            return f"it has no tensor {name!r}"
        if tuple(weights[name].shape) != shape:
            return f"{name!r} is {tuple(weights[name].shape)} where the model needs {shape}"
    extra = sorted(set(weights) - set(expected))
    return f"it holds a tensor {extra[0]!r} the model does not have" if extra else None


def inference_outputs(
    model: GrowingMLP, x: np.ndarray, device: torch.device | None = None
) -> torch.Tensor:
    """The network's outputs for prepared rows ``x``, computed in float64 on ``device`` (the
    CPU by default) and returned on the CPU.

    A float32 matrix product rounds a row differently depending on how many rows share it
    (the kernel blocks them differently), so a row's prediction would change by ~1e-7 with the
    batch around it; in float64 those differences stay far below float32's precision, and a
    row predicts the same alone as in any batch (scikit-learn's subset invariance)."""
    # ``.double()`` converts each tensor in place, the objects staying: the copy's layers are
    # its own, in float64.
    network = copy.deepcopy(model).double().eval().to(device)
    with torch.inference_mode():
        return network(torch.as_tensor(x, device="cpu").double().to(device)).cpu()
