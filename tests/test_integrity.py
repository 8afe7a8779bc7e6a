"""Run integrity: a file changed, removed or copied in after growml wrote a run is refused by
``predict``, ``export`` and ``report`` in one sentence naming it; ``model.onnx`` is checked
against the run it sits in; runs of the formats before digests still work."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from growml.cli import app
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

import growml
from growml.errors import RunError

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"
FAST = ["--epochs", "3", "--fixed", "4"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, *words):
    """Exit code 2 and one line on stderr holding every one of ``words``."""
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """An iris run, never exported."""
    run = tmp_path_factory.mktemp("runs") / "iris"
    assert invoke("fit", "iris", *FAST, "--out", run).exit_code == 0
    return run


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory):
    """The iris run, exported; tests edit copies of it."""
    run = Path(shutil.copytree(fitted, tmp_path_factory.mktemp("runs") / "iris"))
    assert invoke("export", run).exit_code == 0
    return run


@pytest.fixture(scope="module")
def regression_export(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "friedman"
    assert invoke("fit", "friedman", *FAST, "--out", run).exit_code == 0
    assert invoke("export", run).exit_code == 0
    return run / "model.onnx"


@pytest.fixture
def run(exported, tmp_path):
    return Path(shutil.copytree(exported, tmp_path / "iris"))


def old_run(tmp_path, name="format1-iris"):
    """A copy of a run growml wrote before digests (run format 1)."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


def edit_model_json(run: Path, **changes) -> None:
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, **changes}, indent=2))


# What a run writes, each listed in digests.json (spelled out: the test checks the code).
RUN_FILES = [
    "config.yaml",
    "model.safetensors",
    "model.json",
    "preprocess.json",
    "metrics.json",
    "history.jsonl",
    "plots/growth.png",
]


