"""``growml tune``: an Optuna study of growml fits, its best trials and its best run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from growml.cli import render
from growml.cli.common import (
    Assignments,
    Data,
    Device,
    Recipe,
    Target,
    TaskOption,
    flag_overrides,
    print_json,
    stderr,
    stdout,
    user_errors,
)

from growml.config import load_recipe


def tune(
    data: Data = None,
    recipe: Recipe = None,
    target: Target = None,
    task: TaskOption = None,
    trials: Annotated[int, typer.Option(help="Trials to run (other workers add theirs).")] = 20,
    timeout: Annotated[
        float | None, typer.Option(help="Start no trial after this many seconds.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL shared by workers, like postgresql://user@host/db "
            "(default: sqlite in OUT/study.db)."
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: the data's name).")
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            help="metric: maximise the validation metric; metric,params: also minimise the "
            "parameter count (a Pareto front)."
        ),
    ] = "metric",
    metric: Annotated[
        str,
        typer.Option(help="Validation metric: accuracy, macro_f1, f1, r2 (auto: by task)."),
    ] = "auto",
    jobs: Annotated[
        int, typer.Option(help="Worker processes on this machine, sharing the storage.")
    ] = 1,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs of every trial.")] = None,
    device: Device = None,
    out: Annotated[
        Path | None, typer.Option(help="Tune directory (default: runs/tune-<study>).")
    ] = None,
    set_: Assignments = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print tune.json on stdout.")] = False,
) -> None:
    """Tune the settings growth leaves open with Optuna; the best trial is a full run."""
    from growml.tune import resolve_tune_config
    from growml.tune import tune as tune_study

    with user_errors():
        overrides = flag_overrides(
            set_, data, target, task, {"train.epochs": epochs, "train.device": device}
        )
        config, settings = resolve_tune_config(load_recipe(recipe) if recipe else None, overrides)
        progress = None if json_output else render.TuneProgressBar(stderr)
        try:
            result = tune_study(
                config,
                settings,
                trials=trials,
                timeout=timeout,
                storage=storage,
                study=study,
                objective=objective,
                metric=metric,
                jobs=jobs,
                out=out,
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.stop()
    if json_output:
        print_json(result.document)
        return
    stdout.print(render.tune_table(result.document))
    stdout.print(render.summary_table(render.tune_summary(result.document, str(result.path))))
