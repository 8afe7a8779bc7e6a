"""What a study found: the trial counts, the best trials, and Optuna's plots of it."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from growml.errors import RunError
from growml.runs.workdir import read_manifest
from growml.tune.objective import PARAMS, TRIALS, trial_run_name
from growml.tune.storage import quiet_optuna

TUNE = "tune.json"
BEST_SHOWN = 5
PLOTS = "plots"
# What growml report shows of a study: tune.json's keys that tune_table and tune_summary read.
_SHOWN = ("data", "metric", "directions", "study", "storage", "trials", "best", "this_run")


def read_results(path: Path) -> dict[str, Any]:
    """What the study of the tune directory ``path`` found, as its last ``growml tune`` wrote
    it in ``tune.json`` (``status: running``: what was finished while trials still ran); a
    study without results yet, or a damaged file, is refused in a sentence that says what to
    do."""
    document = read_manifest(path / TUNE, "tune into another --out")
    status = document.get("status")
    if status != "complete" and (status != "running" or "trials" not in document):
        raise RunError(
            f"the study in {str(path)!r} has no results yet (its growml tune is still running "
            f"or was interrupted); run growml tune with --out {str(path)!r} to add trials."
        )
    missing = [key for key in _SHOWN if key not in document]
    if missing:
        raise RunError(
            f"{str(path / TUNE)!r} is damaged (it has no {missing[0]!r}); run growml tune "
            f"with --out {str(path)!r} to write it again."
        )
    return {
        **document,
        "best": [
            {**trial, "run": _in_tune_directory(trial.get("run"))} for trial in document["best"]
        ],
        "best_run": _in_tune_directory(document.get("best_run")),
    }


def _in_tune_directory(run: str | None) -> str | None:
    """A run as tune.json names it now, relative to the tune directory: tune.json written by
    an earlier growml named it relative to the directory its growml tune ran in."""
    return f"{TRIALS}/{Path(run).name}" if run else None


def count_trials(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by state: total, complete, pruned, fail, running, waiting."""
    states = Counter(trial.state.name.lower() for trial in trials)
    return {
        "total": len(trials),
        **{state.name.lower(): states.get(state.name.lower(), 0) for state in TrialState},
    }


def feasible(trial: FrozenTrial) -> bool:
    """No constraint above zero (a trial without constraints is feasible)."""
    return all(value <= 0 for value in trial.constraints.values())


def best_trials(study: optuna.Study, objectives: list[str]) -> list[FrozenTrial]:
    """One objective: the best feasible completed trials, best first (at most BEST_SHOWN).
    Two: the feasible Pareto front, smallest network first."""
    if PARAMS in objectives:
        return sorted(study.best_trials, key=lambda trial: (trial.values[1], -trial.values[0]))
    done = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if feasible(trial)
    ]
    # Equal values: the smaller network first.
    return sorted(
        done,
        key=lambda trial: (-trial.values[0], trial.user_attrs.get("parameters", 0), trial.number),
    )[:BEST_SHOWN]


def trial_record(trial: FrozenTrial, path: Path) -> dict[str, Any]:
    """A trial as tune.json shows it; its run directory relative to the tune directory
    ``path`` (None when it has none)."""
    # A completed trial's run is always trials/trial-NNNN; a study of a growml that stored
    # it relative to the current directory is read the same way.
    run = f"{TRIALS}/{trial_run_name(trial.number)}" if "run" in trial.user_attrs else None
    return {
        "number": trial.number,
        "value": trial.values[0] if trial.values else None,
        "parameters": trial.user_attrs.get("parameters"),
        "hidden_widths": trial.user_attrs.get("hidden_widths"),
        "epochs": trial.user_attrs.get("epochs"),
        "settings": dict(trial.params),
        "run": run if run is not None and (path / run).is_dir() else None,
        "host": trial.user_attrs.get("host"),
        "feasible": feasible(trial),
        "retry_of": RetryHeartbeatStaleTrialCallback.retried_trial_number(trial),
    }


def failures(trials: list[FrozenTrial]) -> dict[str, int]:
    """Why trials failed, by message, most frequent first."""
    reasons = Counter(
        trial.user_attrs.get("error", "the worker stopped mid-trial")
        for trial in trials
        if trial.state == TrialState.FAIL
    )
    return dict(reasons.most_common())


def draw_plots(study: optuna.Study, path: Path, objectives: list[str], metric: str) -> list[str]:
    """PNGs of the optimisation history and the settings' importances (and the Pareto front
    for two objectives) under ``path/plots``; the names of those drawn. A plot that needs
    more finished trials than there are is left out."""
    from optuna.visualization import matplotlib as plots

    from growml.runs.plots import pyplot, save_figure

    pyplot()  # the Agg backend, before optuna imports pyplot
    history: dict[str, Any] = {"target_name": f"validation {metric}"}
    importances = dict(history)
    if PARAMS in objectives:
        history["target"] = lambda trial: trial.values[0]
        # Importances for a low target (PED-ANOVA, Optuna's default): the metric negated.
        importances["target"] = lambda trial: -trial.values[0]
    drawings = {
        "history.png": lambda: plots.plot_optimization_history(study, **history),
        "importances.png": lambda: plots.plot_param_importances(study, **importances),
    }
    if PARAMS in objectives:
        drawings["pareto.png"] = lambda: plots.plot_pareto_front(
            study, target_names=[f"validation {metric}", "parameters"]
        )
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    drawn = []
    for name, draw in drawings.items():
        if len(done) < (2 if name == "importances.png" else 1):
            continue
        with quiet_optuna():
            # Notes of the importance evaluator and of matplotlib on thin data, not for users.
            warnings.simplefilter("ignore", UserWarning)
            try:
                axes = draw()
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # too few distinct trials for this plot
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        save_figure(figure, path / PLOTS / name)
        drawn.append(f"{PLOTS}/{name}")
    return drawn
