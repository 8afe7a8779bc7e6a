"""Rows to predict on are checked like training rows, by both engines: missing columns are
errors, unknown columns and category values one warning each (errors with --strict), records
of text mean what the same CSV file means, and damaged weights are named."""

import csv
import warnings

import numpy as np
import pytest
from growml.cli import app
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import growml
from growml.errors import DataError, GrowmlWarning, RunError
from growml.runs import digests

ENGINES = ("torch", "onnx")


def _write(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _rows(count, seed=0, colours=("red", "green", "blue")):
    generator = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        size = generator.normal()
        colour = colours[i % len(colours)]
        rows.append(
            {
                "size": "" if i % 11 == 0 else f"{size:.3f}",
                "colour": "" if i % 13 == 0 else colour,
                "member": "true" if generator.random() < 0.5 else "false",
                "label": "yes" if size + (colour == "red") > 0.5 else "no",
            }
        )
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run on a table with numbers (with gaps), a category and a boolean; exported too."""
    folder = tmp_path_factory.mktemp("inputs")
    source = _write(folder / "train.csv", _rows(160))
    config = growml.resolve_config(
        overrides=[
            ("data.source", str(source)),
            ("data.target", "label"),
            ("train.epochs", 5),
            ("growth.enabled", False),
            ("model.hidden_widths", [4]),
        ]
    )
    growml.fit(config, out=folder / "run")
    assert CliRunner().invoke(app, ["export", str(folder / "run")]).exit_code == 0
    return folder


def _predictor(trained, engine):
    from growml.export import load_predictor

    return load_predictor(trained / "run", engine)


def _new_rows(trained, rows, name="new.csv"):
    return _write(trained / name, rows)


def _warnings_of(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if issubclass(w.category, GrowmlWarning)]


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_columns_and_categories_warn_once_each(trained, engine):
    rows = _rows(20, seed=1, colours=("red", "purple", "teal"))
    for row in rows:
        row["note"] = "extra"
    table = growml.data.read_rows(str(_new_rows(trained, rows)))
    predictor = _predictor(trained, engine)
    predictions, said = _warnings_of(lambda: predictor.prediction_table(table))
    assert predictions.num_rows == 20
    assert len(said) == 2, said
    assert "column 'note' is not one the model was trained on; it is ignored." in said
    unseen = next(message for message in said if "'colour'" in message)
    assert "'purple', 'teal'" in unseen and "count as none" in unseen
    with pytest.raises(DataError, match="column 'note' is not one the model was trained on"):
        predictor.prediction_table(table, strict=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_command_line_warns_once_per_column_and_strict_refuses(trained, engine):
    rows = _rows(12, seed=2, colours=("red", "purple"))
    path = _new_rows(trained, rows, f"cli-{engine}.csv")
    runner = CliRunner()
    command = ["predict", str(trained / "run"), str(path), "--engine", engine]
    shown = runner.invoke(app, command)
    assert shown.exit_code == 0, shown.output
    warned = [line for line in shown.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "'colour'" in warned[0] and "'purple'" in warned[0]
    refused = runner.invoke(app, [*command, "--strict"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.stderr.strip().startswith("error: column 'colour' holds values")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_missing_column_is_an_error_naming_it(trained, engine):
    rows = [{key: value for key, value in row.items() if key != "size"} for row in _rows(5)]
    with pytest.raises(DataError, match="column 'size' is missing"):
        _predictor(trained, engine).predict(rows)


@pytest.mark.parametrize("engine", ENGINES)
def test_records_of_text_mean_what_the_same_file_means(trained, engine):
    rows = _rows(40, seed=3)
    rows[0]["size"] = "NA"  # a missing-value word of the CSV reader
    rows[1]["size"] = " 0.25 "
    rows[2]["member"] = "True"
    path = _new_rows(trained, rows, f"records-{engine}.csv")
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))  # every value is text, '' where missing
    predictor = _predictor(trained, engine)
    from_file = predictor.predict_proba(growml.data.read_rows(str(path)))
    np.testing.assert_array_equal(predictor.predict_proba(records), from_file)


def test_weights_that_do_not_match_the_model_are_named(trained, tmp_path):
    import shutil

    damaged = tmp_path / "run"
    shutil.copytree(trained / "run", damaged)
    weights = load_file(damaged / "model.safetensors")
    name = next(name for name, tensor in weights.items() if tensor.dim() == 2)
    weights[name] = weights[name][:, :-1].contiguous()
    save_file(weights, damaged / "model.safetensors")
    digests.record(damaged, digests.read(damaged))  # as if written so: only the shapes tell
    with pytest.raises(RunError, match="model.safetensors does not match model.json") as caught:
        growml.load_run(damaged)
    assert name in str(caught.value) and "\n" not in str(caught.value)
