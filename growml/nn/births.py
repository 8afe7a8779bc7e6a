"""``Births``: each weight's value when it was born, followed through every change of shape.

A grown network has no single initialisation: its first neurons start with the network, the
others when a growth step adds them, and trimming or pruning removes some. What a trained
network moved away from is, for each entry of each parameter, the value it had when it was
born. ``Births`` holds a tensor shaped like each parameter with those values: made from the
parameters when recording starts (their values are the first births), it follows every shape
change the network reports (``ParamResize``: entries kept are kept, entries appended are born
with their values at that moment), takes the values of a layer inserted, and forgets a layer
removed. ``growml.diagnose`` measures laziness against it (docs/theory.md).

Weights restored from an earlier epoch of the same training (early stopping's best epoch) come
from before later growth: growth only appends, so the births of the restored shape are a prefix
of the current ones, and ``follow`` cuts them to it. Any other restore (trimming going back to
the untrimmed network) puts its own ``snapshot`` back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from growml.nn.growable import ParamResize


def _copy(param: Tensor) -> Tensor:
    # An ordinary tensor even when training (in inference mode) adds the entries: births are
    # read long after, by code that differentiates.
    with torch.inference_mode(False):
        return param.detach().clone()


class Births:
    """The value each entry of ``model``'s parameters had when it was born; to start with, the
    parameters as they are now."""

    def __init__(self, model: nn.Module) -> None:
        self.values: dict[nn.Parameter, Tensor] = {p: _copy(p) for p in model.parameters()}

    def resized(self, resizes: Iterable[ParamResize]) -> None:
        """Each resized parameter's births: its kept entries', then the appended entries' values
        now (the parameter already has its new shape and values)."""
        for resize in resizes:
            value = self.values.get(resize.param)
            if value is None:
                continue
            if resize.keep is not None:
                value = value.index_select(resize.dim, resize.keep.to(value.device))
            if resize.append:
                param = resize.param.data
                born = param.narrow(
                    resize.dim, param.shape[resize.dim] - resize.append, resize.append
                )
                value = torch.cat([value, _copy(born).to(value)], resize.dim)
            self.values[resize.param] = value

    def added(self, params: Iterable[nn.Parameter]) -> None:
        """Parameters new to the network (an inserted layer's): born with their values now."""
        for param in params:
            self.values[param] = _copy(param)

    def dropped(self, params: Iterable[nn.Parameter]) -> None:
        """Parameters the network no longer has."""
        for param in params:
            self.values.pop(param, None)

    def follow(self, model: nn.Module) -> None:
        """After ``model``'s weights were restored from an earlier epoch of the same training:
        each parameter's births cut to its shape (growth since only appended entries)."""
        for param in model.parameters():
            value = self.values.get(param)
            if value is None:
                self.values[param] = _copy(param)
            elif value.shape != param.shape:
                if any(b < p for b, p in zip(value.shape, param.shape, strict=True)):
                    raise ValueError(
                        f"births of shape {tuple(value.shape)} cannot follow a parameter "
                        f"restored to {tuple(param.shape)}"
                    )
                self.values[param] = value[tuple(slice(0, size) for size in param.shape)]

    def snapshot(self) -> dict[nn.Parameter, Tensor]:
        """The births now, for ``restore`` after a change that a restore of weights undoes."""
        return dict(self.values)

    def restore(self, snapshot: Mapping[nn.Parameter, Tensor]) -> None:
        self.values = dict(snapshot)

    def named(self, model: nn.Module) -> dict[str, Tensor]:
        """The births of ``model``'s parameters, by parameter name, on the CPU."""
        return {name: self.values[param].cpu() for name, param in model.named_parameters()}

    @classmethod
    def from_named(cls, model: nn.Module, tensors: Mapping[str, Tensor]) -> Births:
        """The births ``named`` gave for ``model`` (a checkpoint's), on its parameters' device."""
        births = cls.__new__(cls)
        births.values = {
            param: tensors[name].to(param.device, copy=True)
            for name, param in model.named_parameters()
        }
        return births
