"""``growml report``: show what a run, a comparison or a study wrote, from its files alone.

A run is shown from its records (``growml.runs.files``), without torch, so that a report
answers at once; a comparison and a study with the tables ``growml compare`` and ``growml tune``
printed when they finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from growml.cli import render, runview
from growml.cli.common import print_json, stdout, user_errors

from growml.runs.workdir import directory_kind


def report(
    path: Annotated[
        Path,
        typer.Argument(
            help="A directory written by growml fit (a run), compare, tune or diagnose "
            "--experiment."
        ),
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Show a run (its model, metrics and training history), a comparison, a study or an
    experiment."""
    with user_errors():
        kind = directory_kind(path)
        if kind == "run":
            _run(path, json_output)
        elif kind == "experiment":
            _experiment(path, json_output)
        elif kind == "comparison":
            from growml.compare import read_comparison

            _comparison(read_comparison(path), path, json_output)
        else:
            from growml.tune.results import read_results

            _study(read_results(path), path, json_output)


def _run(path: Path, json_output: bool) -> None:
    from growml.events import EpochEnd, GrowthStep
    from growml.runs import digests
    from growml.runs.files import read_run_files
    from growml.runs.layout import DIAGNOSTICS, EXPORT
    from growml.runs.workdir import read_manifest

    files = read_run_files(path)
    digests.check(path, [EXPORT])
    history = files.history()
    readings = files.preprocessor.readings
    if json_output:
        print_json(
            {
                "run": str(path),
                "model": files.model,
                "metrics": files.metrics,
                "columns": [reading.model_dump() for reading in readings],
                "history": [event.to_dict() for event in history],
                "diagnosis": (
                    read_manifest(path / DIAGNOSTICS, "run growml diagnose on the run again")
                    if (path / DIAGNOSTICS).is_file()
                    else None
                ),
            }
        )
        return
    metrics = files.metrics_record
    stdout.print(render.summary_table(runview.model_rows(files), title="Model"))
    if readings:
        stdout.print(render.columns_table(readings))
    if metrics is not None:
        title = f"Metrics of {runview.kept_title(metrics, files.setting('train.monitor'))}"
        stdout.print(runview.metrics_table(metrics, title=title))
    steps = [event for event in history if isinstance(event, GrowthStep)]
    if steps:
        stdout.print(runview.growth_table(steps))
        stdout.print(render.summary_table(runview.growth_rows(metrics, steps)))
    if metrics is not None and metrics.trim:
        stdout.print(render.summary_table(runview.trimming_rows(metrics.trim), title="Trimming"))
    if metrics is not None and metrics.prune:
        stdout.print(render.summary_table(runview.pruning_rows(metrics.prune), title="Pruning"))
    if any(isinstance(event, EpochEnd) for event in history):
        stdout.print(
            render.summary_table(runview.training_rows(metrics, history), title="Training")
        )
    if (path / DIAGNOSTICS).is_file():
        from growml.cli.diagnose import show_diagnosis

        show_diagnosis(read_manifest(path / DIAGNOSTICS, "run growml diagnose on the run again"))


def _experiment(path: Path, json_output: bool) -> None:
    from growml.cli.diagnose import show_experiment

    from growml.diagnose.output import EXPERIMENT
    from growml.runs.workdir import read_manifest

    document = read_manifest(path / EXPERIMENT, "run growml diagnose --experiment again")
    if json_output:
        print_json(document)
        return
    show_experiment(document)


def _comparison(document: dict[str, Any], path: Path, json_output: bool) -> None:
    if json_output:
        print_json(document)
        return
    stdout.print(render.compare_table(document))
    for line in document["verdict"]["summary"]:
        stdout.print(line, highlight=False)
    stdout.print(f"[dim]{path / 'compare.json'} · {path / 'plots/compare.png'}[/]")


def _study(document: dict[str, Any], path: Path, json_output: bool) -> None:
    if json_output:
        print_json(document)
        return
    stdout.print(render.tune_table(document))
    stdout.print(render.summary_table(render.tune_summary(document, str(path))))
    if document["status"] == "running":
        stdout.print(
            "[dim]Trials were still running when tune.json was written (or their growml tune "
            "was interrupted): these are the trials finished then.[/]"
        )
