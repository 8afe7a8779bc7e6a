"""Training: the loop, optimizer state across shape changes, metrics, events."""

from growml.train.events import EpochEnd, Event, GrowthStep, Observer, TrainEnd, TrainStart
from growml.train.metrics import evaluate, probabilities
from growml.train.optimizer import add_neurons, carry_state, make_optimizer, remove_neurons
from growml.train.trainer import Trainer, TrainResult, choose_threads, torch_threads

__all__ = [
    "EpochEnd",
    "Event",
    "GrowthStep",
    "Observer",
    "TrainEnd",
    "TrainResult",
    "TrainStart",
    "Trainer",
    "add_neurons",
    "carry_state",
    "choose_threads",
    "evaluate",
    "make_optimizer",
    "probabilities",
    "remove_neurons",
    "torch_threads",
]
