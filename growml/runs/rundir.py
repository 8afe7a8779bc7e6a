"""Writing a run directory: built in a hidden sibling, moved into place only when complete.

A run that fails or is interrupted leaves no ``runs/<name>`` behind, so every run directory a
user sees is whole. Inside, each file is written atomically as well.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TextIO

import torch
from safetensors.torch import save

from growml.errors import RunError
from growml.runs import atomic
from growml.train.events import Event

CONFIG = "config.yaml"
MODEL_WEIGHTS = "model.safetensors"
MODEL_SPEC = "model.json"
PREPROCESS = "preprocess.json"
METRICS = "metrics.json"
HISTORY = "history.jsonl"
RUN_FILES = (CONFIG, MODEL_WEIGHTS, MODEL_SPEC, PREPROCESS, METRICS, HISTORY)


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """``runs/<name>``, or ``runs/<name>-2``, ``-3``... when taken (the name of the data)."""
    candidate, number = root / name, 1
    while candidate.exists():
        number += 1
        candidate = root / f"{name}-{number}"
    return candidate


class RunWriter:
    """Collects a run's files and publishes them as ``out`` in one rename.

    Use as a context manager: leaving the block normally calls ``commit``; an exception (or
    Ctrl-C) removes everything written. ``overwrite`` replaces an existing run at ``out``.
    """

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise RunError(
                f"run directory {str(self.out)!r} already exists; "
                "pass --overwrite or choose another --out."
            )
        if self.out.exists() and not self.out.is_dir():
            raise RunError(
                f"{str(self.out)!r} exists and is not a directory; choose another --out."
            )
        self.overwrite = overwrite
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        self._history: TextIO = open(self.path / HISTORY, "w", encoding="utf-8")  # noqa: SIM115

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def record(self, event: Event) -> None:
        """Append one event to ``history.jsonl`` (an observer of the trainer)."""
        self._history.write(json.dumps(event.to_dict()) + "\n")

    def write_json(self, name: str, data: Any) -> None:
        atomic.write_json(self.path / name, data)

    def write_yaml(self, name: str, data: Any) -> None:
        atomic.write_yaml(self.path / name, data)

    def write_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        contiguous = {key: value.detach().contiguous() for key, value in tensors.items()}
        atomic.write_bytes(self.path / MODEL_WEIGHTS, save(contiguous))

    def commit(self) -> Path:
        self._history.close()
        if self.out.exists():
            # Swap, then delete: the old run stays whole until the new one is in place.
            trash = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, trash / self.out.name)
            os.replace(self.path, self.out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.path, self.out)
        return self.out

    def abort(self) -> None:
        self._history.close()
        shutil.rmtree(self.path, ignore_errors=True)
