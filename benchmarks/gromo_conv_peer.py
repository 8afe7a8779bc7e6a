"""Peer run: the PyPI ``gromo`` package (0.1.0) growing a small convolutional network.

``run_gromo_conv`` grows a convolutional network with gromo's Conv2d growth (TINY) on
standardised float32 images of shape (N, C, H, W) and int64 labels 0..K-1, and reports test and
validation accuracy, parameter count, wall time, time spent in growth steps and the final
channel counts. Settings:

* ``blocks`` (3) convolution blocks, each a ``FullConv2dGrowingModule`` with a 3 × 3 kernel,
  padding 1 (the map keeps its H × W size, no pooling between blocks), bias and ReLU, each
  starting with 1 output channel; then the output layer, a ``FullConv2dGrowingModule`` with a
  1 × 1 kernel giving K channels, followed by global average pooling. A 1 × 1 convolution
  followed by the average over positions computes exactly global average pooling followed by a
  linear layer of K logits (same weights, same bias, C·K + K parameters). The output layer is
  written as a convolution because gromo 0.1.0 cannot grow the channels feeding a linear layer:
  ``LinearGrowingModule`` accepts only a linear (or linear merge) previous module, which is
  also why gromo's own VGG container never grows its first classifier layer. The network is a
  small ``SequentialGrowingModel`` (gromo's container base class) holding these modules;
* what grows: the output channels of every block. Block i's channels grow through block i + 1
  (its ``previous_module``), and the last block's channels grow through the output layer. The
  input channels of the first block and the K output channels stay fixed. Block to block growth
  uses gromo's "full" scheme: new channels get full 3 × 3 outgoing kernels. Growth into the
  output layer is computed on its per-position pre-activity, before the pooling (gromo's Conv2d
  statistics), not on pooled features as a linear layer after the pooling would see it;
* cross-entropy; Adam (lr 1e-3, re-created after each growth since the layers get new
  tensors), batch 64; a growth step every ``epochs_between`` (2) epochs, ``growth_steps`` (20)
  times, then ``final_epochs`` (20) more epochs;
* each growth step grows one layer, chosen by gromo's scheduling: ``"sequential"`` (default,
  ``set_growing_layers``) takes the growable layers in turn, so block 0's channels grow, then
  block 1's, …, then the last block's, then again; ``"all"`` computes every growable layer's
  update and keeps the one with the largest first-order loss decrease
  (``select_best_update``), which costs one statistics pass per growable layer and, on
  digits, put most new channels into the first block;
* for the layer grown: gromo's statistics (``compute_statistics``, sum-reduced cross-entropy)
  over a fixed set of at most 2048 training rows, taken in batches of 256 rows (the "full"
  scheme's tensors hold positions × kernel positions × previous inputs per row);
  ``compute_optimal_updates`` with the TINY options (``use_covariance``, ``use_projection``,
  singular values kept, the best update dW* of the existing weights computed and applied:
  gromo's default ``compute_delta=True``, as in the MLP peer; ``compute_delta=False`` selects
  its docstring's TINY list) and gromo's channel selection: singular values >= 1e-3 (absolute
  ``statistical_threshold``), at most ``max_new_channels`` (8), the first always kept; the
  amplitude gamma (dW* scaled by gamma**2, new channels' in and out kernels by gamma each)
  from ``gromo.utils.utils.line_search`` on the extended model's mean loss over the first 512
  of those rows (the line search runs at least 201 extended forward passes per step, the
  largest cost of a run); then ``apply_change``;
* before each statistics pass the declared shapes of each layer's S and M statistics are set
  again from its current channel counts. gromo 0.1.0's ``Conv2dGrowingModule`` resets them with
  linear-layer sizes when it grows (``layer_in_extension`` declares S as (C_in + 1)·k·k
  square, ``layer_out_extension`` declares M as (C_in + 1, C_out)), which would fail the next
  statistics pass; only the declared shapes are changed, gromo computes the values.

Validation data is not used for any decision (no early stopping); its accuracy is reported.
Runs on CPU with the caller's torch thread count (the script below uses one thread);
``torch.manual_seed(seed)`` fixes the run.

    .venv/bin/python benchmarks/gromo_conv_peer.py

runs sklearn's 8 × 8 digits (pixels / 16, standardised with the training rows' mean and standard
deviation, a seeded 60/20/20 split) with seed 0 and prints the result as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from gromo_peer import PeerData, accuracy, grow_and_train, update_and_apply  # noqa: E402

STATISTICS_BATCH = 256
LINE_SEARCH_ROWS = 512


def gromo_conv_available() -> bool:
    """True when the parts of ``gromo`` used here import."""
    try:
        import gromo.containers.sequential_growing_container  # noqa: F401
        import gromo.modules.conv2d_growing_module  # noqa: F401
        import gromo.utils.tensor_statistic  # noqa: F401
        import gromo.utils.training_utils  # noqa: F401
        import gromo.utils.utils  # noqa: F401
    except ImportError:
        return False
    return True


def _build_network(in_channels: int, n_classes: int, blocks: int, size: tuple[int, int]):
    """The growing network: ``blocks`` 3 × 3 blocks of 1 channel, a 1 × 1 output layer of
    ``n_classes`` channels and global average pooling, in gromo's sequential container."""
    from gromo.containers.sequential_growing_container import SequentialGrowingModel
    from gromo.modules.conv2d_growing_module import FullConv2dGrowingModule

    class GrowingConvNet(SequentialGrowingModel):
        def __init__(self) -> None:
            super().__init__(in_channels, n_classes, device=torch.device("cpu"))
            self.blocks = nn.ModuleList()
            previous = None
            channels = in_channels
            for index in range(blocks):
                block = FullConv2dGrowingModule(
                    in_channels=channels,
                    out_channels=1,
                    kernel_size=3,
                    padding=1,
                    input_size=size,
                    post_layer_function=nn.ReLU(),
                    previous_module=previous,
                    allow_growing=previous is not None,
                    name=f"block {index}",
                    device=self.device,
                )
                self.blocks.append(block)
                previous, channels = block, 1
            self.output = FullConv2dGrowingModule(
                in_channels=channels,
                out_channels=n_classes,
                kernel_size=1,
                input_size=size,
                post_layer_function=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)),
                previous_module=previous,
                allow_growing=True,
                name="output",
                device=self.device,
            )
            # Each layer grows its input channels, that is the previous block's output.
            self._growable_layers = [*self.blocks[1:], self.output]
            self.set_growing_layers(scheduling_method="all")

        def layers(self) -> list:
            return [*self.blocks, self.output]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers():
                x = layer(x)
            return x

        def extended_forward(self, x: torch.Tensor, mask: dict | None = None) -> torch.Tensor:
            x_ext = None
            for layer in self.layers():
                x, x_ext = layer.extended_forward(x, x_ext)
            return x

    return GrowingConvNet()


