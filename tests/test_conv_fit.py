"""model.arch=conv end to end: fit grows the blocks, and the run predicts, reports, exports
with parity and resumes; a wrong shape or an option that does not apply is one sentence and
exit code 2, with no run directory left behind."""

import json

import numpy as np
import pytest
from growml.cli import app
from resuming import assert_same_end, interrupted_then_resumed
from typer.testing import CliRunner

import growml

runner = CliRunner()
TOLERANCE = 1e-5


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _config(source, *settings):
    overrides = [("data.source", str(source)), ("model.arch", "conv"), *settings]
    return growml.resolve_config(overrides=overrides)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "run"
    config = _config("digits", ("model.channels", [1, 1]), ("train.epochs", 30))
    return growml.fit(config, out=out), out


def test_digits_grow_as_images(digits_run):
    result, out = digits_run
    model = json.loads((out / "model.json").read_text())
    assert model["input_shape"] == [1, 8, 8]
    # 8 × 8 is small enough already: the blocks keep its resolution (default_strides).
    assert (model["conv_layers"], model["kernel_size"], model["strides"]) == (2, 3, [1, 1])
    widths = result.metrics["hidden_widths"]
    assert len(widths) == 3 and sum(widths) > 3  # two blocks and a dense layer, grown
    assert result.metrics["test"]["accuracy"] > 0.8  # ten classes: chance is 0.1
    growth = result.metrics["growth"]
    assert growth["start_widths"] == [1, 1, 1] and len(growth["neurons_added"]) == 3


def test_the_run_predicts_what_fit_measured(digits_run):
    result, out = digits_run
    run = growml.load_run(out)
    labels = run.predict(result.data.raw_test)
    target = result.data.target_encoder.decode(result.data.y_test)
    accuracy = float(np.mean(np.asarray(labels) == np.asarray(target)))
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-9)


def test_report_names_the_blocks(digits_run):
    _, out = digits_run
    report = invoke("report", out)
    assert report.exit_code == 0, report.output
    assert "input shape" in report.output and "1 × 8 × 8" in report.output
    assert "2 blocks, kernel 3, strides 1, 1" in report.output


def test_export_has_parity(digits_run, tmp_path):
    result, out = digits_run
    exported = growml.export_run(out, tmp_path / "model.onnx")
    assert exported.parity.agrees and exported.parity.max_difference <= TOLERANCE
    onnx_model = growml.load_onnx(exported.path)
    run = growml.load_run(out)
    rows = result.data.raw_test
    np.testing.assert_array_equal(onnx_model.predict(rows), run.predict(rows))
    np.testing.assert_allclose(
        onnx_model.predict_proba(rows), run.predict_proba(rows), rtol=0, atol=TOLERANCE
    )


def test_a_flatten_head_grows_exports_with_parity_and_says_so(tmp_path):
    out = tmp_path / "run"
    config = _config(
        "digits",
        ("model.channels", [1, 1]),
        ("model.head", "flatten"),
        ("model.stride", 2),
        ("train.epochs", 25),
    )
    result = growml.fit(config, out=out)
    model = json.loads((out / "model.json").read_text())
    assert model["head"] == "flatten" and model["strides"] == [2, 2]
    widths = result.metrics["hidden_widths"]
    assert sum(widths[:2]) > 2 and result.metrics["test"]["accuracy"] > 0.8
    run = growml.load_run(out)
    assert tuple(run.model.weights[2].shape) == (widths[2], widths[1], 2 * 2)  # 8 → 4 → 2
    rows = result.data.raw_test
    labels = run.predict(rows)
    target = result.data.target_encoder.decode(result.data.y_test)
    accuracy = float(np.mean(np.asarray(labels) == np.asarray(target)))
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-9)
    exported = growml.export_run(out, tmp_path / "model.onnx")
    assert exported.parity.agrees and exported.parity.max_difference <= TOLERANCE
    np.testing.assert_array_equal(growml.load_onnx(exported.path).predict(rows), labels)
    report = invoke("report", out)
    assert "flattened; dense widths" in report.output, report.output


