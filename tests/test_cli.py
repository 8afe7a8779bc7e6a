"""The command line: happy paths, and every user error as one sentence with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from growml.cli import app
from typer.testing import CliRunner

import growml

runner = CliRunner()
FAST = ["--epochs", "3", "--fixed", "4"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _leftovers(root):
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_fit_writes_a_complete_run_directory(tmp_path):
    out = tmp_path / "runs" / "iris"
    result = invoke("fit", "iris", *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "config.yaml",
            "model.safetensors",
            "model.json",
            "preprocess.json",
            "metrics.json",
            "history.jsonl",
            "plots",
            "digests.json",
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert {"accuracy", "macro_f1", "log_loss"} <= set(metrics[split])
    assert metrics["parameters"] == 4 + 4 * 4 + 4 + 4 * 3 + 3  # the feature gate, the layers
    model = json.loads((out / "model.json").read_text())
    assert model["hidden_widths"] == [4] and model["activation"] == "relu"
    assert model["task"] == "classification" and len(model["classes"]) == 3
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [e["event"] for e in history] == ["train_start", "epoch", "epoch", "epoch", "train_end"]
    assert "test" in result.stdout and "accuracy" in result.stdout
    assert _leftovers(out.parent) == ["iris"]


def test_fit_json_is_one_document_on_stdout(tmp_path):
    result = invoke("fit", "breast-cancer", *FAST, "--out", tmp_path / "bc", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["metrics"]["task"] == "classification"
    assert "f1" in document["metrics"]["test"]


def test_regression_reports_rmse_and_r2(tmp_path):
    result = invoke(
        "fit", "friedman", "--epochs", "30", "--fixed", "16", "--out", tmp_path / "f", "--json"
    )
    assert result.exit_code == 0, result.output
    test = json.loads(result.stdout)["metrics"]["test"]
    assert test["r2"] > 0.5 and test["rmse"] > 0


def test_recipe_and_set_override_defaults_and_are_saved(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "data: {source: wine}\ntrain: {lr: 0.01, epochs: 2}\nmodel: {hidden_widths: [3]}\n"
    )
    out = tmp_path / "run"
    result = invoke(
        "fit",
        "--recipe",
        recipe,
        "--set",
        "train.lr=0.02",
        "--set",
        "model.activation=tanh",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    saved = growml.load_run(out).config
    assert saved["data"]["source"] == "wine"
    assert saved["train"]["lr"] == 0.02 and saved["train"]["epochs"] == 2
    assert saved["model"]["activation"] == "tanh"
    # The saved config is itself a recipe that reproduces the run.
    again = invoke("fit", "--recipe", out / "config.yaml", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    first = json.loads((out / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first["test"] == second["test"]


def test_existing_run_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    assert invoke("fit", "iris", *FAST, "--out", out).exit_code == 0
    before = (out / "model.safetensors").read_bytes()
    refused = invoke("fit", "iris", *FAST, "--seed", "3", "--out", out)
    assert refused.exit_code == 2 and "already exists" in refused.stderr
    assert (out / "model.safetensors").read_bytes() == before
    replaced = invoke("fit", "iris", *FAST, "--seed", "3", "--out", out, "--overwrite")
    assert replaced.exit_code == 0
    assert (out / "model.safetensors").read_bytes() != before
    assert _leftovers(tmp_path) == ["run"]


def test_report_shows_the_run(tmp_path):
    out = tmp_path / "run"
    invoke("fit", "iris", *FAST, "--out", out)
    result = invoke("report", out)
    assert result.exit_code == 0, result.output
    assert "hidden widths" in result.stdout and "accuracy" in result.stdout
    assert json.loads(invoke("report", out, "--json").stdout)["model"]["hidden_widths"] == [4]


def test_datasets_lists_every_builtin():
    result = invoke("datasets", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {
        "digits",
        "breast-cancer",
        "wine",
        "iris",
        "mnist1d",
        "moons",
        "circles",
        "imbalanced",
        "friedman",
        "spirals",
        "xor",
        "sine",
        "diabetes",
        "many-features",
        "clusters",
        "checkerboard",
    }
    assert rows["digits"]["rows"] == 1797 and rows["digits"]["features"] == 64
    assert rows["friedman"]["task"] == "regression" and rows["friedman"]["class_balance"] is None
    positives = min(rows["imbalanced"]["class_balance"].values())
    assert 0.03 < positives < 0.07
    assert "mnist1d" in invoke("datasets").stdout


def test_csv_with_categories_and_missing_values_predicts_from_raw_rows(tmp_path, write_csv):
    rng = np.random.default_rng(0)
    lines = ["size,colour,label"]
    for i in range(300):
        colour = ["red", "green", "blue"][i % 3]
        size = "" if i % 17 == 0 else f"{rng.normal():.3f}"
        label = "big" if (colour == "red") != (i % 2 == 0) else "small"
        lines.append(f"{size},{colour},{label}")
    path = write_csv("\n".join(lines) + "\n")
    out = tmp_path / "run"
    result = growml.fit(
        growml.resolve_config(
            overrides=[
                ("data.source", str(path)),
                ("data.target", "label"),
                ("train.epochs", 5),
                ("model.hidden_widths", [4]),
            ]
        ),
        out=out,
    )
    loaded = growml.load_run(out)
    raw = result.data.raw_test
    np.testing.assert_array_equal(loaded.predict(raw), result.run.predict(raw))
    np.testing.assert_allclose(loaded.predict_proba(raw), result.run.predict_proba(raw))
    assert set(loaded.predict(raw)) <= {"big", "small"}
    records = [{"size": 0.1, "colour": "purple"}, {"size": None, "colour": "red"}]
    assert len(loaded.predict(records)) == 2


def test_same_seed_same_result_different_seed_different(tmp_path):
    def run(seed, name):
        invoke(
            "fit", "wine", "--epochs", "5", "--fixed", "8", "--seed", seed, "--out", tmp_path / name
        )
        return (tmp_path / name / "model.safetensors").read_bytes()

    assert run(1, "a") == run(1, "b")
    assert run(1, "a2") != run(2, "c")


def test_import_growml_does_not_pull_in_the_cli_stack():
    code = (
        "import sys, growml, growml.compare; "
        "print(any(m in sys.modules for m in ('typer', 'rich')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"


def test_empty_feature_column_is_dropped_with_a_warning(tmp_path, write_csv):
    rows = "\n".join(f"{i % 7},,{i % 2}" for i in range(60))
    path = write_csv("a,empty,y\n" + rows + "\n")
    result = invoke("fit", path, "--target", "y", *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "empty" in result.stderr
    assert growml.load_run(tmp_path / "run").preprocessor.feature_names == ["a"]


# --- bad input: one sentence, exit code 2, no traceback, no run directory -------------------


def _rows(n=40):
    return "\n".join(f"{i},{i % 3},{'a' if i % 2 else 'b'}" for i in range(n))


BAD_INPUT = {
    "missing file": (["missing.csv", "--target", "y"], "does not exist"),
    "unknown dataset": (["no-such-data"], "unknown dataset"),
    "empty file": (["{empty}", "--target", "y"], "empty"),
    "unreadable file": (["{binary}", "--target", "y"], "not UTF-8 text"),
    "missing target column": (["{good}", "--target", "nope"], "nope"),
    "single-class target": (["{single}", "--target", "y"], "single class"),
    "non-numeric regression target": (
        ["{good}", "--target", "y", "--task", "regression"],
        "numeric",
    ),
    "empty target column": (["{empty_target}", "--target", "y"], "empty"),
    "wrong number of fields": (["{ragged}", "--target", "y"], "fields"),
    "unknown --set key": (["iris", "--set", "train.lrr=0.1"], "train.lr"),
    "wrong type": (["iris", "--set", "train.epochs=many"], "train.epochs"),
    "out of range": (["iris", "--set", "train.lr=-1"], "greater than 0"),
    "invalid recipe": (["iris", "--recipe", "{bad_recipe}"], "not valid YAML"),
    "unknown task": (["iris", "--task", "clustering"], "data.task"),
    "bad --fixed": (["iris", "--fixed", "8,x"], "--fixed"),
    "monitor for the wrong task": (["friedman", "--set", "train.monitor=accuracy"], "monitor"),
    "diverging training": (
        ["iris", "--set", "train.lr=1e30", "--set", "train.optimizer=sgd"],
        "diverged",
    ),
    "seed out of range": (["iris", "--seed", "4294967296"], "seed"),
    "width too large": (["iris", "--fixed", "100000000"], "between 1 and"),
    "width zero": (["iris", "--fixed", "0"], "between 1 and"),
    "network larger than memory": (["iris", "--fixed", "65536,65536,65536"], "GiB of memory"),
    "pruning without a target": (["iris", "--prune", "synflow"], "prune.compression"),
    "unknown pruner": (["iris", "--prune", "snip", "--set", "prune.compression=10"], "prune"),
    "pruning after growth that is off": (
        [
            "iris",
            "--fixed",
            "8",
            "--prune",
            "synflow",
            "--set",
            "prune.compression=2",
            "--set",
            "prune.when=after-growth",
        ],
        "after-growth",
    ),
    "pruning target above the network": (
        ["iris", "--fixed", "8", "--prune", "synflow", "--set", "prune.target_params=100000"],
        "keeps everything",
    ),
    "compression below 1": (
        ["iris", "--prune", "synflow", "--set", "prune.compression=0.5"],
        "greater than 1",
    ),
}


@pytest.fixture
def bad_files(tmp_path, write_csv):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(b"\x00\xff\xfe\x00" * 64)
    (tmp_path / "bad.yaml").write_text("train: {lr: [1, 2\n")
    return {
        "empty": tmp_path / "empty.csv",
        "binary": tmp_path / "binary.csv",
        "good": write_csv("a,b,y\n" + _rows() + "\n", "good.csv"),
        "single": write_csv(
            "a,b,y\n" + "\n".join(f"{i},{i},same" for i in range(40)) + "\n", "single.csv"
        ),
        "empty_target": write_csv(
            "a,b,y\n" + "\n".join(f"{i},{i}," for i in range(40)) + "\n", "empty_target.csv"
        ),
        "ragged": write_csv("a,b,y\n" + _rows(20) + "\n1,2,3,4\n" + _rows(20) + "\n", "ragged.csv"),
        "bad_recipe": tmp_path / "bad.yaml",
    }


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_sentence_and_exit_code_2(case, bad_files, tmp_path):
    args, expected = BAD_INPUT[case]
    args = [a.format(**bad_files) if a.startswith("{") else a for a in args]
    runs = tmp_path / "runs"
    runs.mkdir()  # the work directory of a run would appear here
    result = invoke("fit", *args, "--out", runs / "run")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and message.count("\n") == 0, message
    assert _leftovers(runs) == []


def test_prediction_from_raw_rows_reproduces_the_reported_test_metrics(tmp_path):
    for name in ("breast-cancer", "wine"):
        result = growml.fit(
            growml.resolve_config(
                overrides=[
                    ("data.source", name),
                    ("train.epochs", 10),
                    ("model.hidden_widths", [8]),
                ]
            ),
            out=tmp_path / name,
        )
        loaded = growml.load_run(tmp_path / name)
        predicted = loaded.predict(result.data.raw_test)
        actual = result.data.target_encoder.decode(result.data.y_test)
        accuracy = float(np.mean(predicted == actual))
        assert accuracy == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-12)


def test_binary_predictions_follow_the_stored_threshold(tmp_path):
    result = growml.fit(
        growml.resolve_config(overrides=[("data.source", "breast-cancer"), ("train.epochs", 10)]),
        out=tmp_path / "run",
    )
    run = growml.load_run(tmp_path / "run")
    assert run.threshold == 0.5
    rows = result.data.raw_test
    positive = run.classes[1]
    probability = run.predict_proba(rows)[:, 1]
    np.testing.assert_array_equal(run.predict(rows) == positive, probability >= 0.5)
    run.threshold = 0.99
    np.testing.assert_array_equal(run.predict(rows) == positive, probability >= 0.99)


def test_parquet_file_fits_like_its_csv(tmp_path, write_csv):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = "\n".join(f"{i % 11},{(i * 7) % 5},{'yes' if i % 3 else 'no'}" for i in range(90))
    csv_path = write_csv("a,b,label\n" + rows + "\n")
    parquet_path = tmp_path / "data.parquet"
    pq.write_table(pacsv.read_csv(csv_path), parquet_path)
    metrics = []
    for path, name in ((csv_path, "csv"), (parquet_path, "parquet")):
        result = invoke("fit", path, "--target", "label", *FAST, "--out", tmp_path / name, "--json")
        assert result.exit_code == 0, result.output
        metrics.append(json.loads(result.stdout)["metrics"]["test"])
    assert metrics[0] == metrics[1]


def test_overwrite_never_deletes_a_directory_that_is_not_a_run(tmp_path):
    victim = tmp_path / "notes"
    victim.mkdir()
    (victim / "important.txt").write_text("keep me")
    result = invoke("fit", "iris", *FAST, "--out", victim, "--overwrite")
    assert result.exit_code == 2 and "not a growml run directory" in result.stderr
    assert (victim / "important.txt").read_text() == "keep me"
    assert _leftovers(tmp_path) == ["notes"]


def test_out_below_a_file_or_above_the_working_directory_is_refused(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    below_file = invoke("fit", "iris", *FAST, "--out", tmp_path / "afile" / "run")
    assert below_file.exit_code == 2 and "cannot create the run directory" in below_file.stderr
    run = tmp_path / "run"
    assert invoke("fit", "iris", *FAST, "--out", run).exit_code == 0
    monkeypatch.chdir(run)
    here = invoke("fit", "iris", *FAST, "--out", ".", "--overwrite")
    assert here.exit_code == 2 and "current directory" in here.stderr
    assert _leftovers(tmp_path) == ["afile", "run"]


def test_run_files_are_readable_like_ordinary_files(tmp_path):
    from growml.atomic import DIRECTORY_MODE, FILE_MODE

    out = tmp_path / "run"
    assert invoke("fit", "iris", *FAST, "--out", out).exit_code == 0
    assert out.stat().st_mode & 0o777 == DIRECTORY_MODE
    for path in out.rglob("*"):
        expected = DIRECTORY_MODE if path.is_dir() else FILE_MODE
        assert path.stat().st_mode & 0o777 == expected, path.name


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("config.yaml", "data: [unclosed\n"),
        ("config.yaml", "- a list\n"),
        ("history.jsonl", "not json\n"),
        ("metrics.json", "[1, 2]"),
        ("model.json", "{broken"),
        ("model.safetensors", "garbage"),
    ],
)
def test_damaged_run_directory_is_reported_not_crashed_on(tmp_path, name, content):
    out = tmp_path / "run"
    assert invoke("fit", "iris", *FAST, "--out", out).exit_code == 0
    (out / name).write_text(content)
    result = invoke("report", out)
    assert result.exit_code == 2, result.output
    assert f"{name} in the run {str(out)!r} has changed since growml wrote it" in result.stderr
    assert result.stderr.count("\n") == 1


def test_huge_feature_values_are_standardised_to_finite_numbers(tmp_path, write_csv):
    rows = "\n".join(f"{(-1) ** i * 1e300 * (i % 5)},{i % 2}" for i in range(60))
    path = write_csv("big,y\n" + rows + "\n")
    result = invoke("fit", path, "--target", "y", *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    preprocess = json.loads((tmp_path / "run" / "preprocess.json").read_text())
    column = preprocess["features"]["columns"][0]
    assert np.isfinite(column["std"]) and column["std"] > 1e299


def test_console_script_exit_codes(tmp_path, write_csv):
    """The installed `growml` command, as a separate process: exit codes survive interpreter
    shutdown (a pyarrow reader left open used to abort the process at exit)."""
    path = write_csv("a,b,y\n" + _rows() + "\n")
    growml_command = Path(sys.executable).parent / "growml"
    for _ in range(3):
        bad = subprocess.run(
            [growml_command, "fit", path, "--target", "zz", "--out", tmp_path / "bad"],
            capture_output=True,
            text=True,
        )
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    good = subprocess.run(
        [growml_command, "fit", path, "--target", "y", *FAST, "--out", tmp_path / "good", "--json"],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["run"] == str(tmp_path / "good")


def test_predict_command_matches_load_run_and_writes_csv(tmp_path, write_csv):
    import pyarrow.csv as pacsv

    run = tmp_path / "run"
    assert invoke("fit", "wine", *FAST, "--out", run).exit_code == 0
    shown = invoke("predict", run, "wine", "--json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    loaded = growml.load_run(run)
    from growml.data import read_rows

    expected = loaded.predict(read_rows("wine"))
    assert [row["prediction"] for row in document["predictions"]] == expected.tolist()
    assert document["rows"] == 178
    out = tmp_path / "predictions.csv"
    written = invoke("predict", run, "wine", "--out", out)
    assert written.exit_code == 0 and "178 predictions" in written.stdout
    table = pacsv.read_csv(out)
    assert table.column_names[0] == "prediction" and table.num_rows == 178
    probabilities = np.column_stack([table.column(n).to_numpy() for n in table.column_names[1:]])
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)


def test_predict_reports_bad_input_in_one_sentence(tmp_path, write_csv):
    run = tmp_path / "run"
    assert invoke("fit", "iris", *FAST, "--out", run).exit_code == 0
    missing_column = write_csv("a,b\n1,2\n", "other.csv")
    for args, expected in (
        ([run, "missing.csv"], "does not exist"),
        ([tmp_path / "nope", "iris"], "does not exist"),
        ([run, missing_column], "is missing from the data"),
    ):
        result = invoke("predict", *args)
        assert result.exit_code == 2 and expected in result.stderr, result.output
        assert "Traceback" not in result.output


def test_a_container_memory_limit_bounds_the_memory_available(tmp_path):
    from growml.fitting import _cgroup_headroom

    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("73741824\n")
    assert _cgroup_headroom(tmp_path) == 1_000_000_000
    (tmp_path / "memory.max").write_text("max\n")
    assert _cgroup_headroom(tmp_path) is None
    assert _cgroup_headroom(tmp_path / "absent") is None
