"""ONNX export with the preprocessing inside the graph, and prediction through onnxruntime.

``export_run`` builds, checks, verifies and writes ``model.onnx``; ``load_onnx`` predicts from
it with onnxruntime alone. ``export_run`` needs torch (it loads the run to compare against), so
it is imported on first use and ``load_onnx`` stays free of torch.
"""

from typing import TYPE_CHECKING

from growml.export.engines import ENGINES, MODEL_FILE, load_predictor
from growml.lazy import lazy_names

if TYPE_CHECKING:
    from growml.export.exporter import ExportResult, export_run
    from growml.export.runtime import OnnxModel, load_onnx

# Imported on first use: onnx and onnxruntime take most of a second to import.
_LAZY = {
    "ExportResult": "growml.export.exporter",
    "export_run": "growml.export.exporter",
    "OnnxModel": "growml.export.runtime",
    "load_onnx": "growml.export.runtime",
}

__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "ENGINES",
    "MODEL_FILE",
    "ExportResult",
    "OnnxModel",
    "export_run",
    "load_onnx",
    "load_predictor",
]
