"""Training: the loop and its hooks, early stopping, the optimizers, metrics."""

from growml.train.hooks import Hook
from growml.train.metrics import evaluate, probabilities
from growml.train.optimizer import make_optimizer
from growml.train.stopping import EarlyStopping
from growml.train.trainer import Trainer, TrainResult, choose_threads, torch_threads

__all__ = [
    "EarlyStopping",
    "Hook",
    "TrainResult",
    "Trainer",
    "choose_threads",
    "evaluate",
    "make_optimizer",
    "probabilities",
    "torch_threads",
]
