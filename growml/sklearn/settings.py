"""The estimators' constructor parameters as growml settings, and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from growml.config import FitConfig, resolve_config
from growml.errors import ConfigError

# Constructor parameters and the growml setting each one is; ``start`` and ``random_state``
# are converted on the way (an int width is a one-layer list; a random state becomes a seed).
SETTINGS = {
    "start": "model.hidden_widths",
    "grow": "growth.enabled",
    "method": "growth.method",
    "max_params": "growth.max_params",
    "activation": "model.activation",
    "epochs": "train.epochs",
    "lr": "train.lr",
    "batch_size": "train.batch_size",
    "device": "train.device",
    "weight_decay": "train.weight_decay",
    "early_stopping": "train.early_stopping",
    "patience": "train.patience",
    "loss": "loss.name",
    "prune": "prune.method",
    "compression": "prune.compression",
    "validation_fraction": "data.validation_size",
    "random_state": "seed",
}
# Settings the estimator decides itself: its data comes from ``fit``, all of it for training.
OWNED = ("data.source", "data.target", "data.task", "data.test_size")
_PARAMETER_OF = {dotted: name for name, dotted in SETTINGS.items()}


def fit_config(parameters: Mapping[str, Any], task: str) -> FitConfig:
    """The settings of an estimator of ``task`` with constructor ``parameters``; a seed is
    drawn now when ``random_state`` is not an int."""
    extra = dict(parameters["set"] or {})
    for path in extra:
        if path in OWNED:
            raise ConfigError(
                f"setting {path!r} is decided by the estimator (its data comes from fit); "
                "leave it out of set."
            )
        if path in _PARAMETER_OF:
            raise ConfigError(
                f"setting {path!r} is the estimator's {_PARAMETER_OF[path]!r} parameter; set it "
                "there instead of in set."
            )
    values = {name: parameters[name] for name in SETTINGS}
    start = parameters["start"]
    values["start"] = [start] if np.ndim(start) == 0 else list(start)
    values["random_state"] = _seed(parameters["random_state"])
    overrides = [(SETTINGS[name], value) for name, value in values.items()]
    # Folds of cross-validation can leave a class too few rows to stratify the validation
    # split; those are split at random rather than refused (set data.stratify to refuse).
    overrides += [
        ("data.task", task),
        ("data.test_size", 0.0),
        ("data.stratify", "when-possible"),
        *extra.items(),
    ]
    return resolve_config(overrides=overrides)


def parameters_of(config: Mapping[str, Any], default: FitConfig) -> dict[str, Any]:
    """Constructor parameters of a run's saved settings ``config``: the named ones, and in
    ``set`` every other setting that differs from the estimator's ``default`` settings."""
    defaults = default.model_dump(mode="json")
    values, extra = {}, {}
    for path in _paths(config):
        if path in OWNED:
            continue
        value = _dotted(config, path)
        if path in _PARAMETER_OF:
            values[_PARAMETER_OF[path]] = value
        elif value != _dotted(defaults, path):
            extra[path] = value
    start = values.get("start", [1])
    values["start"] = start[0] if len(start) == 1 else tuple(start)
    return {**values, "set": extra or None}


def _seed(random_state: int | np.random.RandomState | None) -> int:
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31))


def _paths(settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in settings.items():
        if isinstance(value, Mapping):
            paths.extend(_paths(value, f"{prefix}{key}."))
        else:
            paths.append(f"{prefix}{key}")
    return paths


def _dotted(settings: Mapping[str, Any], path: str) -> Any:
    node: Any = settings
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node
