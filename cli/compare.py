"""``growml compare``: a growing run against fixed widths on the same splits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from growml.cli import render
from growml.cli.common import (
    Assignments,
    Data,
    Device,
    Recipe,
    Target,
    TaskOption,
    print_json,
    resolve_flags,
    stderr,
    stdout,
    user_errors,
    widths_flag,
)

from growml.config import parse_assignment
from growml.errors import ConfigError

if TYPE_CHECKING:
    from growml.tune.settings import TuneConfig


def compare(
    data: Data = None,
    recipe: Recipe = None,
    target: Target = None,
    task: TaskOption = None,
    widths: Annotated[
        str,
        typer.Option(help="Fixed widths to train, comma-separated; 64x2 is two layers of 64."),
    ] = "8,16,32,64,128,256",
    depth: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=16,
            help="Hidden layers of each fixed width, 1 to 16 (default: the growing run's).",
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Grow from these hidden widths (default 1).")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help="mlp or conv (model.arch); a conv network's fixed width is every block's "
            "channels and every dense layer's width."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds (splits) to average over.")] = 3,
    seed: Annotated[int | None, typer.Option(help="First seed; the others follow it.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs of every run.")] = None,
    device: Device = None,
    loss: Annotated[
        str | None, typer.Option(help="Training loss of every run (loss.name).")
    ] = None,
    prune: Annotated[
        str | None, typer.Option(help="Prune every run: synflow, magnitude or random.")
    ] = None,
    metric: Annotated[
        str,
        typer.Option(help="Test metric to rank by: accuracy, macro_f1, f1, r2 (auto: by task)."),
    ] = "auto",
    sklearn: Annotated[
        bool, typer.Option(help="Also train scikit-learn's MLP at each width on the same data.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: the number of cores)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Comparison directory (default: runs/compare-<data>).")
    ] = None,
    keep_runs: Annotated[
        bool, typer.Option(help="Keep every member's run directory under OUT/runs.")
    ] = True,
    overwrite: Annotated[
        bool, typer.Option(help="Start afresh instead of resuming the comparison in OUT.")
    ] = False,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="Another growing run to compare, named: 'gradmax growth.method=gradmax' "
            "(a name, then dotted settings; repeatable)."
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL that workers on many machines share, like "
            "postgresql://user@host/db: each member is trained once, by one worker."
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(help="Study of a shared comparison (default: compare-<data>)."),
    ] = None,
    set_: Assignments = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print compare.json on stdout.")
    ] = False,
) -> None:
    """Grow a network and train fixed widths on the same splits: what growth bought."""
    from growml.compare import compare as compare_runs
    from growml.compare import parse_widths

    with user_errors():
        heartbeats, set_ = _heartbeats(set_)
        config = resolve_flags(
            recipe,
            set_,
            data,
            target,
            task,
            {
                "model.hidden_widths": widths_flag(start, "--start"),
                "model.arch": arch,
                "loss.name": loss,
                "prune.method": prune,
                "train.epochs": epochs,
                "train.device": device,
                "seed": seed,
            },
        )
        networks = parse_widths(widths, depth or len(config.model.hidden_widths))
        progress = None if json_output else render.CompareProgress(stderr)
        try:
            result = compare_runs(
                config,
                networks,
                seeds,
                sklearn=sklearn,
                metric=metric,
                jobs=jobs,
                out=out,
                keep_runs=keep_runs,
                overwrite=overwrite,
                variants=dict(_variant(text) for text in variant or []),
                progress=progress,
                storage=storage,
                study=study,
                heartbeat_interval=heartbeats.heartbeat_interval,
                grace_period=heartbeats.grace_period,
            )
        finally:
            if progress is not None:
                progress.stop()
    if json_output:
        print_json(result.document)
        return
    stdout.print(render.compare_table(result.document))
    for line in result.verdict["summary"]:
        stdout.print(line, highlight=False)
    if "study" in result.document:
        trained, total = len(result.document["trained_here"]), len(result.document["members"])
        stdout.print(
            f"[dim]{trained} of {total} members trained here; study "
            f"{result.document['study']} in {result.document['storage']} holds every record.[/]",
            highlight=False,
        )
    stdout.print(f"[dim]{result.path / 'compare.json'} · {result.path / 'plots/compare.png'}[/]")


def _variant(text: str) -> tuple[str, list[tuple[str, Any]]]:
    """``"gradmax growth.method=gradmax"`` → ``("gradmax", [("growth.method", "gradmax")])``."""
    name, *assignments = text.split() or [""]
    if not assignments:
        raise ConfigError(
            f"--variant expects a name and settings, like 'gradmax growth.method=gradmax' "
            f"(got {text!r})."
        )
    return name, [parse_assignment(item) for item in assignments]


# A shared comparison's heartbeats, set as for growml tune: --set tune.heartbeat_interval=5.
HEARTBEATS = ("tune.heartbeat_interval", "tune.grace_period")


def _heartbeats(assignments: list[str] | None) -> tuple[TuneConfig, list[str]]:
    """The heartbeat settings among ``--set`` assignments, validated, and the others."""
    from growml.tune import resolve_tune_config

    ours = [text for text in assignments or [] if text.split("=")[0].strip() in HEARTBEATS]
    _, settings = resolve_tune_config(None, [parse_assignment(text) for text in ours])
    return settings, [text for text in assignments or [] if text not in ours]
