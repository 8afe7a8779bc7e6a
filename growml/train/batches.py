"""An epoch's minibatches: the training rows in the epoch's order, gathered a span at a time.

Gathering rows one batch at a time costs a copy per batch, and gathering the whole epoch at
once doubles the data in memory (and, for a table larger than memory, reads all of it into
memory). A span of batches — about ``SPAN_BYTES`` of rows — is gathered with one copy into
buffers kept for the whole training, and each batch is a view of it: no allocation, no page
touched for the first time, and the same rows in the same order as one gather per batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

# Bytes of rows (inputs and targets) gathered at once.
SPAN_BYTES = 1 << 22


class Batches:
    """Iterates over ``(x, target)`` batches of ``batch_size`` rows in a given order.

    Args:
        x: the training inputs (rows first), on the training device or in host memory (a
            memory-mapped table larger than memory).
        batch_size: rows per batch; the last batch of an epoch may hold fewer.
        device: where the batches are used; rows held elsewhere go over a span at a time.
    """

    def __init__(self, x: Tensor, batch_size: int, device: torch.device | None = None) -> None:
        self.x = x
        self.batch_size = batch_size
        self.device = x.device if device is None else device
        self._buffers: dict[tuple[str, torch.Size, torch.dtype], Tensor] = {}

    def __call__(self, order: Tensor, target: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of the rows ``order`` names, in that order, and their ``target`` rows.

        A batch is a view into buffers that the next span overwrites: use it before asking
        for the next one."""
        x, batch_size = self.x, self.batch_size
        row_bytes = _row_bytes(x) + _row_bytes(target)
        span = batch_size * max(1, SPAN_BYTES // (batch_size * row_bytes))
        for first in range(0, len(order), span):
            rows = order[first : first + span]
            x_span = self._gather("x", x, rows, span).to(self.device)
            target_span = self._gather("target", target, rows, span).to(self.device)
            for start in range(0, len(rows), batch_size):
                yield x_span[start : start + batch_size], target_span[start : start + batch_size]

    def _gather(self, role: str, values: Tensor, rows: Tensor, span: int) -> Tensor:
        """``values``' ``rows``, copied into the buffer of ``role`` (inputs and targets of one
        shape have a buffer each) and this shape."""
        key = (role, values.shape[1:], values.dtype)
        buffer = self._buffers.get(key)
        if buffer is None or len(buffer) < len(rows):
            size = min(span, len(values))
            buffer = values.new_empty((size, *values.shape[1:]))
            self._buffers[key] = buffer
        rows = rows.to(values.device)
        return torch.index_select(values, 0, rows, out=buffer[: len(rows)])


def _row_bytes(values: Tensor) -> int:
    return max(1, values[0].numel() * values.element_size()) if len(values) else 1
