"""Optuna tunes what growth leaves to tune: search space, objective, storage, trial pruning.

``tune`` runs a study of growml fits (the validation metric, optionally against the parameter
count), stops hopeless trials from the trainer's per-epoch events, and keeps its study in
SQLite beside the results or in any database Optuna supports, where workers on many machines
join it.
"""

from typing import TYPE_CHECKING

from growml.lazy import lazy_names
from growml.tune.settings import TuneConfig, resolve_tune_config

if TYPE_CHECKING:
    from growml.tune.objective import Objective, TrialPruning
    from growml.tune.search import TuneProgress, Tuning, tune
    from growml.tune.space import SearchSpace, build_space, default_space

# Imported on first use: the settings alone (``growml settings tune``) need neither torch nor
# Optuna.
_LAZY = {
    "Objective": "growml.tune.objective",
    "TrialPruning": "growml.tune.objective",
    "TuneProgress": "growml.tune.search",
    "Tuning": "growml.tune.search",
    "tune": "growml.tune.search",
    "SearchSpace": "growml.tune.space",
    "build_space": "growml.tune.space",
    "default_space": "growml.tune.space",
}

__getattr__ = lazy_names(__name__, _LAZY)


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
