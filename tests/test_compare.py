"""growml compare: shared splits, the widths asked, the verdict, resuming, JSON, user errors."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from growml.cli import app
from typer.testing import CliRunner

import growml
from growml.compare import compare, parse_widths, summarise, verdict
from growml.config import DataConfig
from growml.data import load_table, prepare

runner = CliRunner()
FAST = [("train.epochs", 3), ("growth.every", 1)]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def fast_config(source="iris", *extra):
    return growml.resolve_config(overrides=[("data.source", source), *FAST, *extra])


@pytest.fixture(scope="module")
def iris_comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "iris"
    calls = []
    result = compare(
        fast_config(),
        widths=[[2], [6], [4, 4]],
        seeds=2,
        sklearn=True,
        jobs=1,
        out=out,
        progress=lambda done, total, record: calls.append((done, total, record)),
    )
    return result, calls


def test_members_of_a_seed_share_its_split(iris_comparison):
    result, _ = iris_comparison
    members = result.document["members"]
    table = load_table("iris")
    for seed in (0, 1):
        data = prepare(table, DataConfig(), seed)
        digest = hashlib.sha256(data.x_test.tobytes() + data.y_test.tobytes()).hexdigest()[:16]
        of_seed = [m for m in members if m["seed"] == seed]
        assert len(of_seed) == 1 + 3 + 3  # grown, three fixed, three scikit-learn
        assert {m["test_rows"] for m in of_seed} == {digest}
    assert len({m["test_rows"] for m in members}) == 2
    for member in members:
        if member["run"] is not None:
            run = growml.load_run(result.path / member["run"])
            assert run.config["seed"] == member["seed"]
            assert run.metrics["rows"]["test"] == len(data.y_test)


def test_fixed_members_have_the_widths_asked(iris_comparison):
    result, _ = iris_comparison
    inputs, classes = 4, 3
    for member in result.document["members"]:
        if member["kind"] == "grown":
            assert member["config"]["growth"]["enabled"] is True
            continue
        sizes = [inputs, *member["widths"], classes]
        gate = inputs if member["kind"] == "fixed" else 0  # one scale per column (not sklearn)
        expected = gate + sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))
        assert member["hidden_widths"] == member["widths"]
        assert member["parameters"] == expected
        if member["kind"] == "fixed":
            run = growml.load_run(result.path / member["run"])
            assert run.model.hidden_widths == member["widths"]
            assert run.config["growth"]["enabled"] is False
    labels = [row["label"] for row in result.rows]
    assert labels == [
        "grown",
        "fixed 2",
        "sklearn 2",
        "fixed 6",
        "sklearn 6",
        "fixed 4x2",
        "sklearn 4x2",
    ]


def test_rows_are_the_means_of_the_members(iris_comparison):
    result, calls = iris_comparison
    members = result.document["members"]
    for row in result.rows:
        scores = [m["metrics"]["test"]["accuracy"] for m in members if m["label"] == row["label"]]
        assert row["score"]["mean"] == pytest.approx(np.mean(scores))
        assert row["score"]["sd"] == pytest.approx(np.std(scores, ddof=1))
    assert calls[0] == (0, 14, None)
    assert [done for done, _, _ in calls[1:]] == list(range(1, 15))
    assert (result.path / "plots" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((result.path / "compare.json").read_text())
    assert on_disk["verdict"] == result.verdict and on_disk["status"] == "complete"


def _record(label, kind, seed, score, parameters, wall=1.0):
    return {
        "key": f"{label}-s{seed}",
        "label": label,
        "kind": kind,
        "seed": seed,
        "hidden_widths": [parameters // 10],
        "parameters": parameters,
        "epochs": 10,
        "metrics": {"test": {"accuracy": score}},
        "seconds": {"train": wall / 2, "wall": wall},
        "error": None,
    }


def test_verdict_picks_the_right_rows_on_a_hand_made_result_set():
    scores = {
        "grown": ([0.952, 0.948], 300),
        "fixed 8": ([0.90, 0.92], 100),
        "fixed 16": ([0.947, 0.949], 200),  # 0.948: within half a point of 0.953
        "fixed 32": ([0.953, 0.953], 400),  # the best
        "fixed 64": ([0.951, 0.955], 800),  # as good, larger: not the best
        "sklearn 64": ([0.99, 0.99], 800),  # better, but not one of growml's fixed widths
    }
    records = [
        _record(label, label.split()[0], seed, score, parameters, wall=parameters / 100)
        for label, (values, parameters) in scores.items()
        for seed, score in enumerate(values)
    ]
    records.append({**_record("fixed 128", "fixed", 0, 0.0, 1600), "error": "diverged"})
    rows = summarise(records, "accuracy")
    assert [row["label"] for row in rows][-1] == "fixed 128"
    assert rows[-1]["score"] is None and rows[-1]["failed"] == 1
    result = verdict(rows)
    assert result["best_fixed"]["label"] == "fixed 32"
    assert result["smallest_within"]["label"] == "fixed 16"
    assert result["grown"]["score"] == pytest.approx(0.950)
    assert result["gap"] == pytest.approx(-0.003)
    assert result["matched"] is True
    assert result["parameters_over_smallest_within"] == pytest.approx(1.5)
    assert result["wall_seconds"]["sweep"] == pytest.approx(1 + 2 + 4 + 8)
    assert result["wall_seconds"]["grown_over_sweep"] == pytest.approx(3 / 15)
    assert "matches" in result["summary"][2]
    short = verdict(
        summarise(
            [*records[2:], *[{**r, "metrics": {"test": {"accuracy": 0.9}}} for r in records[:2]]],
            "accuracy",
        )
    )
    assert short["matched"] is False and short["gap"] == pytest.approx(-0.053)
    assert "falls 5.3 points short" in short["summary"][2]


def test_resume_skips_finished_members_and_clears_partial_runs(tmp_path):
    out = tmp_path / "c"
    config = fast_config()
    first = compare(config, widths=[[3], [5]], seeds=2, jobs=1, out=out)
    (out / "members" / "fixed-5-s1.json").unlink()
    (out / "members" / "grown-s0.json").write_text("{ half a reco")  # killed mid-write
    partial = out / "runs" / ".fixed-5-s1.partial-abc"
    partial.mkdir()
    os.utime(partial, (time.time() - 60, time.time() - 60))  # left by a run killed a minute ago
    kept = (out / "members" / "fixed-3-s0.json").stat().st_mtime_ns
    calls = []
    again = compare(
        config, widths=[[3], [5]], seeds=2, jobs=1, out=out, progress=lambda *a: calls.append(a)
    )
    assert calls[0] == (4, 6, None)
    assert sorted(record["key"] for _, _, record in calls[1:]) == ["fixed-5-s1", "grown-s0"]
    assert (out / "members" / "fixed-3-s0.json").stat().st_mtime_ns == kept
    assert not partial.exists()
    assert [row["score"] for row in again.rows] == [row["score"] for row in first.rows]
    # More seeds reuse the members that exist.
    calls.clear()
    compare(
        config, widths=[[3], [5]], seeds=3, jobs=1, out=out, progress=lambda *a: calls.append(a)
    )
    assert calls[0] == (6, 9, None)


@pytest.mark.slow
def test_parallel_workers_give_the_same_figures_as_one_process(tmp_path):
    config = fast_config("wine")
    serial = compare(config, widths=[[4], [8]], seeds=1, jobs=1, out=tmp_path / "a")
    parallel = compare(config, widths=[[4], [8]], seeds=1, jobs=2, out=tmp_path / "b")
    for one, other in zip(serial.document["members"], parallel.document["members"], strict=True):
        assert one["key"] == other["key"]
        assert one["metrics"] == other["metrics"]
        assert one["hidden_widths"] == other["hidden_widths"]


def test_keep_runs_false_leaves_only_the_records(tmp_path):
    result = compare(
        fast_config(), widths=[[3]], seeds=1, jobs=1, out=tmp_path / "c", keep_runs=False
    )
    assert all(member["run"] is None for member in result.document["members"])
    assert not any((tmp_path / "c" / "runs").iterdir())


def test_cli_json_is_one_document_and_report_reads_a_member(tmp_path):
    out = tmp_path / "cmp"
    result = invoke(
        "compare",
        "breast-cancer",
        "--epochs",
        "3",
        "--widths",
        "4,8",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--out",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["metric"] == "accuracy" and document["task"] == "classification"
    assert {row["label"] for row in document["rows"]} == {"grown", "fixed 4", "fixed 8"}
    assert all(row["f1"] is not None for row in document["rows"])  # binary: F1 beside accuracy
    assert document["verdict"]["best_fixed"]["label"] in ("fixed 4", "fixed 8")
    report = invoke("report", out / "runs" / "grown-s0")
    assert report.exit_code == 0, report.output
    assert "Growth" in report.stdout or "hidden widths" in report.stdout


def test_cli_table_shows_every_configuration_and_the_verdict(tmp_path):
    result = invoke(
        "compare",
        "iris",
        "--epochs",
        "3",
        "--widths",
        "4",
        "--seeds",
        "2",
        "--jobs",
        "1",
        "--sklearn",
        "--out",
        tmp_path / "cmp",
    )
    assert result.exit_code == 0, result.output
    for text in ("grown", "fixed 4", "sklearn 4", "Best fixed width: fixed 4", "±"):
        assert text in result.stdout


def test_parse_widths():
    assert parse_widths("8, 16,64x2", 1) == [[8], [16], [64, 64]]
    assert parse_widths("8,16", 2) == [[8, 8], [16, 16]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["iris", "--widths", "8,abc"], "--widths expects comma-separated widths"),
        (["iris", "--widths", "0,8"], "out of range"),
        (["iris", "--widths", "8,8"], "listed twice"),
        (["iris", "--widths", ""], "--widths expects"),
        (["iris", "--widths", "8x0"], "out of range"),
        (["iris", "--seeds", "0"], "--seeds must be between 1"),
        (["iris", "--jobs", "0"], "--jobs must be at least 1"),
        (["no-such-data"], "no-such-data"),
        (["iris", "--metric", "f1"], "--metric f1 does not apply"),
        (["iris", "--metric", "r2"], "--metric r2 does not apply"),
        (["iris", "--sklearn", "--set", "model.activation=gelu"], "no 'gelu' activation"),
        (["iris", "--set", "growth.enabled=false"], "must grow"),
        (["iris", "--set", "data.test_size=0.01"], "fewer than the 3"),
        (["iris", "--set", "data.test_size=0"], "data.test_size=0 leaves none"),
        (["iris", "--set", "train.nope=1"], "unknown setting"),
        (["iris", "--variant", "wide"], "--variant expects a name and settings"),
        (["iris", "--variant", ""], "--variant expects a name and settings"),
        (["iris", "--variant", "Wide growth.max_new_neurons=2"], "variant name 'Wide'"),
        (["iris", "--variant", "w growth.nope=2"], "unknown setting 'growth.nope'"),
    ],
)
def test_user_errors_are_one_sentence_and_leave_no_directory(tmp_path, args, message):
    out = tmp_path / "cmp"
    result = invoke("compare", *args, "--epochs", "2", "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not out.exists()


def test_a_split_too_small_for_the_data_is_refused_before_anything_is_written(tmp_path, write_csv):
    path = write_csv("x,y\n" + "".join(f"{i},{'a' if i % 2 else 'b'}\n" for i in range(12)))
    result = invoke(
        "compare", path, "--target", "y", "--set", "data.test_size=0.05", "--out", tmp_path / "c"
    )
    assert result.exit_code == 2 and "test part would have 1 rows" in result.output
    assert not (tmp_path / "c").exists()


def test_out_of_other_settings_or_other_content_is_refused(tmp_path):
    out = tmp_path / "c"
    compare(fast_config(), widths=[[3]], seeds=1, jobs=1, out=out)
    result = invoke(
        "compare", "iris", "--epochs", "4", "--widths", "3", "--seeds", "1", "--out", out
    )
    assert result.exit_code == 2 and "other data or settings" in result.output
    result = invoke(
        "compare",
        "iris",
        "--epochs",
        "4",
        "--widths",
        "3",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--out",
        out,
        "--overwrite",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["train"]["epochs"] == 4
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    result = invoke("compare", "iris", "--out", tmp_path / "notes", "--overwrite")
    assert result.exit_code == 2 and "not a growml comparison directory" in result.output
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"


def test_a_variant_with_new_settings_is_trained_again(tmp_path):
    out, config = tmp_path / "c", fast_config()
    first = compare(
        config, [[3]], 1, variants={"few": [("growth.max_new_neurons", 1)]}, out=out, jobs=1
    )
    calls = []
    second = compare(
        config,
        [[3]],
        1,
        variants={"few": [("growth.max_new_neurons", 2)]},
        out=out,
        jobs=1,
        progress=lambda *a: calls.append(a),
    )
    assert calls[0] == (2, 3, None) and calls[1][2]["key"] == "few-s0"
    assert [m["label"] for m in second.document["members"]] == ["grown", "few", "fixed 3"]
    few = [
        member["config"]["growth"]["max_new_neurons"]
        for result in (first, second)
        for member in result.document["members"]
        if member["label"] == "few"
    ]
    assert few == [1, 2]


@pytest.mark.parametrize("when", ["auto", "after-growth"])
def test_pruning_applies_to_every_member(tmp_path, when):
    config = fast_config(
        "iris",
        ("prune.method", "synflow"),
        ("prune.compression", 2.0),
        ("prune.structured", True),
        ("prune.when", when),
    )
    result = compare(config, [[8]], 1, out=tmp_path / "c", jobs=1)
    pruned = {
        member["kind"]: growml.load_run(result.path / member["run"]).metrics["prune"]
        for member in result.document["members"]
    }
    assert pruned["grown"]["when"] == "after-growth"
    assert pruned["fixed"]["when"] == "at-init"
    assert pruned["fixed"]["parameters_before"] == 4 + 4 * 8 + 8 + 8 * 3 + 3  # gate, layers
    assert result.document["members"][1]["parameters"] < pruned["fixed"]["parameters_before"]


def test_regression_ranks_by_r2(tmp_path):
    result = compare(fast_config("friedman"), [[4]], 1, out=tmp_path / "c", jobs=1, sklearn=True)
    assert result.document["metric"] == "r2"
    for member in result.document["members"]:
        assert set(member["metrics"]["test"]) == {"rmse", "mae", "r2"}
    assert all(row["f1"] is None for row in result.rows)


@pytest.mark.slow
def test_a_comparison_killed_outright_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "c"
    args = ["compare", "iris", "--epochs", "3", "--widths", "2,3,4,5,6,7,8,9", "--seeds", "3"]
    command = [str(Path(sys.executable).parent / "growml"), *args, "--jobs", "2", "--out", out]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((out / "members").glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # A partial run younger than 2 s may be one whose writer has not taken its lock yet and is
    # left alone (runs/workdir.py); the killed members' partials are older by the time the
    # comparison is run again.
    time.sleep(2.5)
    assert json.loads((out / "compare.json").read_text())["status"] == "running"
    recorded = {path.name for path in (out / "members").glob("*.json")}
    calls = []
    config = growml.resolve_config(overrides=[("data.source", "iris"), ("train.epochs", 3)])
    widths = [[w] for w in range(2, 10)]
    result = compare(config, widths, 3, out=out, jobs=1, progress=lambda *a: calls.append(a))
    assert calls[0][0] >= len(recorded) >= 3
    assert not {record["key"] + ".json" for _, _, record in calls[1:]} & recorded
    assert len(result.document["members"]) == 27
    assert not list((out / "runs").glob(".*"))
