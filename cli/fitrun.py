"""Fitting from the command line, for ``growml fit`` and ``growml diagnose DATA``: the data
read and encoded before torch loads (a terminal is told what is read and how), then the fit
with its progress display."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from growml.cli import runview
from growml.cli.common import stderr
from growml.cli.dataview import DataProgressBars

if TYPE_CHECKING:
    from growml.config import FitConfig
    from growml.data import PreparedData, Table
    from growml.fitting import FitResult


def run_fit(
    config: FitConfig,
    out: Path | None,
    overwrite: bool,
    resume: bool,
    started: float,
    quiet: bool = False,
) -> FitResult:
    """Fit ``config`` into ``out`` as ``growml fit`` does; ``quiet``: no progress display
    (``--json``)."""
    from growml.data import load_data_table, prepare
    from growml.data.streaming import streams
    from growml.runs.workdir import check_destination
    from growml.scoring import check_settings

    if out is not None:
        check_destination(out, overwrite)  # at once, not after reading the data
    # Reading and encoding come before torch loads (a second or more): a terminal is told
    # at once what is read and how, and a wrong file or setting answers before any wait.
    # A pipe or a file gets none of it, so that a mistake is the one line written there.
    chatty = stderr.is_terminal and not quiet
    if streams(config.data, config.model.arch):
        table, prepared = _streamed(config, quiet=not chatty)
    else:
        with _reading(config.data.source, quiet=not chatty):
            table = load_data_table(config.data, config.model.input_shape)
            check_settings(config, table.task)
            prepared = prepare(table, config.data, config.seed)
    if chatty:
        stderr.print(_describe_table(table), highlight=False)
        stderr.print(_describe_encoding(prepared), highlight=False)
    from growml.fitting import fit

    progress = None if quiet else runview.FitProgress(stderr)
    try:
        return fit(
            config,
            out=out,
            overwrite=overwrite,
            observers=[progress] if progress else [],
            table=table,
            resume=resume,
            started=started,
            prepared=prepared,
        )
    finally:
        if progress is not None:
            progress.close()


def _reading(source: str, quiet: bool) -> contextlib.AbstractContextManager[Any]:
    """ "reading SOURCE …" while it is read; it leaves nothing behind."""
    if quiet:
        return contextlib.nullcontext()
    return stderr.status(f"reading {source} …")


def _streamed(config: FitConfig, quiet: bool) -> tuple[Table, PreparedData]:
    """A file larger than memory read in batches (``growml.data.streaming``), a progress bar
    per pass over it."""
    from growml.data.streaming import prepare_streamed, scan
    from growml.scoring import check_settings

    with DataProgressBars(stderr, quiet=quiet) as bars:
        scanned = scan(config.data, config.seed, bars)
        check_settings(config, scanned.table.task)
        return scanned.table, prepare_streamed(scanned, config.data, bars)


def _describe_table(table: Table) -> str:
    columns = table.features.num_columns
    return (
        f"read {table.name}: {len(table.target):,} rows, {columns:,} feature "
        f"column{'s' if columns != 1 else ''}, target {table.target_name!r} ({table.task})"
    )


def _describe_encoding(data: PreparedData) -> str:
    return (
        f"encoded {len(data.x_train):,} training rows into {data.x_train.shape[1]:,} inputs "
        f"({len(data.x_val):,} validation, {len(data.x_test):,} test rows); training …"
    )