def test_a_run_lists_the_digest_of_every_file_it_wrote_and_export_adds_its_own(exported):
    import hashlib

    listed = json.loads((exported / "digests.json").read_text())
    assert listed["algorithm"] == "sha256"
    assert set(listed["files"]) == {*RUN_FILES, "model.onnx"}
    for name, digest in listed["files"].items():
        assert hashlib.sha256((exported / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("name", RUN_FILES)
def test_a_changed_run_file_is_refused_by_predict_export_and_report(run, name):
    flip_a_byte(run / name)
    before = (run / "model.onnx").read_bytes()
    for command in (["predict", run, "iris"], ["export", run], ["report", run]):
        assert_refused(invoke(*command), f"{name} in the run {str(run)!r}", "has changed", "fit")
    assert (run / "model.onnx").read_bytes() == before  # export wrote nothing
    assert_refused(invoke("predict", run, "iris", "--engine", "torch"), name, "has changed")


def test_a_changed_model_onnx_is_refused_by_predict_and_report_and_export_replaces_it(run):
    flip_a_byte(run / "model.onnx")
    for command in (["predict", run, "iris"], ["report", run]):
        assert_refused(invoke(*command), "model.onnx", "has changed since growml export wrote it")
    assert invoke("predict", run, "iris", "--engine", "torch").exit_code == 0
    assert invoke("export", run).exit_code == 0
    assert invoke("predict", run, "iris").exit_code == 0


@pytest.mark.parametrize(
    "edit",
    [
        {"activation": "tanh"},
        {"classes": ["virginica", "versicolor", "setosa"]},
        {"hidden_widths": [4]},  # unchanged in value, rewritten in another layout
    ],
    ids=["activation", "classes-reversed", "rewritten"],
)
def test_model_json_edited_by_hand_is_refused_and_export_verifies_nothing(run, edit):
    """Export used to verify an edited run against itself: both sides read the edit."""
    (run / "model.onnx").unlink()
    edit_model_json(run, **edit)
    for command in (["predict", run, "iris"], ["export", run], ["report", run]):
        assert_refused(invoke(*command), "model.json", "has changed since growml wrote it")
    assert not (run / "model.onnx").exists()


def test_a_threshold_no_run_can_have_is_refused_even_without_digests(tmp_path):
    run = old_run(tmp_path, "format1-binary-pruned")
    edit_model_json(run, threshold=2.0)
    for command in (["predict", run, "breast-cancer"], ["export", run], ["report", run]):
        assert_refused(invoke(*command), "model.json", "threshold", "less than or equal to 1")


def test_an_old_run_whose_classes_were_reversed_is_refused(tmp_path):
    run = old_run(tmp_path)
    edit_model_json(run, classes=["virginica", "versicolor", "setosa"])
    for command in (["predict", run, "iris"], ["report", run]):
        assert_refused(invoke(*command), "model.json", "disagrees with preprocess.json", "classes")


def test_an_old_run_whose_activation_was_edited_is_not_exported(tmp_path):
    """Without digests, the run's own test metrics tell: the edit changes them."""
    run = old_run(tmp_path)
    edit_model_json(run, activation="tanh")
    assert_refused(
        invoke("export", run),
        "no longer gives the test accuracy its metrics.json recorded (0.666667 against 0.8)",
    )
    assert not (run / "model.onnx").exists()


def test_an_unknown_activation_is_refused_by_name(tmp_path):
    run = old_run(tmp_path)
    edit_model_json(run, activation="swish")
    assert_refused(invoke("report", run), "model.json", "'swish'", "relu")


def test_a_regression_model_copied_into_a_classification_run_is_refused(
    fitted, run, regression_export, tmp_path
):
    unexported = Path(shutil.copytree(fitted, tmp_path / "unexported"))
    shutil.copyfile(regression_export, unexported / "model.onnx")
    assert_refused(
        invoke("predict", unexported, "iris"),
        "model.onnx",
        "not written by growml export of this run",
    )
    shutil.copyfile(regression_export, run / "model.onnx")  # over the run's own export
    assert_refused(invoke("predict", run, "iris"), "model.onnx", "has changed since growml export")
    old = old_run(tmp_path)  # no digests: the model's metadata tells
    shutil.copyfile(regression_export, old / "model.onnx")
    assert_refused(
        invoke("predict", old, "iris"),
        "is not the export of the run",
        "task (regression) and the run's (classification) differ",
        f"growml export {old}",
    )


def test_a_model_exported_from_other_weights_of_the_same_shape_is_refused(tmp_path):
    source = old_run(tmp_path)
    assert invoke("export", source).exit_code == 0
    refitted = Path(shutil.copytree(source, tmp_path / "refitted"))
    (refitted / "model.onnx").unlink()
    weights = load_file(refitted / "model.safetensors")
    save_file(
        {name: value + 0.5 for name, value in weights.items()}, refitted / "model.safetensors"
    )
    shutil.copyfile(source / "model.onnx", refitted / "model.onnx")
    assert_refused(invoke("predict", refitted, "iris"), "exported from another model.safetensors")


def test_a_model_exported_by_a_newer_growml_is_refused(tmp_path):
    run = old_run(tmp_path)
    assert invoke("export", run).exit_code == 0
    model = onnx.load(run / "model.onnx")
    for entry in model.metadata_props:
        if entry.key == "growml_version":
            entry.value = "99.0"
    onnx.save(model, run / "model.onnx")
    assert_refused(invoke("predict", run, "iris"), "exported by a newer growml (99.0)")


def test_digests_json_removed_or_damaged_and_a_listed_file_removed_are_refused(run):
    history = (run / "history.jsonl").read_bytes()
    (run / "history.jsonl").unlink()
    assert_refused(invoke("report", run), "history.jsonl is missing from the run")
    (run / "history.jsonl").write_bytes(history)
    (run / "digests.json").write_text("{not json")
    assert_refused(invoke("predict", run, "iris"), "digests.json", "is damaged")
    (run / "digests.json").unlink()
    assert_refused(invoke("predict", run, "iris", "--engine", "torch"), "digests.json is missing")


def test_removing_model_onnx_goes_back_to_torch(run):
    (run / "model.onnx").unlink()
    shown = invoke("predict", run, "iris", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["rows"] == 150


def test_deleting_the_plots_leaves_the_run_usable(run):
    shutil.rmtree(run / "plots")
    for args in (["predict", run, "iris"], ["predict", run, "iris", "--engine", "torch"]):
        assert invoke(*args).exit_code == 0
    assert invoke("report", run).exit_code == 0


def test_export_adds_its_digest_and_keeps_the_others_as_checked(run):
    before = json.loads((run / "digests.json").read_text())["files"]
    (run / "model.onnx").unlink()
    assert invoke("export", run).exit_code == 0
    after = json.loads((run / "digests.json").read_text())["files"]
    assert {k: v for k, v in after.items() if k != "model.onnx"} == {
        k: v for k, v in before.items() if k != "model.onnx"
    }
    assert "model.onnx" in after


@pytest.mark.parametrize("name", ["format1-iris", "format1-binary-pruned"])
def test_runs_written_before_digests_still_predict_report_and_export(tmp_path, name):
    run = old_run(tmp_path, name)
    data = "iris" if name == "format1-iris" else "breast-cancer"
    torch_rows = invoke("predict", run, data, "--json")
    assert torch_rows.exit_code == 0, torch_rows.output
    assert invoke("report", run).exit_code == 0
    assert invoke("export", run).exit_code == 0
    assert not (run / "digests.json").exists()  # an old run is not rewritten
    onnx_rows = invoke("predict", run, data, "--json")
    assert onnx_rows.exit_code == 0, onnx_rows.output
    ours, theirs = json.loads(onnx_rows.stdout), json.loads(torch_rows.stdout)
    assert [r["prediction"] for r in ours["predictions"]] == [
        r["prediction"] for r in theirs["predictions"]
    ]


def test_load_run_and_the_estimators_refuse_an_edited_run(run, tmp_path):
    from growml.sklearn import GrowingMLPClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), np.repeat([0, 1], 30)
    saved = GrowingMLPClassifier(epochs=2, random_state=0).fit(X, y).save(tmp_path / "est")
    assert GrowingMLPClassifier.load(saved).predict(X).shape == (60,)
    edit_model_json(saved, activation="tanh")
    with pytest.raises(RunError, match="model.json in the run .* has changed"):
        GrowingMLPClassifier.load(saved)
    flip_a_byte(run / "preprocess.json")
    with pytest.raises(RunError, match="preprocess.json in the run .* has changed"):
        growml.load_run(run)


def test_a_run_of_format_2_loads_without_digests(run):
    """Format 2 had no digests.json: such a run is read with the checks of content only."""
    (run / "digests.json").unlink()
    (run / "model.onnx").unlink()
    edit_model_json(run, format_version=2)
    assert invoke("report", run).exit_code == 0
    assert invoke("predict", run, "iris").exit_code == 0
    assert invoke("export", run).exit_code == 0 and not (run / "digests.json").exists()
    assert invoke("predict", run, "iris").exit_code == 0  # its model.onnx: by its metadata
    edit_model_json(run, format_version=3)
    assert_refused(invoke("report", run), "digests.json is missing")


def test_predicting_with_onnx_checks_the_run_without_importing_torch(exported, tmp_path):
    import subprocess
    import sys

    rows = tmp_path / "rows.csv"
    rows.write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5.1,3.5,1.4,0.2\n"
    )
    code = (
        "import sys\n"
        "from growml.cli import main\n"
        f"sys.argv = ['growml', 'predict', {str(exported)!r}, {str(rows)!r}, '--json']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout)["rows"] == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr


def test_an_export_elsewhere_leaves_the_run_alone_and_names_its_source(run, tmp_path):
    import hashlib

    before = (run / "digests.json").read_bytes()
    assert invoke("export", run, "--out", tmp_path / "elsewhere.onnx").exit_code == 0
    assert (run / "digests.json").read_bytes() == before
    model = growml.load_onnx(tmp_path / "elsewhere.onnx")
    assert model.info["source"] == {
        name: hashlib.sha256((run / name).read_bytes()).hexdigest()
        for name in ("model.json", "model.safetensors", "preprocess.json")
    }
