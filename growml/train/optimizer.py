"""The optimizers training uses (their state across shape changes: ``nn/optimizer_state.py``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from growml.config import TrainConfig


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``train.optimizer``, with the fused CPU kernel (one call per step
    for all parameters instead of one per tensor and operation)."""
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            fused=True,
        )
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
