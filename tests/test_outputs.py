"""Outputs never destroy data: predictions refuse to overwrite (and never their own input),
and `growml fit` without --out says where it writes, --overwrite replacing runs/<data>.
Predictions are written in the format --out's extension names, and as plain CSV to a pipe."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from growml.cli import app
from typer.testing import CliRunner

import growml
from growml.data import read_rows

FAST = ["--epochs", "2", "--set", "growth.enabled=false"]


def invoke(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def assert_user_error(result, expected):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and expected in message, message


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("outputs") / "run"
    assert invoke("fit", "iris", "--out", run, *FAST).exit_code == 0
    return run


def test_predictions_refuse_an_existing_file_unless_overwrite(iris_run, tmp_path):
    out = tmp_path / "predictions.csv"
    out.write_text("precious\n")
    assert_user_error(invoke("predict", iris_run, "iris", "--out", out), "already exists")
    assert out.read_text() == "precious\n"
    assert invoke("predict", iris_run, "iris", "--out", out, "--overwrite").exit_code == 0
    assert out.read_text().startswith('"prediction"')


def test_predictions_never_replace_their_own_input(iris_run, tmp_path):
    rows = tmp_path / "rows.csv"
    assert invoke("predict", iris_run, "iris", "--out", rows).exit_code == 0
    before = rows.read_text()
    result = invoke("predict", iris_run, rows, "--out", rows, "--overwrite")
    assert_user_error(result, "is the input file")
    assert rows.read_text() == before


def test_predictions_never_replace_a_file_of_the_run(iris_run):
    history = iris_run / "history.jsonl"
    before = history.read_bytes()
    result = invoke("predict", iris_run, "iris", "--out", history, "--overwrite")
    assert_user_error(result, "is a file of the run itself")
    assert history.read_bytes() == before
    assert invoke("report", iris_run).exit_code == 0  # the run is whole


def test_predictions_into_a_directory_are_one_sentence(iris_run, tmp_path):
    assert_user_error(invoke("predict", iris_run, "iris", "--out", tmp_path), "is a directory")


def test_fit_without_out_takes_the_next_free_name_and_overwrite_replaces_the_first(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert invoke("fit", "iris", *FAST).exit_code == 0
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["iris", "iris-2"]
    first = (tmp_path / "runs" / "iris" / "metrics.json").stat().st_mtime_ns
    assert invoke("fit", "iris", *FAST, "--overwrite").exit_code == 0
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["iris", "iris-2"]
    assert (tmp_path / "runs" / "iris" / "metrics.json").stat().st_mtime_ns != first


# --- predictions: the format from --out's extension, plain CSV to a pipe --------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """Ten classes: eleven columns of full-precision numbers, wider than any terminal."""
    run = tmp_path_factory.mktemp("outputs") / "digits"
    assert invoke("fit", "digits", "--out", run, *FAST).exit_code == 0
    loaded = growml.load_run(run)
    rows = read_rows("digits")
    return run, loaded.predict(rows), loaded.predict_proba(rows), loaded.classes


def assert_predictions(table, expected):
    labels, probabilities, classes = expected
    assert table.column_names == ["prediction"] + [f"probability_{c}" for c in classes]
    np.testing.assert_array_equal(table.column("prediction").to_numpy(), labels)
    written = np.column_stack([table.column(i).to_numpy() for i in range(1, table.num_columns)])
    np.testing.assert_array_equal(written, probabilities)


def read_jsonl(path):
    return pa.Table.from_pylist([json.loads(line) for line in path.read_text().splitlines()])


READERS = {"csv": pacsv.read_csv, "parquet": pq.read_table, "jsonl": read_jsonl}


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_predictions_round_trip_in_the_format_of_the_extension(digits_run, tmp_path, fmt):
    run, *expected = digits_run
    out = tmp_path / f"predictions.{fmt}"
    result = invoke("predict", run, "digits", "--out", out)
    assert result.exit_code == 0, result.output
    assert "1797 predictions written" in result.stdout
    assert_predictions(READERS[fmt](out), expected)


def test_a_parquet_file_is_parquet_not_csv_under_its_name(digits_run, tmp_path):
    out = tmp_path / "predictions.PARQUET"
    assert invoke("predict", digits_run[0], "digits", "--out", out).exit_code == 0
    assert out.read_bytes()[:4] == b"PAR1"


@pytest.mark.parametrize("name", ["predictions.xlsx", "predictions", "predictions.csv.gz"])
def test_an_unknown_extension_is_refused_before_any_work(iris_run, tmp_path, name):
    out = tmp_path / name
    result = invoke("predict", iris_run, "no-such-data", "--out", out)  # data is not read
    assert_user_error(result, ".csv, .parquet or .jsonl")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_prediction_leaves_no_file(iris_run, tmp_path, write_csv):
    rows = write_csv("sepal length (cm)\n1.0\n", "rows.csv")
    out = tmp_path / "out" / "predictions.parquet"
    assert_user_error(invoke("predict", iris_run, rows, "--out", out), "missing from the data")
    assert not out.parent.exists()


def test_predictions_below_a_file_are_one_sentence(iris_run, tmp_path):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "predictions.csv"
    assert_user_error(invoke("predict", iris_run, "iris", "--out", out), "lies below the file")


def test_predictions_to_a_pipe_are_every_row_and_column_as_csv(digits_run):
    """No --out and no terminal: CSV a program can read, never a table cut to a width."""
    run, *expected = digits_run
    result = invoke("predict", run, "digits")
    assert result.exit_code == 0, result.output
    assert len(max(result.stdout.splitlines(), key=len)) > 160  # the old width of pipe tables
    assert_predictions(pacsv.read_csv(pa.BufferReader(result.stdout.encode())), expected)


@pytest.mark.slow
def test_predictions_through_a_real_pipe_are_csv(iris_run):
    """growml in its own process, its stdout a real pipe (a fresh interpreter: slow)."""
    done = subprocess.run(
        [sys.executable, "-m", "growml.cli", "predict", str(iris_run), "iris"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = pacsv.read_csv(pa.BufferReader(done.stdout.encode()))
    assert table.num_rows == 150 and table.num_columns == 4


def test_tables_in_a_pipe_keep_every_column_and_cell_whole():
    """Written to a pipe, a table is as wide as its widest row: no cell is wrapped or cut."""
    from growml.config_reference import setting_reference
    from growml.data import list_datasets

    settings = invoke("settings").stdout.splitlines()
    for info in setting_reference():
        line = next(line for line in settings if line.startswith(f"│ {info.path} "))
        assert info.meaning in line and info.kind in line
    datasets = invoke("datasets").stdout
    assert all(info.description in datasets for info in list_datasets())


@pytest.mark.parametrize("opset", ["0", "-1", "99"])
def test_an_opset_out_of_range_is_refused_and_writes_nothing(iris_run, opset):
    result = invoke("export", iris_run, "--opset", opset)
    assert_user_error(result, f"opset {opset} is not supported; choose one from")
    assert not (iris_run / "model.onnx").exists()
