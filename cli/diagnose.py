"""``growml diagnose``: what the theory behind growth says about a data set and a run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from growml.cli import render
from growml.cli.common import (
    Assignments,
    Recipe,
    Target,
    TaskOption,
    print_json,
    resolve_flags,
    stderr,
    stdout,
    user_errors,
)
from growml.cli.fitrun import run_fit

from growml.errors import ConfigError

if TYPE_CHECKING:
    from growml.diagnose.diagnosis import Diagnosis
    from growml.diagnose.experiments import ExperimentResult

EXPERIMENT_NAMES = ("width-bound", "init-scale", "confusion")


def diagnose(
    source: Annotated[
        str,
        typer.Argument(
            help="A run directory written by growml fit, or data (a built-in dataset or a "
            "file, as growml fit reads it), fitted first with diagnostics.enabled=true."
        ),
    ],
    experiment: Annotated[
        str | None,
        typer.Option(
            help="Run the experiment behind one claim on the data instead: width-bound, "
            "init-scale or confusion (sizes and seeds: the diagnostics.* settings)."
        ),
    ] = None,
    recipe: Recipe = None,
    target: Target = None,
    task: TaskOption = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where a fit (default: runs/<data name>) or an experiment (default: "
            "experiments/<data name>-<experiment>) is written."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing run or experiment directory at --out.")
    ] = False,
    set_: Assignments = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
) -> None:
    """The width bound, laziness and gradient confusion of a run (docs/theory.md), or the
    experiment behind one of them on DATA."""
    started = time.perf_counter()
    with user_errors():
        if experiment is not None and experiment not in EXPERIMENT_NAMES:
            raise ConfigError(
                f"--experiment must be one of {', '.join(EXPERIMENT_NAMES)}, not {experiment!r}."
            )
        run = Path(source)
        is_run = run.is_dir() and (run / "model.json").is_file()
        given = (experiment, recipe, target, task, set_, seed)
        if is_run and any(value is not None for value in given):
            raise ConfigError(
                f"{source!r} is a run: it is diagnosed as it was fitted; give data (a dataset "
                "or a file) for --experiment or for settings."
            )
        if experiment is not None:
            _experiment(
                experiment, source, recipe, target, task, seed, set_, out, overwrite, json_output
            )
            return
        if not is_run:
            flags = {"diagnostics.enabled": True, "seed": seed}
            config = resolve_flags(recipe, set_, source, target, task, flags)
            run = run_fit(config, out, overwrite, False, started, quiet=json_output).path
        elif out is not None:
            raise ConfigError("--out names where a fit goes; a run is diagnosed in place.")
        diagnosis = _diagnose(run, quiet=json_output)
    if json_output:
        print_json(diagnosis.to_dict())
        return
    show_diagnosis(diagnosis.to_dict())
    written = [run / "diagnostics.json", run / "plots" / "diagnostics.png"]
    stdout.print(f"[dim]{' · '.join(str(path) for path in written if path.is_file())}[/]")


def _diagnose(run: Path, quiet: bool) -> Diagnosis:
    from growml.diagnose.diagnosis import diagnose_run, write_diagnosis

    status = None if quiet else stderr.status(f"diagnosing {run} …")
    if status is not None:
        status.start()
    try:
        diagnosis = diagnose_run(run)
        write_diagnosis(run, diagnosis)
    finally:
        if status is not None:
            status.stop()
    return diagnosis


def show_diagnosis(document: dict[str, Any]) -> None:
    """A run's diagnosis, from its ``diagnostics.json`` document (``growml diagnose``,
    ``growml report``)."""
    bound = document["width_bound"]
    widths = ",".join(str(width) for width in bound["hidden_widths"])
    rows: dict[str, Any] = {
        "rows n, inputs d": f"{bound['rows']:,}, {bound['inputs']:,}",
        "width bound ⌈2n/(d+1)⌉": bound["bound"],
        "hidden widths kept": widths,
    }
    lazy = document["laziness"]
    if lazy is not None:
        changes = ", ".join(f"{change:.3g}" for change in lazy["weight_change"])
        rows["weight change from birth"] = f"{changes} (hidden layers, output)"
        rows["kernel drift"] = f"{lazy['kernel_drift']:.3g} ({lazy['kernel_rows']} probe rows)"
    for label, key in (
        ("confusion at birth", "confusion_at_birth"),
        ("confusion kept", "confusion_kept"),
    ):
        confusion = document[key]
        if confusion is not None:
            rows[label] = (
                f"min cosine {confusion['min_cosine']:.3f}, 5th percentile "
                f"{confusion['cosine_5th']:.3f}, η̂ {confusion['eta']:.3g} "
                f"({confusion['probe']} rows)"
            )
    stdout.print(render.summary_table(rows, title=f"Diagnosis of {document['run']}"))
    if document["course"]:
        stdout.print(_course_table(document["course"]))
    stdout.print(f"width: {bound['meaning']}", highlight=False)
    if lazy is not None:
        stdout.print(f"laziness: {lazy['meaning']}", highlight=False)
    for note in document["notes"]:
        stdout.print(f"note: {note}", highlight=False)


def _course_table(course: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Gradient confusion over growth", title_justify="left")
    table.add_column("epoch", justify="right")
    table.add_column("stage")
    for column in ("widths", "parameters", "min cosine", "5th percentile", "η̂"):
        table.add_column(column, justify="right")
    for step in course:
        table.add_row(
            str(step["epoch"]),
            step["stage"],
            ",".join(str(width) for width in step["hidden_widths"]),
            f"{step['parameters']:,}",
            f"{step['min_cosine']:.3f}",
            f"{step['cosine_5th']:.3f}",
            f"{step['eta']:.3g}",
        )
    return table


def _experiment(
    name: str,
    source: str,
    recipe: Path | None,
    target: str | None,
    task: str | None,
    seed: int | None,
    assignments: list[str] | None,
    out: Path | None,
    overwrite: bool,
    json_output: bool,
) -> None:
    from growml.data import load_data_table, prepare
    from growml.diagnose.output import check_experiment_destination, write_experiment

    config = resolve_flags(recipe, assignments, source, target, task, {"seed": seed})
    if config.model.arch == "conv":
        raise ConfigError("the experiments train MLPs; use model.arch=mlp.")
    if out is not None:
        check_experiment_destination(out, overwrite)  # at once, not after the work
    table = load_data_table(config.data, config.model.input_shape)
    out = out or Path("experiments") / f"{table.name}-{name}"
    check_experiment_destination(out, overwrite)
    data = prepare(table, config.data, config.seed)
    result = _run_experiment(name, data, config, quiet=json_output)
    written = write_experiment(result, out, overwrite)
    if json_output:
        print_json({"experiment": str(out), **result.to_dict()})
        return
    show_experiment(result.to_dict())
    stdout.print(f"[dim]{' · '.join(str(path) for path in written)}[/]")


def _run_experiment(name: str, data: Any, config: Any, quiet: bool) -> ExperimentResult:
    from growml.diagnose.experiments import run_experiment

    if quiet:
        return run_experiment(
            name, data.x_train, data.y_train, data.task, data.target_encoder.n_outputs, config
        )
    with render.progress_bar(stderr, "networks", 24) as bar:
        task = bar.add_task("", total=None, status=f"{name} on {data.table_name}")

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run_experiment(
            name,
            data.x_train,
            data.y_train,
            data.task,
            data.target_encoder.n_outputs,
            config,
            progress,
        )


def show_experiment(result: dict[str, Any]) -> None:
    """An experiment's table and verdict, from its ``experiment.json`` document (``growml
    diagnose --experiment``, ``growml report``)."""
    from rich.table import Table

    table = Table(title=f"{result['name']}: {result['claim']}", title_justify="left")
    for column in result["columns"]:
        table.add_column(column, justify="right")
    for row in result["rows"]:
        table.add_row(*(render.number(value) for value in row))
    stdout.print(table)
    verdict = "holds" if result["holds"] else "does not hold"
    stdout.print(f"{verdict}: {result['verdict']}", highlight=False)
    stdout.print(f"[dim]rule: {result['rule']}[/]", highlight=False)