def _signal_csv(path, channels=2, length=12, rows=300, seed=0):
    """Two-channel signals whose class is whether channel 1 holds a bump or a dip, anywhere."""
    generator = np.random.default_rng(seed)
    x = generator.normal(0, 0.3, size=(rows, channels, length))
    labels = generator.integers(0, 2, rows)
    for row, label in enumerate(labels):
        start = generator.integers(0, length - 3)
        x[row, 1, start : start + 3] += 2.0 if label else -2.0
    names = [f"c{c}_t{t}" for c in range(channels) for t in range(length)]
    lines = [",".join([*names, "label"])]
    for row in range(rows):
        lines.append(",".join([*(f"{v:.5f}" for v in x[row].ravel()), str(labels[row])]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_table_of_signals_with_its_shape(tmp_path):
    source = _signal_csv(tmp_path / "signals.csv")
    config = growml.resolve_config(
        overrides=[
            ("data.source", str(source)),
            ("data.target", "label"),
            ("model.arch", "conv"),
            ("model.input_shape", [2, 12]),
            ("model.channels", [4]),
            ("model.hidden_widths", [4]),
            ("growth.enabled", False),
            ("train.epochs", 60),
            ("train.lr", 0.01),
        ]
    )
    result = growml.fit(config, out=tmp_path / "run")
    assert result.metrics["hidden_widths"] == [4, 4]
    assert result.metrics["test"]["accuracy"] > 0.8
    exported = growml.export_run(tmp_path / "run")
    assert exported.parity.agrees


def test_resume_ends_as_the_uninterrupted_fit(tmp_path):
    config = _config("digits", ("model.channels", [1, 1]), ("train.epochs", 8))
    reference = growml.fit(config, out=tmp_path / "reference")
    resumed = interrupted_then_resumed(config, tmp_path / "resumed", epoch=5)
    assert_same_end(resumed, reference)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["breast-cancer", "--arch", "conv"], "model.input_shape=[1,30]"),
        (["digits", "--arch", "conv", "--set", "model.input_shape=[1,8,7]"], "56 values"),
        (["digits", "--arch", "conv", "--set", "model.embedding=periodic"], "model.embedding"),
        (
            ["digits", "--arch", "conv", "--prune", "synflow", "--set", "prune.compression=4"],
            "model.arch=conv is not pruned",
        ),
        (["digits", "--arch", "conv", "--set", "model.kernel_size=4"], "must be odd"),
        (["digits", "--arch", "rnn"], "model.arch"),
        (["digits", "--arch", "conv", "--set", "model.input_shape=[64]"], "model.input_shape"),
        (["digits", "--set", "model.head=flatten"], "it needs model.arch=conv"),
        (["digits", "--arch", "conv", "--set", "model.stride=[1,2]"], "2 strides for 3 blocks"),
        (["digits", "--arch", "conv", "--set", "model.head=dense"], "model.head"),
    ],
)
def test_wrong_shapes_and_options_are_one_sentence(tmp_path, arguments, expected):
    out = tmp_path / "run"
    result = invoke("fit", *arguments, "--epochs", "2", "--out", out)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output and ".." not in result.stderr
    assert not out.exists()


def test_compare_trains_fixed_channels_in_every_block(tmp_path):
    out = tmp_path / "compare"
    result = invoke(
        "compare",
        "digits",
        "--arch",
        "conv",
        "--set",
        "model.channels=[1]",
        "--widths",
        "4",
        "--seeds",
        "1",
        "--epochs",
        "4",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    rows = {row["label"]: row for row in json.loads((out / "compare.json").read_text())["rows"]}
    assert rows["fixed 4"]["widths"] == [[4, 4]]  # one block of 4 channels, a dense layer of 4
    assert len(rows["grown"]["widths"][0]) == 2


def test_tune_searches_the_channels_of_fixed_blocks_and_not_the_gate():
    from growml.tune.space import _setting, default_space

    growing = _config("digits", ("model.channels", [1, 1]))
    assert "model.feature_gate" not in default_space(growing)
    fixed = _config("digits", ("model.channels", [1, 1]), ("growth.enabled", False))
    space = default_space(fixed)
    assert "model.channels" in space and "model.hidden_widths" in space
    assert space["model.head"].choices == ("pool", "flatten")
    assert _setting("model.channels", 16, fixed) == [16, 16]
    mlp = growml.resolve_config(overrides=[("data.source", "digits")])
    assert "model.feature_gate" in default_space(mlp) and "model.channels" not in default_space(mlp)
    # The weight decay is searched around the convolutional default.
    decay = default_space(growing)["train.weight_decay"]
    assert decay.low < growing.train.weight_decay < decay.high


def test_a_convolutional_network_takes_its_own_recipe_unless_the_settings_give_one():
    from growml.config import CONV_WEIGHT_DECAY, TrainConfig

    conv = _config("digits")
    assert (conv.train.optimizer, conv.train.lr) == ("adamw", 0.01)
    assert conv.train.weight_decay == CONV_WEIGHT_DECAY and conv.data.scaling == "channel"
    given = _config("digits", ("train.lr", 0.003), ("data.scaling", "standard"))
    assert (given.train.lr, given.train.optimizer, given.data.scaling) == (
        0.003,
        "adamw",
        "standard",
    )
    # Under another optimizer the decay would be an L2 penalty of another size: none.
    adam = _config("digits", ("train.optimizer", "adam"))
    assert adam.train.weight_decay == TrainConfig().weight_decay
    assert _config("digits", ("train.weight_decay", 0.0)).train.weight_decay == 0.0
    mlp = growml.resolve_config(overrides=[("data.source", "digits")])
    assert mlp.train == TrainConfig() and mlp.data.scaling == "standard"
    # A resolved configuration read back (a run's config.yaml) keeps what it holds.
    again = growml.resolve_config(overrides=[(k, v) for k, v in _flat(adam.model_dump())])
    assert again.train == adam.train


def _flat(settings, prefix=""):
    for key, value in settings.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
