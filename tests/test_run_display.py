"""What fit and report show a user: fit's first lines before torch loads, a report without
torch, one training time and one wall time under the same names everywhere, whose metrics
they are, the growth legend, pruning in the summary, reports of comparisons and studies, and
plots whose every axis says what it measures."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from growml.cli import app
from growml.cli.runview import GROWTH_LEGEND
from typer.testing import CliRunner

import growml
from growml.events import EpochEnd, GrowthStep
from growml.runs.files import read_history

runner = CliRunner()
FAST = ["--epochs", "3", "--fixed", "4"]
DOCS = Path(__file__).parent.parent / "docs" / "growth.md"
READ_IRIS = "read iris: 150 rows, 4 feature columns, target 'target' (classification)"
ENCODED_IRIS = "encoded 90 training rows into 4 inputs (30 validation, 30 test rows); training …"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def command(*args, cwd):
    """``growml ARGS`` as a fresh process that logs every import on stderr, in order with
    what the command itself writes there."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "growml.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _import_line(lines, module):
    """The index of the line that logs ``module``'s import; None when it was not imported."""
    pattern = rf"\|\s+{re.escape(module)}$"
    return next((i for i, line in enumerate(lines) if re.search(pattern, line)), None)


def _copy_run(run, copy):
    """The files of ``run`` in a new directory ``copy`` as a run of format 2 (before digests)
    wrote them, to edit as such a run may have been."""
    copy.mkdir()
    for path in run.iterdir():
        if path.is_file() and path.name != "digests.json":
            (copy / path.name).write_bytes(path.read_bytes())
    model = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**model, "format_version": 2}))
    return copy


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("display") / "iris"
    result = invoke("fit", "iris", *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


def test_an_existing_out_is_refused_before_reading_in_one_line(iris_run):
    run, _ = iris_run
    result = invoke("fit", "iris", *FAST, "--out", run)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and "already exists" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_on_a_terminal_fit_says_it_is_reading_before_anything_loads(tmp_path):
    pty = pytest.importorskip("pty")
    import os

    args = [sys.executable, "-X", "importtime", "-m", "growml.cli", "fit", "iris", *FAST]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: growml on a terminal
        os.chdir(tmp_path)
        os.execv(sys.executable, [*args, "--out", "run"])
    written = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child is gone
            break
        if not chunk:
            break
        written += chunk
    os.waitpid(pid, 0)
    lines = written.decode(errors="replace").splitlines()
    reading = next(i for i, line in enumerate(lines) if "reading iris …" in line)
    read = next(i for i, line in enumerate(lines) if line.endswith(READ_IRIS))
    encoded = next(i for i, line in enumerate(lines) if line.endswith(ENCODED_IRIS))
    assert reading < _import_line(lines, "sklearn")  # said before the data's heavy imports
    assert read < encoded < _import_line(lines, "torch")  # read and encoded before torch


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--target", "y"], "single class"),  # in the data
        (["--target", "x", "--task", "regression", "--set", "train.lr=1e12"], "diverged"),
    ],
    ids=["data", "training"],
)
def test_in_a_pipe_a_mistake_is_the_only_line_fit_writes(tmp_path, write_csv, args, words):
    rows = "\n".join(f"{i},{i % 7},same" for i in range(40))
    path = write_csv("a,x,y\n" + rows + "\n")
    result = invoke("fit", path, *args, "--fixed", "4", "--epochs", "3", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_of_a_run_imports_no_torch(iris_run, tmp_path):
    run, _ = iris_run
    done = command("report", run, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    for heavy in ("torch", "sklearn", "optuna", "onnx", "matplotlib"):
        assert _import_line(lines, heavy) is None, heavy
    assert "Metrics of the kept model" in done.stdout and "hidden widths" in done.stdout


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda model: model.pop("task"), "task: field required"),
        (lambda model: model.update(hidden_widths="five"), "hidden_widths: input should be"),
        (lambda model: model.update(task="clustering"), "task: input should be"),
    ],
    ids=["no task", "widths not a list", "unknown task"],
)
def test_report_refuses_a_model_description_it_cannot_show(iris_run, tmp_path, edit, problem):
    copy = _copy_run(iris_run[0], tmp_path / "run")
    model = json.loads((copy / "model.json").read_text())
    edit(model)
    (copy / "model.json").write_text(json.dumps(model))
    result = invoke("report", copy)
    assert result.exit_code == 2, result.output
    assert "does not describe a growml model" in result.stderr and problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_shows_a_run_whose_settings_lack_what_it_names(iris_run, tmp_path):
    copy = _copy_run(iris_run[0], tmp_path / "run")
    (copy / "config.yaml").write_text("data: 5\ntrain: [1]\n")
    result = invoke("report", copy)
    assert result.exit_code == 0, result.output
    assert re.search(r"data\s+\?", result.stdout)
    best = json.loads((copy / "metrics.json").read_text())["best_epoch"]
    assert f"the kept model (weights of epoch {best}: best validation epoch)" in result.stdout


