"""The search space: which settings a study searches, over which values, and which it fixes.

Growth chooses the widths, so the default space holds what it leaves open: the learning rate,
batch size, weight decay and final anneal, label smoothing (for cross-entropy), the initial
scale, the feature gate, the growth step's size, its stopping rule and the depth it may reach
(``pruning``'s compression as well when the settings prune). A network that does not grow gets
its width searched instead. A ``tune.space`` entry replaces the default for its setting:

* ``{low: 1.0e-4, high: 1.0e-1, log: true}`` (optionally ``step``): a range, of integers when
  the setting is an integer;
* ``[32, 64, 128]``: choices;
* anything else: a value fixed for every trial.

``model.hidden_widths`` takes one width for every hidden layer (a range or choices of integers),
``model.channels`` one for every convolution block.
The data and the seed stay fixed: every trial is judged on the same validation split.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import BaseTrial
from pydantic import BaseModel

from growml.config import (
    FitConfig,
    moved_setting,
    resolve_config,
    setting_paths,
    unknown_setting,
)
from growml.errors import ConfigError

WIDTHS = "model.hidden_widths"
CHANNELS = "model.channels"  # a convolutional network's blocks (model.arch=conv)
_RANGE_KEYS = {"low", "high", "log", "step"}


def default_space(config: FitConfig) -> dict[str, BaseDistribution]:
    """The settings that matter once growth takes the width off the search."""
    space: dict[str, BaseDistribution] = {
        "train.lr": FloatDistribution(1e-4, 3e-2, log=True),
        "train.batch_size": CategoricalDistribution([16, 32, 64, 128]),
        "train.weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "model.init_scale": FloatDistribution(0.5, 2.0, log=True),
        "train.anneal_epochs": IntDistribution(0, 30),
    }
    conv = config.model.arch == "conv"
    if not conv:  # the gate scales an MLP's input columns
        space["model.feature_gate"] = CategoricalDistribution([False, True])
    else:  # whether the dense layers know where a feature is
        space["model.head"] = CategoricalDistribution(["pool", "flatten"])
    if conv and config.train.optimizer == "adamw":  # around the convolutional default, 0.1
        space["train.weight_decay"] = FloatDistribution(1e-3, 0.3, log=True)
    if config.data.task != "regression" and config.loss.name in ("auto", "cross-entropy", "bce"):
        space["loss.label_smoothing"] = FloatDistribution(0.0, 0.2)
    if config.growth.enabled:
        space["growth.max_new_neurons"] = IntDistribution(2, 16, log=True)
        space["growth.max_failures"] = IntDistribution(2, 8)
        if config.model.activation == "relu":
            space["growth.max_depth"] = IntDistribution(1, 3)
        if config.growth.method == "pool":
            space["growth.pool.max_step"] = FloatDistribution(0.25, 2.0, log=True)
    else:
        space[WIDTHS] = IntDistribution(8, 256, log=True)
        if conv:
            space[CHANNELS] = IntDistribution(4, 64, log=True)
    if config.prune.method != "none" and config.prune.compression is not None:
        space["prune.compression"] = FloatDistribution(1.5, 20.0, log=True)
    return space


@dataclass(frozen=True)
class SearchSpace:
    """What every trial samples (``distributions``) and sets (``fixed``), by dotted path."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, Any] = field(default_factory=dict)

    def suggest(self, trial: BaseTrial, config: FitConfig) -> list[tuple[str, Any]]:
        """The settings of ``trial`` as overrides of ``config``: fixed values, then samples."""
        chosen = dict(self.fixed)
        for path, distribution in self.distributions.items():
            chosen[path] = _suggest(trial, path, distribution)
        return [(path, _setting(path, value, config)) for path, value in chosen.items()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "search": {
                path: _json_distribution(distribution)
                for path, distribution in self.distributions.items()
            },
            "fixed": self.fixed,
        }


def build_space(config: FitConfig, entries: Mapping[str, Any], defaults: bool) -> SearchSpace:
    """The default space for ``config`` (when ``defaults``) with ``entries`` over it, checked.

    Raises ConfigError for an unknown or unsearchable setting, a malformed or empty range, and
    any value the setting does not accept.
    """
    distributions = dict(default_space(config)) if defaults else {}
    fixed: dict[str, Any] = {}
    for path, entry in _flatten(entries).items():
        distribution = _distribution(path, entry)
        if distribution is None:
            _check_value(config, path, entry)
            distributions.pop(path, None)
            fixed[path] = entry
        else:
            distributions[path] = distribution
    if not distributions:
        raise ConfigError(
            "tune.space leaves nothing to search; give a range or choices for a setting."
        )
    space = SearchSpace(distributions, fixed)
    _check_bounds(space, config)
    return space


