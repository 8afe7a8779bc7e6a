"""Peer run: the PyPI ``gromo`` package (0.1.0, reference TINY implementation) on our arrays.

``run_gromo`` trains gromo's ``GrowingMLP`` with TINY growth on standardised float32 inputs
and int64 labels 0..K-1, and reports test accuracy, parameter count, wall time, time spent in
growth steps and the final hidden width. Settings (our reference notes on running gromo):

* one hidden layer starting at width 1, ReLU, K output logits, cross-entropy;
* Adam (lr 1e-3, re-created after each growth since the layers get new tensors), batch 64;
* a growth step every ``epochs_between`` (2) epochs, ``growth_steps`` (20) times, then
  ``final_epochs`` (20) more epochs;
* each growth step: gromo's statistics (``compute_statistics``, sum-reduced cross-entropy)
  over a fixed pass of at most 2048 training rows; ``compute_optimal_updates`` with the TINY
  options (``use_covariance``, ``use_projection``, singular values kept, the best update
  dW* of the existing output weights computed and applied: gromo's default
  ``compute_delta=True``, the run that matched our notes; its docstring's TINY list says
  ``False``, which ``compute_delta`` here can select) and gromo's neuron selection: singular
  values >= 1e-3 (absolute ``statistical_threshold``), at most ``max_new_neurons`` (8), the
  first always kept; the amplitude gamma (dW* scaled by gamma**2, new neurons' in and out
  weights by gamma each) from ``gromo.utils.utils.line_search`` on the extended model's mean
  loss over the same rows; then ``apply_change``.

Validation data is not used for any decision (no early stopping); its accuracy is reported.
Runs on CPU with torch's default thread count; ``torch.manual_seed(seed)`` fixes the run.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

STATISTICS_ROWS = 2048
STATISTICAL_THRESHOLD = 1e-3  # gromo's lambda_min, absolute


def gromo_available() -> bool:
    """True when the ``gromo`` package imports."""
    try:
        import gromo.containers.growing_mlp  # noqa: F401
        import gromo.utils.training_utils  # noqa: F401
        import gromo.utils.utils  # noqa: F401
    except ImportError:
        return False
    return True


def train_epochs(model, optimizer, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int):
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0])
        for start in range(0, x.shape[0], batch):
            rows = order[start : start + batch]
            optimizer.zero_grad()
            loss_fn(model(x[rows]), y[rows]).backward()
            optimizer.step()


def _grow(model, x_stat, y_stat, max_new_neurons: int, compute_delta: bool) -> None:
    """One TINY growth step of the hidden layer, driven through gromo's own API."""
    from gromo.utils.training_utils import compute_statistics

    # One fixed pass: accumulates S, M and the projection statistics of the growing layer.
    compute_statistics(
        model, [(x_stat, y_stat)], loss_function=nn.CrossEntropyLoss(reduction="sum")
    )
    update_and_apply(model, x_stat, y_stat, max_new_neurons, compute_delta)


def update_and_apply(model, x_line, y_line, max_new: int, compute_delta: bool) -> None:
    """After a statistics pass: gromo's TINY update of the growing layer (the options listed
    above), the amplitude from ``line_search`` on the mean loss over ``x_line``, then
    ``apply_change``."""
    from gromo.utils.utils import line_search

    model.compute_optimal_updates(
        statistical_threshold=STATISTICAL_THRESHOLD,
        maximum_added_neurons=max_new,
        compute_delta=compute_delta,
        use_covariance=True,
        alpha_zero=False,
        omega_zero=False,
        use_projection=True,
        ignore_singular_values=False,
    )
    model.reset_computation()  # stop storing activities and free the statistics
    model.select_best_update()
    loss_fn = nn.CrossEntropyLoss()

    @torch.no_grad()
    def extended_loss(gamma: float) -> float:
        model.set_scaling_factor(float(gamma))
        return loss_fn(model.extended_forward(x_line), y_line).item()

    model.eval()
    gamma, _ = line_search(extended_loss)
    model.set_scaling_factor(float(gamma))
    model.apply_change()


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


@dataclass(frozen=True)
class PeerData:
    """A peer's tensors: the three parts, the class count, and the fixed rows its growth
    statistics are taken on (at most ``STATISTICS_ROWS`` training rows, drawn once)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    x_stat: torch.Tensor
    y_stat: torch.Tensor

    @classmethod
    def of(cls, x_train, y_train, x_val, y_val, x_test, y_test) -> PeerData:
        def tensors(x, y):
            return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)

        (xt, yt), (xv, yv), (xs, ys) = (
            tensors(x_train, y_train),
            tensors(x_val, y_val),
            tensors(x_test, y_test),
        )
        n_classes = int(max(yt.max(), yv.max(), ys.max()).item()) + 1
        stat_rows = torch.randperm(xt.shape[0])[:STATISTICS_ROWS]  # fixed for the whole run
        return cls(xt, yt, xv, yv, xs, ys, n_classes, xt[stat_rows], yt[stat_rows])


def grow_and_train(
    model,
    data: PeerData,
    grow,
    growth_steps: int,
    epochs_between: int,
    final_epochs: int,
    batch_size: int,
    lr: float,
) -> float:
    """``growth_steps`` times: Adam (re-created, the layers get new tensors) for
    ``epochs_between`` epochs, then ``grow()``; then ``final_epochs`` more. Returns the
    seconds spent growing."""
    growth_seconds = 0.0
    for _ in range(growth_steps):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        train_epochs(model, optimizer, data.x_train, data.y_train, epochs_between, batch_size)
        grow_started = time.perf_counter()
        with warnings.catch_warnings():  # gamma = 0 and pseudo-inverse notices, expected
            warnings.simplefilter("ignore", UserWarning)
            grow()
        growth_seconds += time.perf_counter() - grow_started
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    train_epochs(model, optimizer, data.x_train, data.y_train, final_epochs, batch_size)
    return growth_seconds


def run_gromo(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    growth_steps: int = 20,
    epochs_between: int = 2,
    final_epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_new_neurons: int = 8,
    compute_delta: bool = True,
) -> dict:
    """Grow and train gromo's MLP from width 1 with TINY; return accuracy, size and timings."""
    from gromo.containers.growing_mlp import GrowingMLP

    started = time.perf_counter()
    torch.manual_seed(seed)
    data = PeerData.of(x_train, y_train, x_val, y_val, x_test, y_test)
    xt, xv, xs, yv, ys = data.x_train, data.x_val, data.x_test, data.y_val, data.y_test
    model = GrowingMLP(
        in_features=xt.shape[1],
        out_features=data.n_classes,
        hidden_size=1,
        number_hidden_layers=1,
        activation=nn.ReLU(),
        device=torch.device("cpu"),
    )
    growth_seconds = grow_and_train(
        model,
        data,
        lambda: _grow(model, data.x_stat, data.y_stat, max_new_neurons, compute_delta),
        growth_steps,
        epochs_between,
        final_epochs,
        batch_size,
        lr,
    )

    return {
        "test_accuracy": accuracy(model, xs, ys),
        "val_accuracy": accuracy(model, xv, yv),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - started,
        "growth_seconds": growth_seconds,
        "hidden_width": int(model.layers[0].out_features),
    }
