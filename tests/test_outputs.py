"""Outputs never destroy data: predictions refuse to overwrite (and never their own input),
and `growml fit` without --out says where it writes, --overwrite replacing runs/<data>."""

import pytest
from growml.cli import app
from typer.testing import CliRunner

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
