"""One trial: sampled settings → a growml fit → its validation metric (and size).

The objective reads the validation split only; the test split is never looked at while
searching. Every epoch's validation metric goes to the trial through an observer of the
trainer's events, so that the pruner can stop a hopeless trial; the fit's run directory is
removed with it, and only completed trials keep one (``trials/trial-NNNN``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from growml.config import FitConfig, resolve_config
from growml.data import Table
from growml.errors import GrowmlError
from growml.events import EpochEnd, Event, GrowthStep
from growml.tune.space import SearchSpace

TRIALS = "trials"
# Multi-objective: the validation metric (maximised) and the parameter count (minimised).
PARAMS = "params"


def trial_run_name(number: int) -> str:
    return f"trial-{number:04d}"


# Epochs after a growth step added neurons before the pruner may judge the trial: a network
# that just grew trails until its new neurons have trained (measured with
# benchmarks/tune_pruning.py: judged earlier, the median rule stopped trials that would have
# ended best).
SETTLE_EPOCHS = 10


class TrialPruning:
    """An observer reporting each epoch's validation metric to ``trial``; raises
    ``optuna.TrialPruned`` when the pruner says the trial is hopeless.

    Epochs are counted across the trainers of one fit (growth, then fine-tuning after
    pruning), so the steps Optuna sees always increase. A metric the trainer does not compute
    every epoch (F1, macro-F1 unless monitored) is stood in for by the accuracy. The pruner
    judges only ``settle`` epochs or more after the last growth step that added neurons: every
    epoch is reported, but a network still absorbing its new neurons is not compared yet.
    """

    def __init__(self, trial: optuna.Trial, metric: str, settle: int = SETTLE_EPOCHS) -> None:
        self.trial = trial
        self.metric = metric
        self.settle = settle
        self.step = 0
        self.grown_at = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, GrowthStep) and event.added:
            self.grown_at = self.step
        if not isinstance(event, EpochEnd):
            return
        self.step += 1
        value = event.validation.get(self.metric, event.validation.get("accuracy"))
        self.trial.report(value, self.step)
        if self.step - self.grown_at >= self.settle and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {self.step}")


@dataclass
class Objective:
    """Fits ``base`` with a trial's settings over it.

    Args:
        base: the settings every trial starts from.
        space: what the trial samples and fixes.
        table: the data, loaded once.
        metric: the validation metric to maximise.
        objectives: ``["metric"]`` or ``["metric", "params"]``.
        max_params: a trial with more parameters is infeasible (``trial.set_constraint``).
        runs: the folder of the completed trials' run directories (``trials`` of the tune
            directory).
    """

    base: FitConfig
    space: SearchSpace
    table: Table
    metric: str
    objectives: list[str]
    max_params: int | None
    runs: Path

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        from growml.fitting import fit

        multi = PARAMS in self.objectives
        try:
            config = resolve_config(
                self.base.model_dump(mode="json"), self.space.suggest(trial, self.base)
            )
            # Optuna prunes single-objective trials only.
            observers = [] if multi else [TrialPruning(trial, self.metric)]
            out = self.runs / trial_run_name(trial.number)
            result = fit(
                config,
                out=out,
                overwrite=True,
                observers=observers,
                table=self.table,
                checkpoints=False,  # a trial is resumed whole
            )
        except GrowmlError as error:
            trial.set_user_attr("error", str(error))
            raise
        metrics = result.run.metrics_record
        value = float(metrics.validation[self.metric])
        record: dict[str, Any] = {
            # Relative to the tune directory, which may be reached from any directory.
            "run": result.path.relative_to(self.runs.parent).as_posix(),
            "host": socket.gethostname(),
            "parameters": metrics.parameters,
            "hidden_widths": metrics.hidden_widths,
            "epochs": metrics.epochs,
            "seconds": metrics.seconds.wall,
        }
        for key, item in record.items():
            trial.set_user_attr(key, item)
        if self.max_params is not None:
            trial.set_constraint("max_params", metrics.parameters - self.max_params)
        if multi:
            return value, float(metrics.parameters)
        return value
