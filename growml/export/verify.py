"""Parity of an exported model with the run it came from, on the run's own test split.

The test split is made again exactly as ``growml fit`` made it (``config.yaml``'s data settings
and seed through ``growml.data.split_rows``). First the run itself must still give the test
metrics its ``metrics.json`` recorded (``check_recorded_metrics``): an export compared with an
edited run would otherwise agree with the edit. Then its raw rows go through onnxruntime and
through the torch path (``Run.predict``). Probabilities must agree within ``TOLERANCE``; a
regression value within ``TOLERANCE`` times the target's standard deviation when that exceeds
1 (the network works on the standardised scale, and float32 carries 7 digits of a value in
the thousands); every label must be equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import torch

from growml.config import resolve_config
from growml.data import load_data_table, split_rows
from growml.errors import ConfigError, ExportError
from growml.export.runtime import OnnxModel
from growml.runs import digests
from growml.train.metrics import evaluate

if TYPE_CHECKING:
    from growml.runs import Run

TOLERANCE = 1e-5
# The same weights on the same rows give the same metrics up to float32's summation order.
RECORDED_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Parity:
    """How closely the exported model follows the run on ``rows`` rows.

    ``max_difference`` is the largest absolute difference of a probability (classification)
    or a value in the target's units (regression); ``tolerance`` the largest allowed;
    ``label_mismatches`` how many predicted labels differ.
    """

    rows: int
    max_difference: float
    tolerance: float
    label_mismatches: int

    @property
    def agrees(self) -> bool:
        return self.label_mismatches == 0 and self.max_difference <= self.tolerance


def held_out_rows(run: Run, source: str | None = None) -> tuple[pa.Table, pa.ChunkedArray]:
    """The raw feature rows of the run's test split and their target; ``source`` replaces
    ``data.source`` when the training data has moved since the run was trained."""
    settings = dict(run.config)
    if not settings.get("data"):
        raise ExportError(
            "the run has no config.yaml with its data settings, so its test split cannot be "
            "made again to verify the export; train the run again."
        )
    if source is not None:
        settings["data"] = {**settings["data"], "source": source}
    try:
        config = resolve_config(settings)
    except ConfigError as error:
        raise ExportError(f"the run's config.yaml cannot be read back ({error})") from None
    data = config.data
    if data.test_size == 0:
        raise ExportError(
            "the run has no test split to verify the export on (data.test_size=0, as in a "
            "scikit-learn estimator's run); export the estimator with its to_onnx method."
        )
    table = load_data_table(data)
    test = split_rows(table, data, config.seed)[2]
    expected = run.metrics.get("rows", {}).get("test")
    if expected is not None and len(test) != expected:
        raise ExportError(
            f"the data at {data.source} gives a test split of {len(test)} rows where the run "
            f"had {expected}: it has changed since the run was trained; pass --data with the "
            "file the run was trained on."
        )
    return table.features.take(test), table.target.take(test)


def check_recorded_metrics(run: Run, rows: pa.Table, target: pa.ChunkedArray) -> None:
    """Refuse a run of a format without digests that no longer gives, on its test ``rows``
    and ``target``, the test metrics its ``metrics.json`` recorded: one of its files, or the
    data, changed since it was trained. A run with digests has had its files checked, and its
    metrics may be weighted (``sample_weight``): it is not measured again."""
    if run.path is not None and digests.read(run.path) is not None:
        return
    recorded = run.metrics.get("test") or {}
    encoder = run.target_encoder
    x = run.preprocessor.transform(rows)
    with torch.inference_mode():
        measured = evaluate(run.model.eval(), x, encoder.encode(target), encoder, run.threshold)
    for name, value in measured.items():
        was = recorded.get(name)
        if was is not None and not math.isclose(
            value, was, rel_tol=RECORDED_TOLERANCE, abs_tol=RECORDED_TOLERANCE
        ):
            raise ExportError(
                f"the run no longer gives the test {name} its metrics.json recorded ({value:.6g} "
                f"against {was:.6g}): one of its files, or its data, changed since it was "
                "trained; restore them (--data names the training file), or fit the run again."
            )


def compare(model: OnnxModel, run: Run, rows: pa.Table) -> Parity:
    """Run ``rows`` through both engines and measure how far apart they are."""
    if run.task == "regression":
        expected, actual = run.predict(rows), model.predict(rows)
        tolerance = TOLERANCE * max(1.0, run.target_encoder.std)
        return Parity(rows.num_rows, _largest_gap(expected, actual), tolerance, 0)
    outputs = model.run(rows)
    labels = run.predict(rows)
    pairs = zip(np.asarray(labels).tolist(), outputs["label"].tolist(), strict=True)
    mismatches = sum(expected != actual for expected, actual in pairs)
    gap = _largest_gap(run.predict_proba(rows), outputs["probabilities"])
    return Parity(rows.num_rows, gap, TOLERANCE, mismatches)


def _largest_gap(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        return float("inf")
    gap = np.abs(expected - actual)
    # A NaN on one side only is a difference; on both sides (a NaN input) it is agreement.
    gap[np.isnan(expected) & np.isnan(actual)] = 0.0
    return float(np.nan_to_num(gap, nan=np.inf).max(initial=0.0))
