"""Checkpoints of a training in progress: one safetensors file, written atomically.

A checkpoint holds everything the training needs to go on exactly as if it had never stopped:
the network (at its current widths), the optimizer's state, the trainer's loop state (epoch,
best validation so far and its weights, the batch-order generator), its hooks' state (the
growth engine's counters, evidence and generator), and the events recorded so far. Tensors
are tensors of the file; everything else is one JSON document in the file's metadata. No
pickle: a checkpoint is read with ``safetensors`` and ``json`` only.

It lives inside the hidden, partial run directory (``.NAME.partial-*``), so an interrupted
run leaves its checkpoint beside it and a finished run none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from growml import atomic
from growml.errors import RunError

CHECKPOINT = "checkpoint.safetensors"
FORMAT_VERSION = 3


@dataclass
class Checkpoint:
    """One training's state: ``tensors`` by name, and JSON-ready ``state``.

    ``state`` holds ``config`` (the run's settings, to refuse resuming with others),
    ``trainer`` (the loop's ``LoopState``: epoch, optimizer, early stopping and each hook's
    ``state_dict``, tensors replaced by their names) and ``events``.
    """

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def put(self, name: str, tensor: torch.Tensor) -> str:
        """Store ``tensor`` under ``name``; returns the name, for the JSON state to refer to."""
        # On the CPU: a run checkpointed on a GPU resumes on any machine.
        self.tensors[name] = tensor.detach().to(
            "cpu", memory_format=torch.contiguous_format, copy=True
        )
        return name


def write_checkpoint(folder: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` into ``folder`` atomically (a reader sees the old or the new)."""
    metadata = {"growml_checkpoint": json.dumps({"version": FORMAT_VERSION, **checkpoint.state})}
    atomic.write_bytes(folder / CHECKPOINT, save(checkpoint.tensors, metadata=metadata))


def read_checkpoint(folder: Path) -> Checkpoint | None:
    """The checkpoint in ``folder``, or None when there is none."""
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        tensors = load(data)
        header_size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_size])
        state = json.loads(header["__metadata__"]["growml_checkpoint"])
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise RunError(f"the checkpoint {str(path)!r} cannot be read ({error}).") from None
    if state.pop("version", None) != FORMAT_VERSION:
        raise RunError(f"the checkpoint {str(path)!r} was written by another growml version.")
    return Checkpoint(tensors, state)


def optimizer_state(checkpoint: Checkpoint, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer``'s state dict with its tensors moved into ``checkpoint``."""
    saved = optimizer.state_dict()
    state = {
        str(index): {
            key: {"tensor": checkpoint.put(f"optimizer.{index}.{key}", value)}
            if isinstance(value, torch.Tensor)
            else value
            for key, value in entries.items()
        }
        for index, entries in saved["state"].items()
    }
    return {"state": state, "param_groups": saved["param_groups"]}


def load_optimizer_state(
    checkpoint: Checkpoint, optimizer: torch.optim.Optimizer, saved: dict[str, Any]
) -> None:
    """Restore what ``optimizer_state`` stored."""
    state = {
        int(index): {
            key: checkpoint.tensors[value["tensor"]] if isinstance(value, dict) else value
            for key, value in entries.items()
        }
        for index, entries in saved["state"].items()
    }
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def generator_state(checkpoint: Checkpoint, name: str, generator: torch.Generator) -> str:
    return checkpoint.put(name, generator.get_state())


def load_generator_state(checkpoint: Checkpoint, name: str, generator: torch.Generator) -> None:
    generator.set_state(checkpoint.tensors[name])
