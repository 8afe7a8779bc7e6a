"""Whether a run's ``model.onnx`` is the export of that run, checked before it predicts.

A ``model.onnx`` copied from another run (a regression model into a classification run), one
exported before the run was fitted again, or one edited by hand would otherwise predict with
another model's answers under this run's name. Checked, without torch: the run's digests
(``growml.runs.digests``), then the model's metadata against ``model.json``: task, classes,
threshold, input columns, widths and activation, the growml that exported it, and the digests
of the run files it was exported from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from growml.errors import ExportError
from growml.export.runtime import OnnxModel
from growml.runs import digests
from growml.runs.files import read_run_files
from growml.runs.layout import EXPORT
from growml.runs.records import ModelRecord
from growml.version import __version__


def check_files(run_dir: Path) -> ModelRecord:
    """Refuse a file of the run at ``run_dir`` (``model.onnx`` included) that changed since
    growml wrote it, with the checks ``load_run`` makes (no torch needed); returns the run's
    ``model.json``, read back typed."""
    record = read_run_files(run_dir).description
    digests.check(run_dir, [EXPORT])
    return record


def check_provenance(model: OnnxModel, record: ModelRecord, run_dir: Path) -> None:
    """Refuse ``model`` (the run's ``model.onnx``) unless it is the export of the run at
    ``run_dir`` (whose ``model.json`` is ``record``), in one sentence naming what differs."""
    difference = _difference(model.info, record, run_dir)
    if difference:
        raise ExportError(
            f"{str(run_dir / EXPORT)!r} is not the export of the run {str(run_dir)!r}: "
            f"{difference}; export the run again with growml export {run_dir}."
        )


def _difference(info: dict[str, Any], record: ModelRecord, run_dir: Path) -> str | None:
    """The first way the model's metadata ``info`` differs from the run, or None."""
    exported_by, fitted_by = _version(info["growml_version"]), _version(record.growml_version)
    if exported_by is not None and exported_by > Version(__version__):
        return f"it was exported by a newer growml ({exported_by})"
    if exported_by is not None and fitted_by is not None and exported_by < fitted_by:
        return f"it was exported by growml {exported_by}, older than the run's {fitted_by}"
    inputs = [entry["name"] for entry in info["inputs"]]
    pairs = [
        ("task", info["task"], record.task),
        ("classes", info["classes"], record.classes if record.task == "classification" else None),
        ("threshold", info["threshold"], record.threshold),
        ("input columns", inputs, record.feature_names or inputs),
        ("hidden widths", info["hidden_widths"], record.hidden_widths),
        ("activation", info["activation"], record.activation),
    ]
    for what, theirs, ours in pairs:
        if theirs != ours:
            return f"the model's {what} ({_shown(theirs)}) and the run's ({_shown(ours)}) differ"
    # The run's own digests were checked against its files already: no file is read twice.
    listed = digests.read(run_dir) or {}
    for name, digest in info["source"].items():
        path = run_dir / name
        ours = listed.get(name) or (digests.file_digest(path) if path.is_file() else None)
        if ours != digest:
            return f"it was exported from another {name} than the run's"
    return None


def _version(text: str | None) -> Version | None:
    try:
        return Version(text or "")
    except InvalidVersion:
        return None


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    return "none" if value is None else str(value)
