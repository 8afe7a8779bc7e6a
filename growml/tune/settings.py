"""The ``tune`` section of a recipe: what to search and how, beside the fit settings.

A recipe for ``growml tune`` is a fit recipe with one more section::

    tune:
      space:
        train.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
        train.batch_size: [32, 64, 128]
        model.activation: tanh          # fixed for every trial
      max_params: 5000
      pruner: hyperband

``--set tune.max_params=5000`` works as for any setting. The section never reaches the fit
settings: every trial is a plain ``FitConfig``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from growml.config import FitConfig, Section, resolve_config, unknown_setting, validate_section

SECTION = "tune"
# Heartbeats: a killed worker's trial is retried GRACE_PERIOD seconds after its last one. Measured
# with benchmarks/tune_heartbeat.py (README, Tune): a heartbeat costs a SQLite study 1.4 to 3 ms
# (under 0.1 % of a trial's time every 5 s), and under load one came 0.6 s late; 20 s leaves a
# live trial 15 s of lateness before it would be taken for killed.
HEARTBEAT_INTERVAL = 5
GRACE_PERIOD = 20


class TuneConfig(Section):
    """How a study searches: the space, a parameter budget, trial pruning, the sampler's seed."""

    space: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted setting → {low, high, log, step} range, a list of choices, or a "
        "fixed value; merged over the default space.",
    )
    default_space: bool = Field(
        True, description="Search the default space as well as `space` (false: `space` only)."
    )
    max_params: int | None = Field(
        None, ge=1, description="Trials with more parameters are infeasible (a constraint)."
    )
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="Stops hopeless trials from their validation metric per epoch."
    )
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Seed of the sampler (none: the `seed` setting)."
    )
    heartbeat_interval: int = Field(
        HEARTBEAT_INTERVAL,
        ge=1,
        description="Seconds between a running trial's heartbeats in the storage.",
    )
    grace_period: int = Field(
        GRACE_PERIOD,
        ge=1,
        description="Seconds without a heartbeat after which a running trial counts as killed: "
        "it is marked failed and retried once.",
    )

    @model_validator(mode="after")
    def _grace_outlasts_heartbeats(self) -> TuneConfig:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"tune.grace_period ({self.grace_period} s) must be longer than "
                f"tune.heartbeat_interval ({self.heartbeat_interval} s)"
            )
        return self


def resolve_tune_config(
    recipe: Mapping[str, Any] | None = None, overrides: Iterable[tuple[str, Any]] = ()
) -> tuple[FitConfig, TuneConfig]:
    """Defaults < recipe < overrides, split into the fit settings and the ``tune`` section.

    Raises ConfigError with one sentence for an unknown path or an invalid value.
    """
    recipe = dict(recipe or {})
    section = recipe.pop(SECTION, None) or {}
    if not isinstance(section, Mapping):
        raise unknown_setting(SECTION, _paths())
    tune = dict(section)
    fit_overrides = []
    for path, value in overrides:
        if path.startswith(f"{SECTION}."):
            name = path.removeprefix(f"{SECTION}.")
            if name not in TuneConfig.model_fields:
                raise unknown_setting(path, _paths())
            tune[name] = value
        else:
            fit_overrides.append((path, value))
    for name in tune:
        if name not in TuneConfig.model_fields:
            raise unknown_setting(f"{SECTION}.{name}", _paths())
    config = resolve_config(recipe, fit_overrides)
    return config, validate_section(TuneConfig, tune, prefix=f"{SECTION}.")


def _paths() -> list[str]:
    return [f"{SECTION}.{name}" for name in TuneConfig.model_fields]
