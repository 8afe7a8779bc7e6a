"""growml: size neural networks by growing them.

Public API::

    import growml
    config = growml.resolve_config({"data": {"source": "digits"}})
    result = growml.fit(config, out="runs/digits")
    run = growml.load_run("runs/digits")
    run.predict(rows)
    growml.GrowingMLPClassifier(max_params=5000).fit(X, y)   # scikit-learn estimators
    growml.export_run("runs/digits")                 # runs/digits/model.onnx, verified
    growml.load_onnx("runs/digits/model.onnx").predict(rows)   # onnxruntime, no torch

The names that need torch (``fit``, ``load_run``, ``export_run``, the scikit-learn estimators
...) are imported on first use, so that ``load_onnx`` serves predictions from a process that
never imports torch.
"""

from typing import TYPE_CHECKING

from growml.config import FitConfig, load_recipe, resolve_config
from growml.errors import (
    ConfigError,
    DataError,
    ExportError,
    GrowmlError,
    GrowmlWarning,
    RunError,
)
from growml.lazy import lazy_names
from growml.version import __version__

if TYPE_CHECKING:
    from growml.export import ExportResult, export_run
    from growml.export.runtime import OnnxModel, load_onnx
    from growml.fitting import FitResult, fit
    from growml.runs import Run, load_run
    from growml.sklearn import GrowingMLPClassifier, GrowingMLPRegressor

_LAZY = {
    "ExportResult": "growml.export",
    "export_run": "growml.export",
    "OnnxModel": "growml.export.runtime",
    "load_onnx": "growml.export.runtime",
    "FitResult": "growml.fitting",
    "fit": "growml.fitting",
    "Run": "growml.runs",
    "load_run": "growml.runs",
    "GrowingMLPClassifier": "growml.sklearn",
    "GrowingMLPRegressor": "growml.sklearn",
}

__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "ExportResult",
    "FitConfig",
    "FitResult",
    "GrowmlError",
    "GrowingMLPClassifier",
    "GrowingMLPRegressor",
    "GrowmlWarning",
    "OnnxModel",
    "Run",
    "RunError",
    "__version__",
    "export_run",
    "fit",
    "load_onnx",
    "load_recipe",
    "load_run",
    "resolve_config",
]
