"""The ``growml`` command: parses flags into settings, calls the library, renders the result.

No logic lives here beyond mapping flags to settings and rendering. User errors
(``GrowmlError``) print one line and exit with code 2; anything else is a bug.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from growml.cli import render, runview
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
from growml.cli.compare import compare
from growml.cli.diagnose import diagnose
from growml.cli.export import export
from growml.cli.fitrun import run_fit
from growml.cli.report import report
from growml.cli.tune import tune
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer ≥ 0.29 carries click
from typer.core import TyperGroup

from growml.errors import ConfigError

if TYPE_CHECKING:
    pass

# Value names in --help: what a value is, not its Python type (<str>, <list[str]>).
_VALUE_NAMES = {
    "set_": "KEY=VALUE",
    "variant": "'NAME KEY=VALUE ...'",
    "recipe": "FILE",
    "out": "PATH",
    "data": "DATA",
    "run": "RUN",
    "target": "COLUMN",
    "start": "WIDTHS",
    "fixed": "WIDTHS",
    "widths": "WIDTHS",
    "source": "SOURCE",
    "experiment": "NAME",
}


class _Group(TyperGroup):
    """growml's commands; a wrong flag or flag value is a user error like any other: one
    ``error:`` sentence on stderr and exit code 2, not a framed usage block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            for param in command.params:
                if getattr(param, "is_flag", False) or param.name is None:
                    continue
                param.metavar = _VALUE_NAMES.get(param.name, param.name.upper())

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as error:  # `growml` alone: the help
            typer.echo(error.ctx.get_help() if error.ctx is not None else "")
            sys.exit(0)
        except UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "growml"
            message = error.format_message().rstrip(".").replace("\n", " ")
            stderr.print(
                f"[red]error:[/] {message}; see {command} --help.", highlight=False, soft_wrap=True
            )
            sys.exit(2)
        except typer.Abort:
            stderr.print("[red]interrupted[/]")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="growml",
    cls=_Group,
    help="Size neural networks by growing them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        from growml.version import __version__

        print(f"growml {__version__}")
        raise typer.Exit()


