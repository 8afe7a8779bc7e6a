"""What every command shares: the consoles, user errors as one line, flags to settings, JSON."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from growml.config import FitConfig, load_recipe, parse_assignment, resolve_config
from growml.errors import ConfigError, GrowmlError, GrowmlWarning


def _console(stderr: bool = False) -> Console:
    """A console; written to a file or a pipe, lines are never wrapped mid-sentence (a log
    reader's window is as wide as the line), and tables keep their natural width."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH)


# The width of a file or a pipe: rich shrinks, wraps and cuts a table's columns to fit the
# console, so a pipe is given more room than any table takes; tables do not expand to it.
PIPE_WIDTH = 100_000
stdout = _console()
stderr = _console(stderr=True)

# The options several commands share, declared once.
Data = Annotated[
    str | None,
    typer.Argument(
        help="A built-in dataset (`growml datasets`), a CSV/Parquet file, an .npz/.npy of "
        "signals or images, or a folder of images in one subfolder per class."
    ),
]
Recipe = Annotated[Path | None, typer.Option("--recipe", "-r", help="YAML recipe of settings.")]
Target = Annotated[str | None, typer.Option(help="Target column of a file.")]
TaskOption = Annotated[
    str | None, typer.Option(help="classification or regression (default: inferred).")
]
Assignments = Annotated[
    list[str] | None,
    typer.Option("--set", help="Any setting by dotted path: --set train.lr=0.01 (repeatable)."),
]
Device = Annotated[
    str | None,
    typer.Option(help="Where to train: auto (a CUDA GPU if any), cpu, cuda, cuda:N, mps."),
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Show a GrowmlError as one line and exit 2; show GrowmlWarnings as one line each."""

    def show_warning(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, GrowmlWarning):
            stderr.print(f"[yellow]warning:[/] {message}", highlight=False)
        else:
            default_show(message, category, *args, **kwargs)

    default_show = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        yield
    except GrowmlError as error:
        stderr.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    finally:
        warnings.showwarning = default_show


def widths_flag(text: str | None, flag: str) -> list[int] | None:
    """``"32,16"`` → ``[32, 16]`` (None stays None)."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"{flag} expects comma-separated widths like 32,32 (got {text!r})."
        ) from None


def print_json(data: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def resolve_flags(
    recipe: Path | None,
    assignments: Sequence[str] | None,
    data: str | None,
    target: str | None,
    task: str | None,
    flags: Mapping[str, Any],
) -> FitConfig:
    """Settings from a recipe, then the data flags and ``flags`` (a shorthand each for a
    dotted setting; None: not given), then ``--set`` assignments, which come last and win."""
    overrides = flag_overrides(assignments, data, target, task, flags)
    return resolve_config(load_recipe(recipe) if recipe else None, overrides)


def flag_overrides(
    assignments: Sequence[str] | None,
    data: str | None,
    target: str | None,
    task: str | None,
    flags: Mapping[str, Any],
) -> list[tuple[str, Any]]:
    """The dotted settings the data flags, ``flags`` and ``--set`` give, in that order."""
    given = {"data.source": data, "data.target": target, "data.task": task, **flags}
    overrides = [(key, value) for key, value in given.items() if value is not None]
    return overrides + [parse_assignment(text) for text in assignments or []]
