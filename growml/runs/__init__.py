"""The run directory: atomic writes, save and load (safetensors + JSON, no pickle)."""

from growml.runs.run import Run, load_run
from growml.runs.rundir import RunWriter, default_run_dir

__all__ = ["Run", "RunWriter", "default_run_dir", "load_run"]