@app.callback()
def _growml(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Size neural networks by growing them."""


# Click keeps a paragraph that starts with \b as it is written (the legend's columns).
@app.command(epilog="\b\n" + "\n".join(runview.GROWTH_LEGEND))
def fit(
    data: Data = None,
    recipe: Recipe = None,
    target: Target = None,
    task: TaskOption = None,
    start: Annotated[
        str | None,
        typer.Option(help="Grow from these hidden widths, comma-separated: 1 or 1,1 (default 1)."),
    ] = None,
    fixed: Annotated[
        str | None,
        typer.Option(help="Train fixed hidden widths instead of growing: 32 or 64,32."),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help="mlp (dense layers over the columns, the default) or conv (convolution "
            "blocks over each row as a signal or an image; model.arch)."
        ),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            help="Training loss: cross-entropy, bce, mse, soft-f1, soft-fbeta, "
            "soft-accuracy, soft-auroc (loss.name)."
        ),
    ] = None,
    prune: Annotated[
        str | None,
        typer.Option(help="Prune: synflow, magnitude or random (with prune.compression)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs (train.epochs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for split, init and order.")] = None,
    device: Device = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/<data name>).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the interrupted run of the same --out from its checkpoint."
        ),
    ] = False,
    set_: Assignments = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
) -> None:
    """Train a network on DATA and write its run directory."""
    started = time.perf_counter()
    with user_errors():
        if start is not None and fixed is not None:
            raise ConfigError("--start grows and --fixed does not; give one of them.")
        widths = start if start is not None else fixed
        config = resolve_flags(
            recipe,
            set_,
            data,
            target,
            task,
            {
                "model.hidden_widths": widths_flag(widths, "--start" if start else "--fixed"),
                "growth.enabled": False if fixed is not None else (True if start else None),
                "model.arch": arch,
                "loss.name": loss,
                "prune.method": prune,
                "train.epochs": epochs,
                "train.device": device,
                "seed": seed,
            },
        )
        result = run_fit(config, out, overwrite, resume, started, quiet=json_output)
    if json_output:
        print_json({"run": str(result.path), "metrics": result.metrics})
        return
    metrics = result.run.metrics_record
    kept = runview.kept_title(metrics, config.train.monitor)
    stdout.print(runview.metrics_table(metrics, title=f"growml fit {config.data.source}: {kept}"))
    stdout.print(render.summary_table(runview.run_summary(metrics, str(result.path))))


app.command()(compare)
app.command()(tune)
app.command()(export)
app.command()(report)
app.command()(diagnose)


@app.command()
def settings(
    prefix: Annotated[
        str | None,
        typer.Argument(help="Only the settings under this prefix: train, growth.pool, tune..."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List every dotted setting (for --set and recipes): default, choices, meaning."""
    from dataclasses import asdict

    from growml.config_reference import setting_reference
    from growml.tune.settings import SECTION, TuneConfig

    reference = setting_reference() + setting_reference(TuneConfig, f"{SECTION}.")
    with user_errors():
        rows = [info for info in reference if prefix is None or info.path.startswith(prefix)]
        if not rows:
            raise _unknown_prefix(prefix or "", [info.path for info in reference])
    if json_output:
        print_json([asdict(info) for info in rows])
        return
    stdout.print(render.settings_table(rows))


def _unknown_prefix(prefix: str, paths: list[str]) -> ConfigError:
    """No setting under ``prefix``: the closest section or setting, if one is close."""
    import difflib

    prefixes = {
        path.rsplit(".", depth)[0] for path in paths for depth in range(path.count(".") + 1)
    }
    close = difflib.get_close_matches(prefix, sorted(prefixes), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "`growml settings` lists all."
    return ConfigError(f"no setting starts with {prefix!r}; {hint}")


@app.command()
def datasets(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the built-in datasets: rows, features, task and class balance."""
    from dataclasses import asdict

    from growml.data import list_datasets

    with user_errors():
        rows = [asdict(info) for info in list_datasets()]
    if json_output:
        print_json(rows)
        return
    stdout.print(render.datasets_table(rows, stdout.width))


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run directory written by `growml fit`.")],
    data: Annotated[
        str,
        typer.Argument(
            help="A CSV/Parquet file (or built-in dataset) of rows, an .npz/.npy of signals or "
            "images, or a folder of images."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the predictions here, in the format of the extension: .csv, .parquet "
            "or .jsonl (default: a table on a terminal, CSV to a pipe or file)."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="onnx (onnxruntime on RUN/model.onnx) or torch; default: onnx when the run "
            "has been exported."
        ),
    ] = "auto",
    strict: Annotated[
        bool,
        typer.Option(
            help="Refuse columns the model does not use and category values it has no "
            "category for (default: one warning per column)."
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    device: Annotated[
        str | None,
        typer.Option(help="Where the torch engine predicts: cpu (default), auto, cuda, cuda:N."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Predict the target of DATA's rows with a trained run (raw rows: the run preprocesses)."""
    from growml.data import read_rows
    from growml.export import load_predictor
    from growml.predictions import encode_predictions, write_predictions

    with user_errors():
        if out is not None:
            _check_predictions_file(out, data, run, overwrite)
        predictor = load_predictor(run, engine, device)
        image_size, channels = _image_reading(run)
        predictions = predictor.prediction_table(
            read_rows(data, predictor.decimal_comma, image_size, channels), strict=strict
        )
        if out is not None:
            write_predictions(predictions, out)
    if json_output:
        print_json(
            {
                "rows": predictions.num_rows,
                "predictions": predictions.to_pylist() if out is None else str(out),
            }
        )
    elif out is not None:
        stdout.print(f"{predictions.num_rows} predictions written to {out}")
    elif sys.stdout.isatty():
        stdout.print(render.predictions_table(predictions))
    else:  # a pipe or a file gets every row and column, for the next program to read
        sys.stdout.write(encode_predictions(predictions).decode("utf-8"))


def _image_reading(run: Path) -> tuple[list[int] | None, int | None]:
    """How images are read for the run at ``run``: its ``data.image_size`` and the channels
    its convolutional network reads (None, None for a run of a table)."""
    from growml.runs.files import read_run_files

    files = read_run_files(run)
    shape = files.model.get("input_shape")
    return files.setting("data.image_size"), shape[0] if shape else None


def _check_predictions_file(out: Path, data: str, run: Path, overwrite: bool) -> None:
    """Refuse an --out that would destroy data or that cannot be written: a directory, the
    input rows, one of the run's own files, an existing file (unless ``overwrite``), an
    unknown format."""
    from growml.errors import DataError
    from growml.predictions import prediction_format
    from growml.runs.digests import DIGESTS
    from growml.runs.layout import EXPORT, PLOTS, RUN_FILES

    if out.is_dir():
        raise DataError(f"--out {str(out)!r} is a directory; give a file name for the predictions.")
    prediction_format(out)
    if Path(data).exists() and out.resolve() == Path(data).resolve():
        raise DataError(f"--out {str(out)!r} is the input file; write the predictions elsewhere.")
    if out.resolve().is_relative_to(run.resolve()):
        inside = out.resolve().relative_to(run.resolve()).parts
        if inside[0] in (*RUN_FILES, EXPORT, DIGESTS, PLOTS):
            raise DataError(
                f"--out {str(out)!r} is a file of the run itself; write the predictions elsewhere."
            )
    if out.exists() and not overwrite:
        raise DataError(f"--out {str(out)!r} already exists; pass --overwrite to replace it.")
    folder = next((parent for parent in out.parents if parent.exists()), None)
    if folder is not None and not folder.is_dir():
        raise DataError(f"--out {str(out)!r} lies below the file {str(folder)!r}; choose a folder.")


def main() -> None:
    """Entry point of the ``growml`` console script. SIGTERM (a scheduler's stop) is treated
    as Ctrl-C: the command stops cleanly, and an interrupted fit keeps its checkpoint."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    app()
