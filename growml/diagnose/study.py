"""What every experiment of ``growml.diagnose.experiments`` shares: the data's rows, the sizes
from ``diagnostics.*``, seeded generators, full-batch training, and the progress count."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from growml.config import FitConfig, TrainConfig
from growml.losses import Loss
from growml.nn.mlp import GrowingMLP

# Adam's step for every experiment. On 400 rows of 20 Gaussian inputs with Gaussian targets
# (bound 39) 1000 full-batch epochs at 0.01 fit the bound's width to a training MSE of 1e-4
# and leave a quarter of it at 0.13 (means over two seeds); 0.02–0.05 do the same.
LEARNING_RATE = 0.01

Progress = Callable[[int, int], None]


class Study:
    """One experiment's data, settings, seeded generators and progress count."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        task: str,
        n_outputs: int,
        config: FitConfig,
        progress: Progress | None = None,
    ) -> None:
        self.x, self.y, self.task, self.n_outputs = x, y, task, n_outputs
        self.config = config
        self.diagnostics = config.diagnostics
        self.rows = min(self.diagnostics.rows, len(x))
        self.inputs = x.shape[1]
        self.probe = min(self.diagnostics.probe, self.rows)
        self.seeds = range(self.diagnostics.seeds)
        self._progress = progress or _ignore
        self._done = self._total = 0

    def start(self, networks: int) -> None:
        self._total = networks
        self._progress(0, networks)

    def step(self) -> None:
        self._done += 1
        self._progress(self._done, self._total)

    def generator(self, seed: int, stream: str) -> torch.Generator:
        """A CPU generator for ``stream`` (rows, targets, weights...) of seed index ``seed``."""
        key = [self.config.seed, seed, *stream.encode()]
        state = int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0])
        return torch.Generator(device="cpu").manual_seed(state)

    def subset(self, seed: int) -> tuple[np.ndarray, np.ndarray, Tensor]:
        """Seed ``seed``'s n rows and targets, and the probe batch (the first of them)."""
        order = torch.randperm(len(self.x), generator=self.generator(seed, "rows"))
        chosen = order[: self.rows].numpy()
        x = np.ascontiguousarray(self.x[chosen])
        return x, self.y[chosen], torch.as_tensor(x[: self.probe])

    def network(self, seed: int, widths: Sequence[int], outputs: int, **options: Any) -> GrowingMLP:
        return GrowingMLP(
            self.inputs, list(widths), outputs, generator=self.generator(seed, "weights"), **options
        )

    def train(
        self, model: GrowingMLP, x: np.ndarray, y: np.ndarray, loss: Loss, task: str
    ) -> float:
        """Train ``model`` full batch for ``diagnostics.epochs``; its final training loss."""
        from growml.train import Trainer

        settings = TrainConfig(
            epochs=self.diagnostics.epochs,
            batch_size=len(x),
            lr=LEARNING_RATE,
            early_stopping=False,
            device="cpu",
        )
        Trainer(settings, loss, task).run(model, x, y, x, y)
        with torch.no_grad():
            return float(loss(model(torch.as_tensor(x)), loss.prepare_target(y)))


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation over seeds (0 for one seed)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def common_settings(study: Study, activation: str) -> dict[str, Any]:
    return {
        "n": study.rows,
        "d": study.inputs,
        "seeds": len(study.seeds),
        "seed": study.config.seed,
        "epochs": study.diagnostics.epochs,
        "optimizer": f"adam, full batch, lr {LEARNING_RATE}",
        "activation": activation,
    }


def falling(values: Sequence[float]) -> bool:
    return all(later < earlier for earlier, later in zip(values, values[1:], strict=False))


def _ignore(done: int, total: int) -> None:
    pass
