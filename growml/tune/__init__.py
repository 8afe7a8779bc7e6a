"""Optuna tunes what growth leaves to tune: search space, objective, storage, trial pruning.

``tune`` runs a study of growml fits (the validation metric, optionally against the parameter
count), stops hopeless trials from the trainer's per-epoch events, and keeps its study in
SQLite beside the results or in any database Optuna supports, where workers on many machines
join it.
"""

from growml.tune.objective import Objective, TrialPruning
from growml.tune.search import TuneProgress, Tuning, tune
from growml.tune.settings import TuneConfig, resolve_tune_config
from growml.tune.space import SearchSpace, build_space, default_space

__all__ = [
    "Objective",
    "SearchSpace",
    "TrialPruning",
    "TuneConfig",
    "TuneProgress",
    "Tuning",
    "build_space",
    "default_space",
    "resolve_tune_config",
    "tune",
]
