"""``growml export``: a run to one verified ONNX file, and its summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from growml.cli import render
from growml.cli.common import print_json, stdout, user_errors

from growml.export.metadata import DEFAULT_OPSET, MIN_OPSET


def export(
    run: Annotated[Path, typer.Argument(help="A run directory written by `growml fit`.")],
    out: Annotated[
        Path | None, typer.Option(help="The ONNX file to write (default: RUN/model.onnx).")
    ] = None,
    opset: Annotated[
        int, typer.Option(help=f"ONNX opset, from {MIN_OPSET} to the installed onnx's latest.")
    ] = DEFAULT_OPSET,
    data: Annotated[
        str | None,
        typer.Option(
            help="The training data, when it has moved since the run was trained "
            "(default: the run's data.source); the test split is verified on it."
        ),
    ] = None,
    group_numbers: Annotated[
        bool,
        typer.Option(
            help="Take the numeric columns as one [N, k] float32 input named `numbers` "
            "(--no-group-numbers: one [N, 1] input each, slower for single rows of wide tables)."
        ),
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Write RUN as one ONNX model, preprocessing included, verified in onnxruntime."""
    from growml.export import export_run

    with user_errors():
        result = export_run(run, out, opset, data, group_numbers)
    if json_output:
        print_json(result.to_dict())
        return
    stdout.print(render.export_table(result.to_dict()))
