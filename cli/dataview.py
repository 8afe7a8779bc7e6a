"""How reading a large file looks in a terminal: one progress bar per pass over the file
(``growml.events.DataProgress``: reading, statistics, encoding)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from growml.events import DataProgress, Event

_STEPS = {
    "reading": "reading rows and targets",
    "statistics": "fitting the preprocessing",
    "encoding": "encoding into the cache",
}


class DataProgressBars:
    """An observer of ``DataProgress`` events: a bar per step, kept on screen when done.
    ``quiet``: shows nothing (a pipe or ``--json``)."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[amount]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> DataProgressBars:
        if not self.quiet:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.quiet:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        if self.quiet or not isinstance(event, DataProgress):
            return
        if event.step not in self.tasks:
            description = _STEPS.get(event.step, event.step)
            self.tasks[event.step] = self.progress.add_task(
                description, total=event.total, amount=""
            )
        self.progress.update(self.tasks[event.step], completed=event.done, amount=_amount(event))


def _amount(event: DataProgress) -> str:
    if event.unit == "bytes":
        return DownloadColumn().render(_Done(event)).plain
    return f"{event.done:,}/{event.total:,} rows"


class _Done:
    """What ``DownloadColumn`` reads of a task."""

    def __init__(self, event: DataProgress) -> None:
        self.completed = event.done
        self.total = event.total
