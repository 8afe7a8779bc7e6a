"""Optimizer state carried across every change of the network's shape.

This is the one place that touches optimizer state when neurons are added or removed: existing
moments are kept (sliced when neurons go), new entries start at zero, and the optimizer object
is never rebuilt, so Adam's moments and SGD's momentum survive growth and pruning. Training,
growth and pruning all sit above it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from growml.nn.growable import ParamResize


def carry_state(optimizer: torch.optim.Optimizer, resizes: Iterable[ParamResize]) -> None:
    """Reshape the optimizer state of each resized parameter to its new shape.

    Every state tensor shaped like the parameter (moments, momentum buffers) is sliced to the
    kept entries and zero-padded for the appended ones; scalars such as Adam's step count stay.
    """
    for resize in resizes:
        state = optimizer.state.get(resize.param)
        if not state:
            continue
        for key, value in state.items():
            if not isinstance(value, Tensor) or value.dim() == 0:
                continue
            if value.shape[resize.dim] != resize.old_size:
                # Fused kernels do not check shapes: a mismatch would silently misalign moments.
                raise RuntimeError(
                    f"optimizer state {key!r} of shape {tuple(value.shape)} does not match its "
                    f"parameter (size {resize.old_size} along dimension {resize.dim})"
                )
            state[key] = _resize(value, resize)


def forget_stale_state(optimizer: torch.optim.Optimizer) -> None:
    """Drop the state of every parameter whose shape no longer matches it (weights restored
    from before a shape change); the optimizer starts those parameters afresh."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if any(
                isinstance(value, Tensor) and value.dim() and value.shape != param.shape
                for value in state.values()
            ):
                del optimizer.state[param]


def _resize(value: Tensor, resize: ParamResize) -> Tensor:
    if resize.keep is not None:
        value = value.index_select(resize.dim, resize.keep)
    if resize.append:
        pad_shape = list(value.shape)
        pad_shape[resize.dim] = resize.append
        value = torch.cat([value, value.new_zeros(pad_shape)], resize.dim)
    return value.contiguous()
