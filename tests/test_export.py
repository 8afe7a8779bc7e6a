"""ONNX export: parity with the torch path, the inputs users feed, metadata, and user errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from growml.cli import app
from sample_tables import mixed_csv
from typer.testing import CliRunner

import growml
from growml.errors import ExportError
from growml.export.graph import MAX_OPSET, MIN_OPSET
from growml.nn import ACTIVATIONS

runner = CliRunner()
TOLERANCE = 1e-5


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def fit(out, source, *settings, **data):
    overrides = [("data.source", str(source)), ("train.epochs", 5), *settings]
    overrides += [(f"data.{key}", value) for key, value in data.items()]
    return growml.fit(growml.resolve_config(overrides=overrides), out=out)


def assert_parity(run, model, rows):
    """The exported model answers as the run does on ``rows``."""
    if run.task == "regression":
        scale = max(1.0, run.target_encoder.std)
        np.testing.assert_allclose(model.predict(rows), run.predict(rows), atol=TOLERANCE * scale)
    else:
        np.testing.assert_array_equal(model.predict(rows), run.predict(rows))
        np.testing.assert_allclose(
            model.predict_proba(rows), run.predict_proba(rows), rtol=0, atol=TOLERANCE
        )


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    source = mixed_csv(root / "mixed.csv")
    result = fit(
        root / "run",
        source,
        ("model.hidden_widths", [6]),
        ("threshold.metric", "f1"),
        target="label",
    )
    exported = growml.export_run(root / "run")
    return result, exported


# --- parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "task", "classes"),
    [
        ("breast-cancer", "classification", 2),
        ("wine", "classification", 3),
        ("friedman", "regression", 0),
    ],
)
def test_parity_for_binary_multiclass_and_regression(tmp_path, source, task, classes):
    result = fit(tmp_path / "run", source, ("model.hidden_widths", [8]))
    exported = growml.export_run(tmp_path / "run")
    assert exported.parity.rows == len(result.data.x_test)
    assert exported.parity.max_difference <= exported.parity.tolerance
    model = growml.load_onnx(exported.path)
    assert model.task == task and len(model.classes) == classes
    assert_parity(growml.load_run(tmp_path / "run"), model, result.data.raw_test)


def test_table_with_categories_missing_values_and_booleans(mixed_run):
    result, exported = mixed_run
    model = growml.load_onnx(exported.path)
    inputs = {entry["name"]: entry["type"] for entry in model.info["inputs"]}
    assert inputs == {"age": "number", "income": "number", "colour": "text", "member": "text"}
    run = growml.load_run(exported.path.parent)
    assert run.metrics["threshold"]["metric"] == "f1"
    assert_parity(run, model, result.data.raw_test)
    assert set(model.predict(result.data.raw_test)) <= {"yes", "no"}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_unseen_categories_missing_and_odd_values_follow_the_torch_path(mixed_run):
    _, exported = mixed_run
    run = growml.load_run(exported.path.parent)
    model = growml.load_onnx(exported.path)
    rows = [
        {"age": 30.0, "income": 1e4, "colour": "purple", "member": True},  # unseen category
        {"age": None, "income": 2e4, "colour": None, "member": None},  # every kind missing
        {"age": float("inf"), "income": float("nan"), "colour": "red", "member": False},
        {"age": -1e30, "income": 0.0, "colour": "red", "member": True},
        {"age": 50.0, "income": 1e4, "colour": "", "member": None},  # "" is missing text
        {"age": 50.0, "income": 1e4, "colour": None, "member": None},
    ]
    assert_parity(run, model, rows)
    np.testing.assert_array_equal(*model.predict_proba(rows[-2:]))


def test_numbers_are_one_float32_input_and_agree_fed_as_float32(mixed_run):
    """The default layout follows scikit-learn's converters: the numeric columns as one
    float32 ``[N, k]`` input; categories and booleans stay text."""
    result, exported = mixed_run
    run = growml.load_run(exported.path.parent)
    proto = onnx.load(exported.path)
    types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    assert types == {
        "numbers": onnx.TensorProto.FLOAT,
        "colour": onnx.TensorProto.STRING,
        "member": onnx.TensorProto.STRING,
    }
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == [2]
    model = growml.load_onnx(exported.path)
    assert model.info["numbers_input"] == ["age", "income"]
    assert model.feature_names == run.preprocessor.feature_names
    assert model.feeds(result.data.raw_test)["numbers"].dtype == np.float32  # growml predict's
    assert_parity(run, model, result.data.raw_test)
    feeds = {
        "numbers": np.array([[31.0, 5e4]], np.float32),
        "colour": np.array([["red"]], object),
        "member": np.array([["true"]], object),
    }
    (probabilities,) = ort.InferenceSession(str(exported.path)).run(["probabilities"], feeds)
    row = {"age": [31.0], "income": [5e4], "colour": ["red"], "member": [True]}
    np.testing.assert_allclose(probabilities, run.predict_proba(row), atol=TOLERANCE)


def test_one_float32_input_per_column_agrees(mixed_run, tmp_path):
    result, exported = mixed_run
    run = growml.load_run(exported.path.parent)
    columns = growml.export_run(exported.path.parent, tmp_path / "columns.onnx", grouped=False)
    proto = onnx.load(columns.path)
    assert [i.name for i in proto.graph.input] == run.preprocessor.feature_names
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    model = growml.load_onnx(columns.path)
    assert model.info["numbers_input"] == []
    assert_parity(run, model, result.data.raw_test)
    assert_parity(run, model, result.data.raw_test.slice(3, 1))


def test_large_numbers_with_a_small_spread_keep_parity(tmp_path):
    """A year or a price read as float32 is standardised in float64 inside the graph."""
    rng = np.random.default_rng(1)
    years = rng.normal(2010.0, 3.0, 300)
    prices = rng.normal(2.5e6, 40.0, 300)
    lines = ["year,price,label"] + [
        f"{y:.2f},{p:.2f},{'a' if (y - 2010) + (p - 2.5e6) / 13 > 0 else 'b'}"
        for y, p in zip(years, prices, strict=True)
    ]
    source = tmp_path / "years.csv"
    source.write_text("\n".join(lines) + "\n")
    fit(tmp_path / "run", source, ("model.hidden_widths", [8]), target="label")
    exported = growml.export_run(tmp_path / "run")
    assert exported.number_type == "float64"
    assert exported.parity.agrees and exported.parity.max_difference <= TOLERANCE
    proto = onnx.load(exported.path)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_batch_of_one_and_of_many(mixed_run):
    result, exported = mixed_run
    run = growml.load_run(exported.path.parent)
    model = growml.load_onnx(exported.path)
    raw = result.data.raw_test
    assert_parity(run, model, raw.slice(0, 1))
    many = raw.take(np.arange(2000) % raw.num_rows)
    assert len(model.predict(many)) == 2000
    assert_parity(run, model, many)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param([("model.hidden_widths", [1]), ("growth.enabled", True)], id="grown"),
        pytest.param([("model.hidden_widths", [8, 4])], id="fixed-two-layers"),
        pytest.param(
            [
                ("model.hidden_widths", [16]),
                ("prune.method", "magnitude"),
                ("prune.compression", 4),
            ],
            id="masked",
        ),
        pytest.param(
            [
                ("model.hidden_widths", [16]),
                ("prune.method", "synflow"),
                ("prune.structured", True),
                ("prune.compression", 4),
            ],
            id="structurally-pruned",
        ),
    ],
)
def test_parity_for_grown_fixed_and_pruned_networks(tmp_path, settings):
    epochs = [("train.epochs", 40)] if settings[0][1] == [1] else []
    result = fit(tmp_path / "run", "wine", *settings, *epochs)
    run = growml.load_run(tmp_path / "run")
    exported = growml.export_run(tmp_path / "run")
    model = growml.load_onnx(exported.path)
    assert model.info["hidden_widths"] == run.model.hidden_widths
    assert_parity(run, model, result.data.raw_test)
    weights = [
        onnx.numpy_helper.to_array(tensor)
        for tensor in onnx.load(exported.path).graph.initializer
        if tensor.name.endswith(".weight")
    ]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == sum(int((w == 0).sum()) for w in run.model.weights)
    if dict(settings).get("prune.method") == "magnitude":
        kept = result.metrics["prune"]["weights_after"]
        assert sum(w.size for w in weights) - zeros == kept
    if dict(settings).get("growth.enabled"):
        assert run.model.hidden_widths[0] > 1


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_exports(tmp_path, activation):
    result = fit(
        tmp_path / "run", "iris", ("model.hidden_widths", [6, 5]), ("model.activation", activation)
    )
    run = growml.load_run(tmp_path / "run")
    for opset in (MIN_OPSET, MAX_OPSET):  # gelu: the erf form, then the Gelu operator
        exported = growml.export_run(tmp_path / "run", tmp_path / f"{opset}.onnx", opset=opset)
        assert_parity(run, growml.load_onnx(exported.path), result.data.raw_test)


# --- the file -------------------------------------------------------------------------------


def test_metadata_round_trips_and_holds_no_machine_path(mixed_run):
    result, exported = mixed_run
    run = growml.load_run(exported.path.parent)
    model = growml.load_onnx(exported.path)
    info = run.model_info()
    assert model.info["growml_version"] == growml.__version__
    assert model.info["task"] == "classification"
    assert model.info["classes"] == info["classes"] == ["no", "yes"]
    assert model.info["threshold"] == run.threshold
    assert model.info["hidden_widths"] == info["hidden_widths"]
    assert model.info["activation"] == info["activation"]
    assert model.info["parameters"] == info["parameters"]
    assert model.info["test_metrics"] == result.metrics["test"]
    assert model.feature_names == run.preprocessor.feature_names
    content = exported.path.read_bytes()
    root = str(exported.path.parent.parent)
    assert root.encode() not in content and b"/tmp" not in content
    onnx.checker.check_model(onnx.load(exported.path), full_check=True)
    proto = onnx.load(exported.path)
    assert [i.name for i in proto.graph.input] == ["numbers", "colour", "member"]
    assert [o.name for o in proto.graph.output] == ["probabilities", "label"]
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "N" for i in proto.graph.input)


def test_load_onnx_predicts_without_importing_torch(mixed_run):
    _, exported = mixed_run
    code = (
        "import sys, growml; "
        f"model = growml.load_onnx({str(exported.path)!r}); "
        "print(model.predict({'age': [31.0], 'income': [5e4], 'colour': ['red'], "
        "'member': [True]}).tolist()); "
        "print('torch' in sys.modules, any(m.startswith('growml.nn') for m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    labels, imported = output.stdout.strip().splitlines()
    assert json.loads(labels.replace("'", '"'))[0] in ("yes", "no")
    assert imported == "False False"


def test_no_pickle_anywhere():
    sources = Path(growml.__file__).parent.rglob("*.py")
    for path in sources:
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path
        assert "yaml.load(" not in text and "torch.load(" not in text, path


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def iris_run(tmp_path):
    run = tmp_path / "run"
    assert invoke("fit", "iris", "--epochs", "3", "--fixed", "4", "--out", run).exit_code == 0
    return run


def test_export_command_prints_the_table_and_json(iris_run):
    shown = invoke("export", iris_run)
    assert shown.exit_code == 0, shown.output
    for word in ("opset", "size", "nodes", "max difference"):
        assert word in shown.stdout
    document = json.loads(invoke("export", iris_run, "--opset", "17", "--json").stdout)
    assert document["opset"] == 17 and document["verified_rows"] == 30
    assert document["number_type"] == "float32" and "numbers as float32" in shown.stdout
    assert document["max_difference"] <= 1e-5 and document["label_mismatches"] == 0
    assert document["path"] == str(iris_run / "model.onnx")
    assert document["size_bytes"] == (iris_run / "model.onnx").stat().st_size


def test_predict_engines_give_the_same_table(iris_run, tmp_path):
    assert invoke("export", iris_run).exit_code == 0
    outputs = {}
    for engine in ("onnx", "torch"):
        shown = invoke("predict", iris_run, "iris", "--engine", engine, "--json")
        assert shown.exit_code == 0, shown.output
        outputs[engine] = json.loads(shown.stdout)["predictions"]
    onnx_rows, torch_rows = outputs["onnx"], outputs["torch"]
    assert [list(r) for r in onnx_rows] == [list(r) for r in torch_rows]
    assert [r["prediction"] for r in onnx_rows] == [r["prediction"] for r in torch_rows]
    for ours, theirs in zip(onnx_rows, torch_rows, strict=True):
        np.testing.assert_allclose(list(ours.values())[1:], list(theirs.values())[1:], atol=1e-5)
    out = tmp_path / "p.csv"
    assert invoke("predict", iris_run, "iris", "--out", out).exit_code == 0
    assert out.read_text().splitlines()[0].startswith('"prediction","probability_')


def assert_user_error(result, expected):
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and message.count("\n") == 0, message


def test_export_of_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.json").write_text("{}")
    assert_user_error(invoke("export", tmp_path / "half"), "not a complete run directory")
    assert_user_error(invoke("export", tmp_path / "nothing"), "does not exist")
    assert not (tmp_path / "half" / "model.onnx").exists()


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, MAX_OPSET + 1])
def test_unsupported_opset(iris_run, opset):
    assert_user_error(invoke("export", iris_run, "--opset", opset), f"opset {opset}")
    assert not (iris_run / "model.onnx").exists()


def test_out_path_that_is_a_directory(iris_run, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_user_error(invoke("export", iris_run, "--out", folder), "is a directory")
    assert list(folder.iterdir()) == []


def test_corrupt_model_onnx_at_predict_time(iris_run):
    assert invoke("export", iris_run).exit_code == 0
    (iris_run / "model.onnx").write_bytes(b"\x08\x07 not a model")
    assert_user_error(invoke("predict", iris_run, "iris"), "has changed since growml export")
    with pytest.raises(ExportError, match="not a valid ONNX model"):
        growml.load_onnx(iris_run / "model.onnx")
    assert invoke("predict", iris_run, "iris", "--engine", "torch").exit_code == 0
    (iris_run / "model.onnx").write_bytes(_identity_model().SerializeToString())
    with pytest.raises(ExportError, match="not written by growml export"):
        growml.load_onnx(iris_run / "model.onnx")


def _identity_model():
    """A valid ONNX model that growml did not write."""
    helper, tensor = onnx.helper, onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", tensor, [1])],
        [helper.make_tensor_value_info("y", tensor, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def test_predict_with_onnx_before_export(iris_run):
    assert_user_error(invoke("predict", iris_run, "iris", "--engine", "onnx"), "no model.onnx")
    assert_user_error(invoke("predict", iris_run, "iris", "--engine", "tf"), "engine 'tf'")


def test_a_model_that_disagrees_is_refused_and_not_written(iris_run, monkeypatch):
    from growml.export import exporter

    build = exporter.build_run_model

    def shifted(*args):
        model = build(*args)
        bias = next(t for t in model.graph.initializer if t.name == "layer2.bias")
        values = onnx.numpy_helper.to_array(bias).copy()
        values[0] += 0.01  # one logit: a shift of all of them would leave softmax unchanged
        bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
        return model

    monkeypatch.setattr(exporter, "build_run_model", shifted)
    assert_user_error(invoke("export", iris_run), "disagrees with the run")
    assert sorted(p.name for p in iris_run.iterdir() if "onnx" in p.name) == []


def test_moved_training_data_is_named_with_data(tmp_path):
    source = mixed_csv(tmp_path / "mixed.csv", rows=80)
    fit(tmp_path / "run", source, ("model.hidden_widths", [3]), target="label")
    moved = source.rename(tmp_path / "moved.csv")
    assert_user_error(invoke("export", tmp_path / "run"), "does not exist")
    assert invoke("export", tmp_path / "run", "--data", moved).exit_code == 0


def test_training_data_that_changed_since_the_run_is_refused(tmp_path):
    source = mixed_csv(tmp_path / "mixed.csv", rows=80)
    fit(tmp_path / "run", source, ("model.hidden_widths", [3]), target="label")
    mixed_csv(source, rows=120)  # the same file, grown since: another test split
    assert_user_error(invoke("export", tmp_path / "run"), "has changed since the run")
    assert not (tmp_path / "run" / "model.onnx").exists()


@pytest.mark.parametrize("column", ["label", "probabilities"])
def test_a_column_named_like_an_output_is_refused(tmp_path, column):
    source = mixed_csv(tmp_path / "mixed.csv", rows=80)
    text = source.read_text().replace("age,", f"{column},", 1)
    source.write_text(text.replace(",label\n", ",target\n", 1))
    fit(tmp_path / "run", source, ("model.hidden_widths", [3]), target="target")
    assert_user_error(invoke("export", tmp_path / "run"), column)
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_a_run_without_a_test_split_says_how_to_export(tmp_path):
    fit(tmp_path / "run", "iris", ("data.test_size", 0), ("model.hidden_widths", [3]))
    assert_user_error(invoke("export", tmp_path / "run"), "no test split")


@pytest.mark.parametrize("name", ["model.json", "config.yaml", "model.txt", "model"])
def test_export_out_must_name_an_onnx_file_and_never_a_run_file(iris_run, name):
    before = {p.name: p.read_bytes() for p in iris_run.iterdir() if p.is_file()}
    out = iris_run / name
    shown = invoke("export", iris_run, "--out", out)
    assert shown.exit_code == 2, shown.output
    assert shown.stderr.strip() == (
        f"error: --out {str(out)!r} must name an .onnx file (like 'model.onnx'); nothing was "
        "written."
    )
    assert {p.name: p.read_bytes() for p in iris_run.iterdir() if p.is_file()} == before
    assert invoke("predict", iris_run, "iris", "--json").exit_code == 0


def test_a_run_trained_with_sample_weights_exports(tmp_path):
    # Its metrics.json holds weighted test metrics: export must not take them for an edit.
    from growml.data import load_table

    table = load_table("breast-cancer")
    weights = np.where(table.target.to_numpy() == 1, 5.0, 1.0)
    config = growml.resolve_config(
        overrides=[("data.source", "breast-cancer"), ("train.epochs", 3)]
        + [("model.hidden_widths", [4]), ("growth.enabled", False)]
    )
    growml.fit(config, out=tmp_path / "run", table=table, sample_weight=weights)
    shown = invoke("export", tmp_path / "run")
    assert shown.exit_code == 0, shown.output


def test_a_number_beyond_float32_is_missing_to_both_engines(iris_run, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n"
        "1e300,3.0,4.0,1.2\n5.1,-1e300,1.4,0.2\n"
    )
    assert invoke("export", iris_run).exit_code == 0
    tables = {}
    for engine in ("onnx", "torch"):
        shown = invoke("predict", iris_run, rows, "--engine", engine, "--json")
        assert shown.exit_code == 0, shown.output
        tables[engine] = json.loads(shown.stdout)["predictions"]
    for ours, theirs in zip(tables["onnx"], tables["torch"], strict=True):
        assert ours["prediction"] == theirs["prediction"]
        probabilities = [value for key, value in theirs.items() if key != "prediction"]
        assert all(np.isfinite(probabilities))
        np.testing.assert_allclose(list(ours.values())[1:], probabilities, atol=1e-5)
    out = tmp_path / "p.jsonl"
    assert invoke("predict", iris_run, rows, "--engine", "torch", "--out", out).exit_code == 0
    assert len(out.read_text().splitlines()) == 2
