"""``digests.json``: the SHA-256 of every file a run wrote, checked before the run is used.

A run directory is plain files a user can open, copy and edit. ``RunWriter`` lists the digest
of each file it wrote (settings, weights, architecture, preprocessing, metrics, history,
plots) in ``digests.json``, written last; ``growml export`` adds ``model.onnx``. A file that
differs from its digest is refused by name before anything reads it, so an edit is never a
silent wrong answer. Runs of the formats before digests (1 and 2) have no ``digests.json`` and
are read without this check. Needs no torch, so ``growml predict`` on ONNX stays light.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from growml import atomic
from growml.errors import RunError
from growml.runs.layout import EXPORT, PLOTS

DIGESTS = "digests.json"
ALGORITHM = "sha256"
# The run format from which every run has digests.json (growml.runs.run.FORMAT_VERSION).
SINCE_FORMAT = 3


def file_digest(path: Path) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, ALGORITHM).hexdigest()


def of(directory: Path, names: Iterable[str]) -> dict[str, str]:
    """The digests of the files ``names`` (paths relative to ``directory``), by name."""
    return {name: file_digest(directory / name) for name in sorted(names)}


def record(directory: Path, names: Iterable[str]) -> None:
    """Write ``digests.json`` in ``directory`` for the files ``names`` (relative paths)."""
    atomic.write_json(directory / DIGESTS, {"algorithm": ALGORITHM, "files": of(directory, names)})


def add(directory: Path, name: str) -> None:
    """Add the file ``name`` (just written) to the run's ``digests.json``; a run of a format
    without digests gets none."""
    files = read(directory)
    if files is not None:
        # The other entries stand as they were checked: a file edited meanwhile stays refused.
        files = {**files, name: file_digest(directory / name)}
        atomic.write_json(
            directory / DIGESTS, {"algorithm": ALGORITHM, "files": dict(sorted(files.items()))}
        )


def read(directory: Path) -> dict[str, str] | None:
    """The digests ``digests.json`` lists, by file; None when the run has none."""
    path = directory / DIGESTS
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        files = content["files"] if content.get("algorithm") == ALGORITHM else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise RunError(
            f"{str(path)!r} is damaged, so the run's files cannot be checked; restore it, or "
            "fit the run again."
        )
    return files


def require(directory: Path, run_format: object) -> None:
    """Refuse a run of format ``run_format`` (``model.json``'s ``format_version``), one with
    digests, whose ``digests.json`` is missing."""
    has_digests = isinstance(run_format, int) and run_format >= SINCE_FORMAT
    if has_digests and not (directory / DIGESTS).is_file():
        raise RunError(
            f"{DIGESTS} is missing from the run {str(directory)!r}, so its files cannot be "
            "checked; restore it, or fit the run again."
        )


def check(directory: Path, names: Iterable[str] | None = None) -> None:
    """Refuse the first file of the run at ``directory`` (of ``names``, or every file it
    lists but ``model.onnx``) that changed since growml wrote it, in one sentence naming it;
    a run without ``digests.json`` is not checked. ``model.onnx`` and the plots may be
    deleted: nothing reads them to predict."""
    files = read(directory)
    if files is None:
        return
    wanted = [name for name in files if name != EXPORT] if names is None else names
    for name in wanted:
        path = directory / name
        if name not in files:
            if path.is_file():
                raise RunError(_not_written(name, directory))
            continue
        if not path.is_file():
            if name == EXPORT or name.startswith(f"{PLOTS}/"):  # deleting a picture is allowed
                continue
            raise RunError(
                f"{name} is missing from the run {str(directory)!r}, which was written with it; "
                "restore it, or fit the run again."
            )
        if file_digest(path) != files[name]:
            raise RunError(_changed(name, directory))


def _changed(name: str, directory: Path) -> str:
    if name == EXPORT:
        return (
            f"{name} in the run {str(directory)!r} has changed since growml export wrote it; "
            f"export the run again with growml export {directory}."
        )
    return (
        f"{name} in the run {str(directory)!r} has changed since growml wrote it; restore the "
        "file, or fit the run again."
    )


def _not_written(name: str, directory: Path) -> str:
    return (
        f"{name} in the run {str(directory)!r} was not written by growml export of this run "
        f"(copied from another?); export the run again with growml export {directory}."
    )
