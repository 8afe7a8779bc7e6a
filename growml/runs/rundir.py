"""Writing a run directory: built in a hidden sibling, moved into place only when complete.

A run that fails or is interrupted leaves no ``runs/<name>`` behind, so every run directory a
user sees is whole. Inside, each file is written atomically as well.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, TextIO

import torch
from safetensors.torch import save

from growml import atomic
from growml.checkpoint import CHECKPOINT
from growml.errors import GrowmlWarning, RunError
from growml.events import Event
from growml.runs import digests
from growml.runs.layout import (
    HISTORY,
    MODEL_WEIGHTS,
    PLOTS,
    RUN_FILES,
)
from growml.runs.workdir import (
    check_destination,
    held,
    hold,
    in_use,
    new_partial,
    partials,
)

__all__ = ["RunWriter", "default_run_dir", "interrupted_runs", "remove_abandoned"]


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """``runs/<name>``, or ``runs/<name>-2``, ``-3``... when taken (the name of the data)."""
    candidate, number = root / name, 1
    while candidate.exists():
        number += 1
        candidate = root / f"{name}-{number}"
    return candidate


def remove_abandoned(out: Path) -> None:
    """Remove the partial directories of ``out`` that no process is writing and that hold no
    checkpoint to resume from: what runs killed before their first checkpoint left."""
    for path in partials(Path(out)):
        if not (path / CHECKPOINT).is_file() and not in_use(path):
            shutil.rmtree(path, ignore_errors=True)


def interrupted_runs(out: Path) -> list[Path]:
    """The partial directories of interrupted runs of ``out`` that hold a checkpoint (and that
    no process is still writing), the newest first."""
    found = [
        path for path in partials(Path(out)) if (path / CHECKPOINT).is_file() and not held(path)
    ]
    return sorted(found, key=lambda path: (path / CHECKPOINT).stat().st_mtime, reverse=True)


class RunWriter:
    """Collects a run's files and publishes them as ``out`` in one rename.

    Use as a context manager: entering checks ``out`` and opens a hidden work directory beside
    it; leaving normally moves the work directory into place, and an exception (or Ctrl-C)
    removes everything written. ``overwrite`` replaces an existing *run* at ``out``; any other
    existing, non-empty path is refused so that no user data is ever deleted.
    """

    def __init__(self, out: Path, overwrite: bool = False, resume: Path | None = None) -> None:
        self.out = Path(out)
        self.overwrite = overwrite
        self.resume = resume  # the partial directory of an interrupted run to go on in

    def __enter__(self) -> RunWriter:
        target = self.out.resolve()
        shown = str(self.out)
        check_destination(self.out, self.overwrite)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.path = self.resume if self.resume is not None else new_partial(target)
        except OSError as error:
            raise RunError(
                f"cannot create the run directory {shown!r}: {error.strerror}."
            ) from None
        self._lock = hold(self.path)  # the run is under way: no other process removes it
        os.chmod(self.path, atomic.DIRECTORY_MODE)
        self._target = target
        self._history: TextIO = open(self.path / HISTORY, "w", encoding="utf-8")  # noqa: SIM115
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.commit()
            elif exc_type is KeyboardInterrupt and (self.path / CHECKPOINT).is_file():
                # Interrupted (Ctrl-C, SIGTERM) with a checkpoint: keep it for --resume.
                self._history.close()
                warnings.warn(
                    f"interrupted; the run so far is kept in {str(self.path)!r}: the same "
                    "command with --resume continues it.",
                    GrowmlWarning,
                    stacklevel=2,
                )
            else:
                self.abort()
        finally:
            os.close(self._lock)

    def replay(self, events: list[dict[str, Any]]) -> None:
        """Start ``history.jsonl`` again from ``events`` (a resumed run's, up to its
        checkpoint)."""
        for event in events:
            self._history.write(json.dumps(event, allow_nan=False) + "\n")

    def record(self, event: Event) -> None:
        """Append one event to ``history.jsonl`` (an observer of the trainer)."""
        self._history.write(json.dumps(event.to_dict(), allow_nan=False) + "\n")

    def write_json(self, name: str, data: Any) -> None:
        atomic.write_json(self.path / name, data)

    def write_yaml(self, name: str, data: Any) -> None:
        atomic.write_yaml(self.path / name, data)

    def write_weights(self, tensors: dict[str, torch.Tensor], name: str = MODEL_WEIGHTS) -> None:
        """``tensors`` as the safetensors file ``name`` (the model's weights by default)."""
        contiguous = {key: value.detach().contiguous() for key, value in tensors.items()}
        atomic.write_bytes(self.path / name, save(contiguous))

    def commit(self) -> Path:
        """Move the finished run into place; on failure nothing is left behind."""
        self._history.close()
        (self.path / CHECKPOINT).unlink(missing_ok=True)  # a finished run needs none
        digests.record(self.path, self._written())
        target = self._target
        trash = None
        try:
            if target.exists():
                # Swap, then delete: the old run stays whole until the new one is in place.
                trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, trash / target.name)
            os.replace(self.path, target)
        except OSError as error:
            if trash is not None and (trash / target.name).exists() and not target.exists():
                os.replace(trash / target.name, target)
            self.abort()
            raise RunError(
                f"cannot move the run into {str(self.out)!r}: {error.strerror}."
            ) from None
        finally:
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        return self.out

    def _written(self) -> list[str]:
        """The run's files, by their paths relative to the run directory."""
        names = [name for name in RUN_FILES if (self.path / name).is_file()]
        plots = sorted(path for path in (self.path / PLOTS).rglob("*") if path.is_file())
        return names + [path.relative_to(self.path).as_posix() for path in plots]

    def abort(self) -> None:
        self._history.close()
        shutil.rmtree(self.path, ignore_errors=True)
