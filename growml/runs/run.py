"""A trained run, in memory or loaded from its directory, and prediction from raw rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from growml.data import Preprocessor, TargetEncoder, as_arrow
from growml.errors import RunError
from growml.nn.mlp import GrowingMLP, ModelSpec
from growml.runs.rundir import CONFIG, HISTORY, METRICS, MODEL_SPEC, MODEL_WEIGHTS, PREPROCESS
from growml.train.metrics import probabilities

FORMAT_VERSION = 1


@dataclass
class Run:
    """A trained network with the preprocessing it was trained with.

    Attributes:
        model: the network (eval mode).
        preprocessor: turns raw feature rows into the network's inputs.
        target_encoder: class labels or the regression target's scale.
        threshold: decision threshold on the positive-class probability (binary tasks).
        metrics: contents of ``metrics.json`` (empty before it is written).
        config: the resolved settings, as saved in ``config.yaml``.
        path: the run directory, once it exists.
    """

    model: GrowingMLP
    preprocessor: Preprocessor
    target_encoder: TargetEncoder
    threshold: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def task(self) -> str:
        return self.target_encoder.task

    @property
    def classes(self) -> list[Any]:
        return list(self.target_encoder.classes)

    def model_info(self) -> dict[str, Any]:
        """The contents of ``model.json``."""
        from growml import __version__

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

    def _outputs(self, rows: Any) -> torch.Tensor:
        table = as_arrow(rows, self.preprocessor.feature_names)
        x = torch.as_tensor(self.preprocessor.transform(table))
        with torch.inference_mode():
            return self.model.eval()(x)

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities (rows × classes, in ``classes`` order) for raw feature rows."""
        if self.task != "classification":
            raise RunError("predict_proba needs a classification run; this one is regression.")
        return probabilities(self._outputs(rows), self.target_encoder.n_outputs).numpy()

    def predict(self, rows: Any) -> np.ndarray:
        """Predicted labels (classification) or values (regression) for raw feature rows.

        ``rows``: a pyarrow Table, a pandas DataFrame, a dict of columns, a list of records, or
        a 2-D array whose columns are ``preprocessor.feature_names`` in order.
        """
        if self.task == "regression":
            return self.target_encoder.decode(self._outputs(rows).squeeze(1).numpy())
        proba = self.predict_proba(rows)
        if proba.shape[1] == 2 and self.threshold is not None:
            indices = (proba[:, 1] >= self.threshold).astype(np.int64)
        else:
            indices = proba.argmax(1)
        return self.target_encoder.decode(indices)

    def history(self) -> list[dict[str, Any]]:
        """The events of ``history.jsonl``."""
        if self.path is None or not (self.path / HISTORY).exists():
            return []
        lines = (self.path / HISTORY).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def load_run(path: str | Path) -> Run:
    """Load a run directory written by ``growml fit``; no code is executed while loading."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory {str(path)!r} does not exist.")
    for name in (MODEL_SPEC, MODEL_WEIGHTS, PREPROCESS):
        if not (path / name).is_file():
            raise RunError(f"{str(path)!r} is not a complete run directory: {name} is missing.")
    info = _read_json(path / MODEL_SPEC)
    preprocess = _read_json(path / PREPROCESS)
    try:
        model = GrowingMLP.from_spec(ModelSpec.from_dict(info))
        model.load_state_dict(load_file(path / MODEL_WEIGHTS))
        preprocessor = Preprocessor.from_dict(preprocess["features"])
        target_encoder = TargetEncoder.from_dict(preprocess["target"])
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
        raise RunError(f"run directory {str(path)!r} is damaged: {exc}.") from None
    config = {}
    if (path / CONFIG).is_file():
        config = yaml.safe_load((path / CONFIG).read_text(encoding="utf-8")) or {}
    metrics = _read_json(path / METRICS) if (path / METRICS).is_file() else {}
    return Run(
        model=model.eval(),
        preprocessor=preprocessor,
        target_encoder=target_encoder,
        threshold=info.get("threshold"),
        metrics=metrics,
        config=config,
        path=path,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{str(path)!r} is not valid JSON; the run directory is damaged.") from None
