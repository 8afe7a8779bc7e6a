"""The run directory: atomic writes, save and load (safetensors + JSON, no pickle).

``load_run`` and the writer need torch and are imported on first use; ``read_run_files``
(the run's records, as ``growml report`` shows them) does not.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from growml.runs.files import RunFiles, read_run_files

if TYPE_CHECKING:
    from growml.runs.run import Run, load_run
    from growml.runs.rundir import RunWriter, default_run_dir

_LAZY = {
    "Run": "growml.runs.run",
    "load_run": "growml.runs.run",
    "RunWriter": "growml.runs.rundir",
    "default_run_dir": "growml.runs.rundir",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'growml.runs' has no attribute {name!r}")


__all__ = ["Run", "RunFiles", "RunWriter", "default_run_dir", "load_run", "read_run_files"]
