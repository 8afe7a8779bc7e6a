"""Where a run trains: ``train.device`` resolved to a torch device this machine has.

The network, the training rows and every tensor training and growth make live on that device;
the growth statistics stay float64 there. Data prepared in numpy comes over once, the network
goes back to the CPU when training ends (metrics, threshold, saving and export read it there),
and checkpoints hold CPU tensors, so that a run checkpointed on a GPU resumes anywhere.
"""

from __future__ import annotations

import torch

from growml.config import FitConfig
from growml.errors import ConfigError


def resolve_device(setting: str) -> torch.device:
    """The device ``train.device`` names (``auto``: the first CUDA GPU when this machine has
    one, else the CPU); a device that is not there is a ``ConfigError``."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device={setting}: this machine has no CUDA GPU that torch "
                f"{torch.__version__} can use; use train.device=cpu or auto."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"train.device={setting}: this machine has {count} CUDA GPU"
                f"{'s' if count > 1 else ''} (cuda:0 … cuda:{count - 1})."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"train.device={setting}: this machine has no Apple GPU that torch can use; "
            "use train.device=cpu or auto."
        )
    return device


def training_device(config: FitConfig) -> torch.device:
    """The device a run of ``config`` trains on, checked before anything is written: one that
    this machine has, with float64 when growth or pruning need it (their statistics)."""
    device = resolve_device(config.train.device)
    growth, prune = config.growth.enabled, config.prune.method != "none"
    if device.type == "mps" and (growth or prune):
        uses = "growth" if growth else "pruning"
        raise ConfigError(
            f"train.device=mps: {uses} computes its statistics in float64, which MPS does not "
            "have; train fixed widths there (growth.enabled=false, no pruning) or use "
            "train.device=cpu."
        )
    return device


def prediction_device(setting: str) -> torch.device:
    """Where predictions run for ``setting`` (``train.device``'s values): that device, but the
    CPU for MPS, which lacks the float64 that predictions are computed in."""
    device = resolve_device(setting)
    return torch.device("cpu") if device.type == "mps" else device
