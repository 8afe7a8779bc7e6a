"""How results look in a terminal: rich tables and progress bars (a run's own: ``runview``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from growml.data.columns import ColumnReading


def number(value: Any) -> str:
    """A cell: floats to four decimals, anything else as it prints."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def summary_table(rows: dict[str, Any], title: str | None = None) -> Table:
    """A two-column key/value table."""
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, number(value))
    return table


def settings_table(rows: list[Any]) -> Table:
    """The dotted settings: path, default, choices or kind, meaning."""
    table = Table(title="Settings (--set path=value, or a recipe)", title_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("default")
    table.add_column("choices or kind")
    table.add_column("meaning")
    for info in rows:
        default = _default_value(info.default)
        table.add_row(info.path, default, info.kind, info.meaning)
    return table


def _default_value(value: Any) -> str:
    """A default as a recipe writes it: none, true, false."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return str(value)


def predictions_table(predictions: Any, limit: int = 20) -> Table:
    """The first ``limit`` rows of a prediction table."""
    table = Table(title=f"{predictions.num_rows} predictions", title_justify="left")
    for name in predictions.column_names:
        table.add_column(name, justify="right")
    for row in predictions.slice(0, limit).to_pylist():
        table.add_row(*(number(value) for value in row.values()))
    if predictions.num_rows > limit:
        table.caption = f"first {limit} of {predictions.num_rows} rows; --out FILE writes all"
    return table


def datasets_table(rows: list[dict[str, Any]], width: int) -> Table:
    """The built-ins; descriptions only when the terminal is wide enough to keep rows on a line."""
    with_description = width >= 120
    table = Table(title="Built-in datasets", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("features", justify="right")
    table.add_column("classes (share of rows)")
    if with_description:
        table.add_column("description", overflow="fold")
    for row in rows:
        cells = [
            row["name"],
            row["task"],
            str(row["rows"]),
            str(row["features"]),
            describe_balance(row["class_balance"]),
        ]
        table.add_row(*cells, *([row["description"]] if with_description else []))
    return table


def describe_balance(balance: dict[str, float] | None) -> str:
    """``None`` → "—"; up to three classes → each share; more → count and the share range."""
    if not balance:
        return "—"
    shares = list(balance.values())
    if len(balance) <= 3:
        return ", ".join(f"{label} {share:.0%}" for label, share in balance.items())
    return f"{len(balance)} classes, {min(shares):.1%}–{max(shares):.1%}"


def progress_bar(console: Console, unit: str, width: int, auto_refresh: bool = True) -> Progress:
    """``unit done/total``, a bar, a status line and the time elapsed; ``auto_refresh``:
    redrawn by a thread of its own (else at each update)."""
    return Progress(
        TextColumn(f"{unit} {{task.completed:>3}}/{{task.total}}"),
        BarColumn(bar_width=width),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        auto_refresh=auto_refresh,
    )


_METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "f1": "F1", "r2": "R²"}


def compare_table(document: dict[str, Any]) -> Table:
    """A comparison: one row per configuration, scores in points as mean ± sd over seeds."""
    metric = document["metric"]
    rows = document["rows"]
    with_f1 = metric != "f1" and any(row["f1"] for row in rows)
    seeds = len(document["seeds"])
    table = Table(
        title=f"growml compare {document['data']}: test {_METRIC_NAMES[metric]} over "
        f"{seeds} seed{'s' if seeds > 1 else ''}, mean ± sd in points",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("config", no_wrap=True)
    heading = "100·R²" if metric == "r2" else _METRIC_NAMES[metric]
    table.add_column(heading, justify="right", no_wrap=True)
    if with_f1:
        table.add_column("F1", justify="right", no_wrap=True)
    for column in ("widths", "params", "epochs", "training s", "wall s"):
        table.add_column(column, justify="right")
    best = document["verdict"].get("best_fixed", {}).get("label")
    for row in rows:
        if row["score"] is None:
            cells = [f"failed: {row['errors'][0]}" if row["errors"] else "—"]
            cells += [""] * (5 + with_f1)
        else:
            cells = [_mean_sd(row["score"])]
            if with_f1:
                cells.append(_mean_sd(row["f1"]) if row["f1"] else "—")
            cells += [
                describe_widths(row["widths"]),
                f"{row['parameters']:,.0f}",
                f"{row['epochs']:.0f}",
                f"{row['train_seconds']:.2f}",
                f"{row['wall_seconds']:.2f}",
            ]
            if row["failed"]:
                cells[0] += f" ({row['failed']} failed)"
        style = "bold" if row["kind"] == "grown" else ("green" if row["label"] == best else None)
        table.add_row(row["label"], *cells, style=style)
    return table


def _mean_sd(score: dict[str, float]) -> str:
    return f"{100 * score['mean']:.1f} ± {100 * score['sd']:.1f}"


def describe_widths(widths: list[list[int]]) -> str:
    """The widths reached over seeds: ``64``; ``3–5`` for one layer; ``3,2 / 4,4`` for more."""
    distinct = sorted({tuple(w) for w in widths})
    if len(distinct) == 1:
        return ",".join(str(w) for w in distinct[0])
    if all(len(w) == 1 for w in distinct):
        return f"{distinct[0][0]}–{distinct[-1][0]}"
    return " / ".join(",".join(str(w) for w in network) for network in distinct)


class CompareProgress:
    """A rich progress bar over a comparison's members (its ``progress`` callback)."""

    def __init__(self, console: Console) -> None:
        self.progress = progress_bar(console, "members", 24)
        self.task_id: Any = None

    def __call__(self, done: int, total: int, record: dict[str, Any] | None) -> None:
        if self.task_id is None:
            self.progress.start()
            status = f"{done} already recorded" if done else ""
            self.task_id = self.progress.add_task("compare", total=total, status=status)
        status = ""
        if record is not None:
            if record["error"]:
                status = f"{record['key']}: failed"
            else:
                widths = ",".join(str(w) for w in record["hidden_widths"])
                wall = record["seconds"]["wall"]
                status = f"{record['key']}: widths {widths}, wall time {wall:.1f} s"
        self.progress.update(self.task_id, completed=done, status=status)

    def stop(self) -> None:
        if self.task_id is not None:  # a bar never started would print an empty line
            self.progress.stop()


def export_table(result: dict[str, Any]) -> Table:
    """What ``growml export`` wrote and how closely it follows the run."""
    verdict = "labels equal" if result["label_mismatches"] == 0 else "labels differ"
    return summary_table(
        {
            "file": result["path"],
            "opset": result["opset"],
            "size": f"{result['size_bytes'] / 1024:.1f} KiB",
            "nodes": result["nodes"],
            "inputs": f"{result['inputs']} (numbers as {result['number_type']})",
            "max difference": f"{result['max_difference']:.2g} (allowed "
            f"{result['tolerance']:.0e}) on {result['verified_rows']} test rows, {verdict}",
            "wall time": f"{result['seconds']:.2f} s",
        },
        title="growml export",
    )


class TuneProgressBar:
    """A rich progress bar over a study's trials (the ``progress`` callback of ``tune``)."""

    def __init__(self, console: Console) -> None:
        self.progress = progress_bar(console, "trials", 24)
        self.task_id: Any = None

    def __call__(self, state: Any) -> None:
        if self.task_id is None:
            if state.earlier:
                self.progress.console.print(
                    f"continuing the study after its {state.earlier} trials"
                )
            self.progress.start()
            self.task_id = self.progress.add_task("tune", total=state.total, status="")
        best = "—" if state.best is None else f"{state.best:.4f}"
        status = f"pruned {state.pruned} · failed {state.failed} · best {best}"
        self.progress.update(self.task_id, completed=state.done, status=status)

    def stop(self) -> None:
        if self.task_id is not None:  # a bar never started would print an empty line
            self.progress.stop()


def tune_table(document: dict[str, Any]) -> Table:
    """The best trials of a study (the Pareto front for two objectives): the validation metric,
    the network and the settings that made it."""
    pareto = len(document["directions"]) > 1
    metric = document["metric"]
    kind = "Pareto front" if pareto else "best trials"
    table = Table(
        title=f"growml tune {document['data']}: {kind}, validation {_METRIC_NAMES[metric]}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("trial", justify="right")
    table.add_column("100·R²" if metric == "r2" else _METRIC_NAMES[metric], justify="right")
    table.add_column("widths", justify="right")
    table.add_column("params", justify="right")
    table.add_column("settings", overflow="fold")
    for trial in document["best"]:
        names = _short_names(list(trial["settings"]))
        settings = " ".join(
            f"{names[path]}={_setting_value(value)}" for path, value in trial["settings"].items()
        )
        table.add_row(
            str(trial["number"]),
            f"{100 * trial['value']:.1f}",
            ",".join(str(w) for w in trial["hidden_widths"] or []),
            f"{trial['parameters']:,}",
            settings,
        )
    if not document["best"]:
        table.caption = "no trial completed" + (
            " within tune.max_params" if document.get("max_params") else ""
        )
    return table


def _short_names(paths: list[str]) -> dict[str, str]:
    """``train.lr`` → ``lr``, unless another path ends the same way (``train.patience``,
    ``growth.patience``)."""
    leaves = [path.rsplit(".", 1)[-1] for path in paths]
    return {
        path: leaf if leaves.count(leaf) == 1 else path
        for path, leaf in zip(paths, leaves, strict=True)
    }


def _setting_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tune_summary(document: dict[str, Any], path: str) -> dict[str, Any]:
    """The study in a few lines: where it lives, its trials, where the best run is."""
    counts = document["trials"]
    this_run = document["this_run"]
    rows = {
        "study": f"{document['study']} ({document['storage']})",
        "trials": f"{counts['total']} in the study: {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['fail']} failed"
        + (f", {counts['running']} still running elsewhere" if counts["running"] else ""),
        "this run": f"{this_run['trials']} trials, wall time {this_run['seconds']:.1f} s "
        f"({this_run['jobs']} worker{'s' if this_run['jobs'] > 1 else ''})"
        + (f", after {this_run['earlier']} earlier" if this_run.get("earlier") else ""),
        "best run": f"{path}/{document['best_run']}" if document["best_run"] else "—",
        "results": f"{path}/tune.json",
    }
    if document["plots"]:
        rows["plots"] = ", ".join(f"{path}/{plot}" for plot in document["plots"])
    for reason, count in list(document["failures"].items())[:3]:
        rows.setdefault("failed because", f"{reason} ({count}×)")
    return rows


def columns_table(readings: Sequence[ColumnReading]) -> Table:
    """How each input column was read: as what, how many values missing, and what besides
    empty fields was read as missing (marks such as ``?``, stray text, infinite numbers)."""
    table = Table(title="Columns", title_justify="left")
    table.add_column("column")
    table.add_column("read as")
    table.add_column("missing", justify="right")
    table.add_column("read as missing")
    for reading in readings:
        missing = "" if reading.read_as == "dropped" else str(reading.missing)
        table.add_row(reading.name, reading.description(), missing, reading.made_missing())
    return table