def _flatten(entries: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{train: {lr: ...}}`` and ``{train.lr: ...}`` both give ``{"train.lr": ...}``."""
    known = setting_paths()
    flat: dict[str, Any] = {}
    for key, value in entries.items():
        path = f"{prefix}{key}"
        moved = moved_setting(path)
        if path in known:
            flat[path] = value
        elif isinstance(value, Mapping) and any(p.startswith(f"{path}.") for p in known):
            flat.update(_flatten(value, f"{path}."))
        elif moved is not None:
            raise ConfigError(
                f"tune.space cannot search {path!r}: the setting has moved to "
                f"{' and '.join(repr(p) for p in moved)}; search that instead."
            )
        else:
            raise unknown_setting(path)
        if path == "seed" or path.startswith("data."):
            raise ConfigError(
                f"tune.space cannot search {path!r}: every trial is judged on the same data "
                "and split; set it outside tune.space."
            )
    return flat


def _distribution(path: str, entry: Any) -> BaseDistribution | None:
    """The distribution an entry describes, or None for a fixed value."""
    if isinstance(entry, Mapping):
        return _range(path, entry)
    if isinstance(entry, list):
        return _choices(path, entry)
    return None


def _range(path: str, entry: Mapping[str, Any]) -> BaseDistribution:
    unknown = set(entry) - _RANGE_KEYS
    if unknown or not {"low", "high"} <= set(entry):
        raise ConfigError(
            f"tune.space {path}: a range is {{low: ..., high: ...}} with optional log and step "
            f"(got {dict(entry)!r})."
        )
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    integer = _is_integer_setting(path)
    numbers = (low, high) if step is None else (low, high, step)
    if any(isinstance(n, bool) or not isinstance(n, int | float) for n in numbers):
        raise ConfigError(f"tune.space {path}: low, high and step must be numbers.")
    if integer is None:
        raise ConfigError(
            f"tune.space {path}: the setting is not a number; give a list of choices instead."
        )
    if integer and any(not float(n).is_integer() for n in numbers):
        raise ConfigError(f"tune.space {path}: the setting is an integer; give integer bounds.")
    if not low < high or not all(math.isfinite(n) for n in numbers):
        raise ConfigError(
            f"tune.space {path}: the range {low!r} to {high!r} is empty; low must be below high."
        )
    if not isinstance(log, bool):
        raise ConfigError(f"tune.space {path}: log must be true or false.")
    if log and low <= 0:
        raise ConfigError(f"tune.space {path}: a log range needs low above 0 (got {low!r}).")
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"tune.space {path}: step must be above 0, and not with log.")
    if integer:
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=step)


def _choices(path: str, entry: list[Any]) -> CategoricalDistribution:
    if not entry:
        raise ConfigError(f"tune.space {path}: the list of choices is empty.")
    if any(item is not None and not isinstance(item, bool | int | float | str) for item in entry):
        raise ConfigError(
            f"tune.space {path}: choices must be numbers, text, true/false or null (got {entry!r})."
        )
    if len(set(map(repr, entry))) < len(entry):
        raise ConfigError(f"tune.space {path}: a choice is listed twice in {entry!r}.")
    return CategoricalDistribution(entry)


def _is_integer_setting(path: str) -> bool | None:
    """True for an integer setting, False for a float one, None for anything else."""
    if path == WIDTHS:
        return True
    model: type[BaseModel] = FitConfig
    *sections, name = path.split(".")
    for section in sections:
        model = model.model_fields[section].annotation  # type: ignore[assignment]
    annotation = model.model_fields[name].annotation
    kinds = set(typing.get_args(annotation) or [annotation]) - {type(None)}
    if kinds == {int}:
        return True
    if kinds <= {int, float} and float in kinds:
        return False
    return None


def _suggest(trial: BaseTrial, path: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            path, distribution.low, distribution.high, log=distribution.log, step=distribution.step
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            path, distribution.low, distribution.high, log=distribution.log, step=distribution.step
        )
    assert isinstance(distribution, CategoricalDistribution)
    return trial.suggest_categorical(path, distribution.choices)


def _setting(path: str, value: Any, config: FitConfig) -> Any:
    """A sampled value as the setting takes it: one width becomes a width for every layer."""
    if path == WIDTHS and isinstance(value, int):
        return [value] * len(config.model.hidden_widths)
    if path == CHANNELS and isinstance(value, int):
        return [value] * len(config.model.channels)
    return value


def _check_value(config: FitConfig, path: str, value: Any) -> None:
    try:
        resolve_config(config.model_dump(mode="json"), [(path, _setting(path, value, config))])
    except ConfigError as error:
        raise ConfigError(f"in tune.space, {error}") from None


def _check_bounds(space: SearchSpace, config: FitConfig) -> None:
    """Every end of every range and every choice must be a value its setting accepts."""
    for path, distribution in space.distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            values = list(distribution.choices)
        else:
            values = [distribution.low, distribution.high]
        for value in values:
            _check_value(config, path, value)


def _json_distribution(distribution: BaseDistribution) -> dict[str, Any]:
    import json

    return json.loads(distribution_to_json(distribution))
