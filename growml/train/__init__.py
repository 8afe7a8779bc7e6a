"""Training: the loop, the optimizers, metrics."""

from growml.train.metrics import evaluate, probabilities
from growml.train.optimizer import make_optimizer
from growml.train.trainer import Trainer, TrainResult, choose_threads, torch_threads

__all__ = [
    "TrainResult",
    "Trainer",
    "choose_threads",
    "evaluate",
    "make_optimizer",
    "probabilities",
    "torch_threads",
]
