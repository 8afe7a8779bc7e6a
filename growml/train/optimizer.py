"""The optimizers training uses (their state across shape changes: ``nn/optimizer_state.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

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


class FusedStep:
    """``optimizer.step()`` as one call of torch's fused kernel, for the training loop.

    ``torch.optim``'s ``step`` spends most of a small network's step in Python: it regroups the
    tensors by device and type, looks up every parameter's state and opens a profiler range, each
    time. The loop's parameters and state stay the same objects for a whole epoch, so this
    gathers them once (``prepare``, called as each epoch starts) and then calls the kernel that
    ``step`` would call, with the same arguments: the parameters move exactly as ``step`` moves
    them. Whatever the fast path does not cover (a parameter without state yet, or without a
    gradient; an option such as amsgrad; parameters on several devices) goes through
    ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._call: Callable[[list[Tensor]], None] | None = None
        self._params: list[Tensor] = []

    def prepare(self) -> None:
        """Gather the parameters and their state; call again after either changes."""
        self._call = None
        groups = self.optimizer.param_groups
        if len(groups) != 1 or not _fusable(groups[0]):
            return
        group = groups[0]
        params = list(group["params"])
        states = [self.optimizer.state.get(param) for param in params]
        if not params or len({(p.device, p.dtype) for p in params}) != 1:
            return
        kind = type(self.optimizer)
        if kind in (torch.optim.Adam, torch.optim.AdamW):
            self._call = _adam_call(group, kind is torch.optim.AdamW, params, states)
        elif kind is torch.optim.SGD:
            self._call = _sgd_call(group, params, states)
        self._params = params

    def __call__(self) -> None:
        if self._call is None:
            self.optimizer.step()
            self.prepare()  # the first step makes the state the fast path needs
            return
        grads = [param.grad for param in self._params]
        if any(grad is None for grad in grads):  # not `None in grads`: that compares tensors
            self.optimizer.step()
            return
        self._call(grads)


def _fusable(group: dict[str, Any]) -> bool:
    return (
        group.get("fused") is True
        and not group.get("amsgrad", False)
        and not group.get("maximize", False)
        and not group.get("capturable", False)
        and not group.get("differentiable", False)
        and not group.get("nesterov", False)
        and not isinstance(group["lr"], Tensor)
    )


def _adam_call(
    group: dict[str, Any], decoupled: bool, params: list[Tensor], states: list[Any]
) -> Callable[[list[Tensor]], None] | None:
    if not all(state and "exp_avg" in state for state in states):
        return None
    averages = [state["exp_avg"] for state in states]
    squares = [state["exp_avg_sq"] for state in states]
    steps = [state["step"] for state in states]
    # Adding a list of tensors is foreach's fast path (adding the number 1 is not).
    ones = [steps[0].new_ones(())] * len(steps)
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    beta1, beta2 = (float(beta) for beta in group["betas"])

    def call(grads: list[Tensor]) -> None:
        torch._foreach_add_(steps, ones)
        kernel(
            params,
            grads,
            averages,
            squares,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

    return call


def _sgd_call(
    group: dict[str, Any], params: list[Tensor], states: list[Any]
) -> Callable[[list[Tensor]], None] | None:
    momentum = group["momentum"]
    buffers: list[Tensor] = []
    if momentum:
        if not all(state and state.get("momentum_buffer") is not None for state in states):
            return None
        buffers = [state["momentum_buffer"] for state in states]

    def call(grads: list[Tensor]) -> None:
        torch._fused_sgd_(
            params,
            grads,
            buffers,
            weight_decay=group["weight_decay"],
            momentum=momentum,
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=False,
            maximize=False,
            is_first_step=False,
            grad_scale=None,
            found_inf=None,
        )

    return call
