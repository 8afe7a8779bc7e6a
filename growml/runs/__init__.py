"""The run directory: atomic writes, save and load (safetensors + JSON, no pickle).

``Run``, ``load_run`` and ``RunWriter`` need torch, so they are imported on first use: the
torch-free parts (``digests``, ``workdir``, ``records``) serve ``growml predict`` on ONNX, and
``read_run_files`` (a run's records, checked) ``growml report``.
"""

from typing import TYPE_CHECKING

from growml.lazy import lazy_names

if TYPE_CHECKING:
    from growml.runs.files import RunFiles, read_run_files
    from growml.runs.run import Run, load_run
    from growml.runs.rundir import RunWriter, default_run_dir

_LAZY = {
    "Run": "growml.runs.run",
    "load_run": "growml.runs.run",
    "RunWriter": "growml.runs.rundir",
    "default_run_dir": "growml.runs.rundir",
    "RunFiles": "growml.runs.files",
    "read_run_files": "growml.runs.files",
}

__getattr__ = lazy_names(__name__, _LAZY)


__all__ = ["Run", "RunFiles", "RunWriter", "default_run_dir", "load_run", "read_run_files"]