def test_a_run_is_checked_against_the_activations_the_network_has():
    from typing import get_args

    from growml.config import Activation
    from growml.nn import ACTIVATIONS

    assert set(get_args(Activation)) == set(ACTIVATIONS)  # the names report checks, torch-free


def test_training_time_and_wall_time_have_one_name_everywhere(iris_run):
    run, fitted = iris_run
    seconds = json.loads((run / "metrics.json").read_text())["seconds"]
    assert set(seconds) == {"data", "train", "per_epoch", "wall"}
    assert seconds["data"] <= seconds["wall"] and seconds["train"] <= seconds["wall"]
    reported = invoke("report", run).stdout
    for shown in (fitted.stdout, reported):
        assert re.search(rf"training time\s+{seconds['train']:.2f} s \(", shown)
        assert re.search(rf"wall time\s+{seconds['wall']:.2f} s", shown)
        assert " time " not in shown.replace("training time", "").replace("wall time", "")


def test_a_run_written_with_the_old_name_of_the_wall_time_reports_it(tmp_path, iris_run):
    old = _copy_run(iris_run[0], tmp_path / "old")
    metrics = json.loads((old / "metrics.json").read_text())
    metrics["seconds"]["total"] = 12.5
    del metrics["seconds"]["wall"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    result = invoke("report", old)
    assert result.exit_code == 0, result.output
    assert re.search(r"wall time\s+12\.50 s", result.stdout)


def test_the_metrics_shown_are_labelled_as_the_kept_models(iris_run):
    run, fitted = iris_run
    best = json.loads((run / "metrics.json").read_text())["best_epoch"]
    kept = f"the kept model (weights of epoch {best}: best validation loss)"
    assert f"growml fit iris: {kept}" in fitted.stdout
    assert f"Metrics of {kept}" in invoke("report", run).stdout


def test_fit_help_and_the_docs_explain_every_symbol_of_the_growth_lines():
    shown = invoke("fit", "--help").stdout
    docs = DOCS.read_text().split("## Reading the growth lines", 1)[1]
    for line in GROWTH_LEGEND:
        assert line in shown  # kept as written, not rewrapped
    for symbol, meaning in (("λ₁", "score"), ("γ", "amplitude"), ("FO", "first-order")):
        assert re.search(rf"^\s+{symbol}\s+.*{meaning}", shown, re.M), symbol
        assert re.search(rf"^\| `{symbol}` \|.*{meaning}", docs, re.M), symbol


def test_the_growth_lines_use_only_symbols_the_legend_explains(tmp_path):
    result = invoke("fit", "iris", "--epochs", "12", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    steps = [e for e in read_history(tmp_path / "run") if isinstance(e, GrowthStep) and e.added]
    assert steps, "iris grows in 12 epochs"
    grown = [line for line in result.stderr.splitlines() if re.match(r"epoch +\d+: layer", line)]
    symbols = {symbol for line in grown for symbol in re.findall(r"[^\x00-\x7f→·…]", line)}
    legend = "\n".join(GROWTH_LEGEND)
    assert symbols and all(symbol in legend for symbol in symbols)


@pytest.mark.parametrize("structured", [True, False])
def test_fit_summary_shows_what_pruning_removed(tmp_path, structured):
    out = tmp_path / "run"
    result = invoke(
        "fit", "iris", "--fixed", "32", "--epochs", "3", "--prune", "synflow",
        "--set", "prune.compression=4", "--set", f"prune.structured={str(structured).lower()}",
        "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pruning = json.loads((out / "metrics.json").read_text())["prune"]
    assert pruning["weights_before"] >= 4 * pruning["weights_after"] > 0
    weights = (
        f"prunable weights {pruning['weights_before']:,} → {pruning['weights_after']:,} "
        f"({pruning['compression']:.1f}×)"
    )
    if structured:
        assert pruning["parameters_before"] > pruning["parameters_after"]
        shown = f"{weights}, parameters {pruning['parameters_before']:,} → "
        shown += f"{pruning['parameters_after']:,}"
    else:
        shown = f"{weights}, masked as zeros among the {pruning['parameters_after']:,} parameters"
    assert re.search(rf"pruning\s+{re.escape(shown)}", result.stdout)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    result = invoke(
        "compare", "iris", "--epochs", "3", "--widths", "4", "--seeds", "1", "--jobs", "1",
        "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result


def test_report_shows_a_comparison_as_compare_did(comparison):
    out, compared = comparison
    result = invoke("report", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == compared.stdout
    assert "growml compare iris" in result.stdout and "training s" in result.stdout
    document = json.loads(invoke("report", out, "--json").stdout)
    assert document == json.loads((out / "compare.json").read_text())


def test_report_refuses_an_unfinished_comparison(comparison, tmp_path):
    out, _ = comparison
    document = json.loads((out / "compare.json").read_text())
    unfinished = tmp_path / "cmp"
    (unfinished / "members").mkdir(parents=True)
    (unfinished / "compare.json").write_text(json.dumps({**document, "status": "running"}))
    result = invoke("report", unfinished)
    assert result.exit_code == 2
    assert "has not finished (0 members recorded)" in result.stderr
    assert "run the same growml compare command again" in result.stderr


def test_report_shows_a_study_as_tune_did(tmp_path):
    out = tmp_path / "tune"
    tuned = invoke("tune", "iris", "--epochs", "3", "--trials", "2", "--out", out)
    assert tuned.exit_code == 0, tuned.output
    result = invoke("report", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == tuned.stdout
    assert "growml tune iris" in result.stdout and "wall time" in result.stdout
    assert json.loads(invoke("report", out, "--json").stdout) == json.loads(
        (out / "tune.json").read_text()
    )
    document = json.loads((out / "tune.json").read_text())
    # Trials still running: the ones finished so far, and a note that others run.
    (out / "tune.json").write_text(json.dumps({**document, "status": "running"}))
    running = invoke("report", out)
    assert running.exit_code == 0, running.output
    assert running.stdout.startswith(tuned.stdout)
    assert "Trials were still running when tune.json was written" in running.stdout
    # The first growml tune of a study, still running: nothing finished is written yet.
    header = {key: document[key] for key in ("format_version", "study", "storage", "data")}
    (out / "tune.json").write_text(json.dumps({**header, "status": "running"}))
    refused = invoke("report", out)
    assert refused.exit_code == 2 and "has no results yet" in refused.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: None, "does not exist"),
        (lambda path: path.mkdir(), "is not a run, comparison, tune or experiment directory"),
        (
            lambda path: path.write_text("a,b\n"),
            "is not a run, comparison, tune or experiment directory",
        ),
    ],
    ids=["missing", "empty folder", "a file"],
)
def test_report_of_anything_else_is_one_sentence(tmp_path, make, message):
    path = tmp_path / "thing"
    make(path)
    result = invoke("report", path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _axes_without_labels(figure):
    figure.canvas.draw()
    missing = []
    for number, axis in enumerate(figure.axes):
        for name, label, ticks in (
            ("x", axis.get_xlabel(), axis.get_xticklabels()),
            ("y", axis.get_ylabel(), axis.get_yticklabels()),
        ):
            if not label.strip() or not any(tick.get_text() for tick in ticks):
                missing.append(f"axes {number} {name}")
    return missing


def test_every_axis_of_a_runs_plots_is_labelled(tmp_path):
    from growml.losses.threshold import choose_threshold
    from growml.runs.plots import growth_figure, threshold_figure

    result = invoke("fit", "iris", "--epochs", "12", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    history = read_history(tmp_path / "run")
    assert any(isinstance(e, EpochEnd) for e in history)
    assert _axes_without_labels(growth_figure(history, "accuracy")) == []
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probability = (labels + rng.normal(0, 0.6, 200)).clip(0, 1)
    choice = choose_threshold(probability, labels, "f1", 1.0, (0.01, 0.99), seed=0)
    assert _axes_without_labels(threshold_figure(choice, "f1")) == []


def test_every_axis_of_the_comparison_plot_is_labelled(comparison):
    from growml.compare.plots import compare_figure

    out, _ = comparison
    document = json.loads((out / "compare.json").read_text())
    figure = compare_figure(document)
    assert _axes_without_labels(figure) == []
    assert figure.axes[1].get_xlabel() == "wall time per run (s)"


def test_every_axis_of_a_studys_plots_is_labelled(tmp_path, monkeypatch):
    import optuna

    from growml.runs import plots
    from growml.tune.results import draw_plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(figure))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(lambda trial: (trial.suggest_float("lr", 1e-3, 1e-1, log=True), trial.number), 6)
    assert len(draw_plots(study, tmp_path, ["metric", "params"], "accuracy")) == len(drawn) == 3
    for figure in drawn:
        assert _axes_without_labels(figure) == []


def test_the_python_api_measures_the_wall_time_of_its_own_call(tmp_path):
    config = growml.resolve_config(overrides=[("data.source", "iris"), ("train.epochs", 2)])
    metrics = growml.fit(config, out=tmp_path / "run").metrics
    assert 0 < metrics["seconds"]["train"] <= metrics["seconds"]["wall"] < 60


def test_fine_tuning_after_pruning_has_its_own_progress_line_written_once(tmp_path):
    result = invoke(
        "fit", "iris", "--epochs", "12", "--prune", "synflow", "--set", "prune.structured=true",
        "--set", "prune.compression=1.5", "--set", "growth.trim=false", "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bars = [line for line in result.stderr.splitlines() if line.startswith("epoch  12/12")]
    assert len(bars) == len(set(bars)) == 2  # the growing training's, then fine-tuning's


def test_a_growth_step_reads_the_same_in_fit_and_in_verbose_estimators():
    from growml.events import GrowthStep
    from growml.sklearn.progress import progress_line

    grown = GrowthStep(
        *(12, 0, "pool", 3, [0.41], 0.1, 0.2, 1.0, 0.512, 0.43, [], [], [9], 40, 0.01),
        reason="added",
        finished=False,
    )
    assert grown.describe() == ("epoch  12: layer 1 +3 (λ₁ 0.41, γ 1) loss 0.512 → 0.430, widths 9")
    assert progress_line(grown) == grown.describe()
    # A step that measured no layer at all says so (it once could not be shown).
    nothing = GrowthStep(
        *(5, None, "pool", 0, [], 0.0, 0.0, 0.0, None, None, [], [], [1], 4, 0.01),
        reason="no layer could be measured",
        finished=False,
    )
    assert nothing.describe() == "epoch   5: nothing grown: no layer could be measured"
