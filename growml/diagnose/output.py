"""An experiment's directory (``growml diagnose --experiment``): ``experiment.json`` (the
result: settings, table, verdict) and its plot, written whole or not at all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from growml import atomic
from growml.errors import RunError
from growml.runs.workdir import claim, new_partial, refuse_current

if TYPE_CHECKING:
    from growml.diagnose.experiments import ExperimentResult

EXPERIMENT = "experiment.json"


def check_experiment_destination(out: Path, overwrite: bool) -> None:
    """Check, before any work, that an experiment can be written at ``out``: new, empty, or an
    experiment directory to replace with ``overwrite``."""
    if claim(out, "experiment", [EXPERIMENT]) and not overwrite:
        raise RunError(
            f"experiment directory {str(out)!r} already exists; pass --overwrite or choose "
            "another --out."
        )
    if out.exists():
        refuse_current(out)


def write_experiment(result: ExperimentResult, out: Path, overwrite: bool) -> list[Path]:
    """Write ``result`` as ``out/experiment.json`` and ``out/<name>.png`` (built in a partial
    directory beside ``out``, then moved into place); returns the two paths."""
    from growml.diagnose.experiment_plots import experiment_plot

    check_experiment_destination(out, overwrite)
    target = out.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = new_partial(target)
    except OSError as error:
        raise RunError(f"cannot create {str(out)!r}: {error.strerror}.") from None
    plot = f"{result.name}.png"
    try:
        atomic.write_json(partial / EXPERIMENT, result.to_dict())
        experiment_plot(result, partial / plot)
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return [out / EXPERIMENT, out / plot]