def _declare_statistic_shapes(layer) -> None:
    """Set the declared shapes of the layer's S and M statistics from its channel counts."""
    from gromo.utils.tensor_statistic import TensorStatistic

    rows = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1] + layer.use_bias
    if layer.tensor_s._shape != (rows, rows):
        layer._tensor_s = TensorStatistic(
            (rows, rows),
            update_function=layer.compute_s_update,
            device=layer.device,
            name=layer.tensor_s.name,
        )
    if layer.tensor_m._shape != (rows, layer.out_channels):
        layer.tensor_m = TensorStatistic(
            (rows, layer.out_channels),
            update_function=layer.compute_m_update,
            device=layer.device,
            name=layer.tensor_m.name,
        )


def _grow(model, x_stat, y_stat, max_new_channels: int, compute_delta: bool, scheduling: str):
    """One TINY growth step of one layer, driven through gromo's own API."""
    from gromo.utils.training_utils import compute_statistics

    model.set_growing_layers(scheduling_method=scheduling)  # "sequential": the next layer
    for layer in model.layers():
        _declare_statistic_shapes(layer)
    batches = [
        (x_stat[start : start + STATISTICS_BATCH], y_stat[start : start + STATISTICS_BATCH])
        for start in range(0, x_stat.shape[0], STATISTICS_BATCH)
    ]
    # One fixed pass: accumulates S, M and the growth statistics of the scheduled layers.
    compute_statistics(model, batches, loss_function=nn.CrossEntropyLoss(reduction="sum"))
    update_and_apply(
        model, x_stat[:LINE_SEARCH_ROWS], y_stat[:LINE_SEARCH_ROWS], max_new_channels, compute_delta
    )


def run_gromo_conv(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    blocks: int = 3,
    growth_steps: int = 20,
    epochs_between: int = 2,
    final_epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_new_channels: int = 8,
    compute_delta: bool = True,
    scheduling: str = "sequential",
) -> dict:
    """Grow and train a gromo convolutional network from 1 channel per block with TINY;
    return accuracy, size, timings and the final channels of each block."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    data = PeerData.of(x_train, y_train, x_val, y_val, x_test, y_test)
    xt, xv, xs, yv, ys = data.x_train, data.x_val, data.x_test, data.y_val, data.y_test
    model = _build_network(xt.shape[1], data.n_classes, blocks, (xt.shape[2], xt.shape[3]))
    growth_seconds = grow_and_train(
        model,
        data,
        lambda: _grow(model, data.x_stat, data.y_stat, max_new_channels, compute_delta, scheduling),
        growth_steps,
        epochs_between,
        final_epochs,
        batch_size,
        lr,
    )

    return {
        "test_accuracy": accuracy(model, xs, ys),
        "validation_accuracy": accuracy(model, xv, yv),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - started,
        "growth_seconds": growth_seconds,
        "channels": [int(block.out_channels) for block in model.blocks],
    }


def _digits(seed: int) -> tuple[np.ndarray, ...]:
    """sklearn's digits as (N, 1, 8, 8) float32: pixels / 16, a seeded 60/20/20 split, then
    standardised with one mean and standard deviation per channel from the training rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_train, n_val = int(0.6 * len(y)), int(0.2 * len(y))
    parts = np.split(order, [n_train, n_train + n_val])
    mean = x[parts[0]].mean(axis=(0, 2, 3), keepdims=True)
    std = x[parts[0]].std(axis=(0, 2, 3), keepdims=True)
    x = ((x - mean) / std).astype(np.float32)
    return tuple(array for rows in parts for array in (x[rows], y[rows]))


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(run_gromo_conv(*_digits(0), seed=0), indent=2))
