"""Which engine predicts for a run: onnxruntime on ``model.onnx``, or the torch network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from growml.config import DEVICE_PATTERN
from growml.errors import ConfigError, ExportError
from growml.runs.layout import EXPORT

if TYPE_CHECKING:
    from growml.export.runtime import OnnxModel
    from growml.runs import Run

ENGINES = ("auto", "onnx", "torch")
MODEL_FILE = EXPORT


def load_predictor(
    run_dir: str | Path, engine: str = "auto", device: str | None = None
) -> Run | OnnxModel:
    """The run's predictor: ``onnx`` (onnxruntime on ``run_dir/model.onnx``, no torch),
    ``torch``, or ``auto``: onnx when the run has been exported, torch otherwise. Both give
    ``predict``, ``predict_proba`` and ``prediction_table`` in the same format. Either is
    refused when a run file changed since growml wrote it, and ``model.onnx`` when it is not
    the export of this run (``growml.export.provenance``).

    ``device`` (``train.device``'s values): where the torch network predicts; onnxruntime
    predicts on the CPU, so a GPU there is refused (``auto`` takes the CPU)."""
    run_dir = Path(run_dir)
    if engine not in ENGINES:
        raise ExportError(f"engine {engine!r} is unknown; use onnx or torch.")
    if device is not None and not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"--device must be auto, cpu, cuda, cuda:N or mps (got {device!r}).")
    exported = run_dir / MODEL_FILE
    if engine == "onnx" or (engine == "auto" and exported.is_file()):
        if device not in (None, "auto", "cpu"):
            raise ConfigError(
                f"--device {device} runs the torch network; add --engine torch (onnxruntime "
                "predicts on the CPU)."
            )
        if not run_dir.is_dir():
            raise ExportError(f"run directory {str(run_dir)!r} does not exist.")
        if not exported.is_file():
            raise ExportError(
                f"{str(run_dir)!r} has no {MODEL_FILE}; export it with growml export "
                f"{run_dir} or predict with --engine torch."
            )
        # onnxruntime: only when it predicts
        from growml.export.provenance import check_files, check_provenance
        from growml.export.runtime import load_onnx

        record = check_files(run_dir)
        model = load_onnx(exported)
        check_provenance(model, record, run_dir)
        return model
    from growml.runs import load_run
    from growml.train.device import prediction_device

    run = load_run(run_dir)
    run.device = prediction_device(device or "cpu")
    return run
