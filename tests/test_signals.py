"""Signals and images as inputs: .npz / .npy arrays and folders of images, read into value
columns with their shape, trained with model.arch=conv, predicted and exported; every bad
file is one sentence and exit code 2, with no run directory left behind."""

import json

import numpy as np
import pytest
from growml.cli import app
from PIL import Image
from typer.testing import CliRunner

import growml
from growml.data import load_table
from growml.data.arrays import read_signals, signal_shape

runner = CliRunner()
FAST = ["--arch", "conv", "--epochs", "3", "--set", "model.channels=[2]"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _signals(rows=80, channels=2, length=10, seed=0):
    generator = np.random.default_rng(seed)
    x = generator.normal(size=(rows, channels, length)).astype(np.float32)
    y = (x[:, 0].mean(1) > 0).astype(np.int64)
    return x, y


def _image_folder(root, sizes=((6, 5),), rows=30, mode="L"):
    """``rows`` images in two class folders, each of a size from ``sizes`` (width, height)."""
    generator = np.random.default_rng(0)
    for row in range(rows):
        label = row % 2
        width, height = sizes[row % len(sizes)]
        shape = (height, width) if mode == "L" else (height, width, 3)
        pixels = generator.integers(0, 100, size=shape) + 150 * label
        folder = root / ("bright" if label else "dark")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8), mode).save(folder / f"{row}.png")
    return root


def test_an_npz_reads_as_value_columns_with_its_shape(tmp_path):
    x, y = _signals()
    np.savez(tmp_path / "signals.npz", x=x, y=y)
    table, target = read_signals(str(tmp_path / "signals.npz"))
    assert target == "y" and table.num_columns == 2 * 10 + 1
    assert signal_shape(table) == (2, 10)
    # Channel-major, as numpy reshapes: column c·L + t is channel c at position t.
    np.testing.assert_array_equal(table.column("x13").to_numpy(), x[:, 1, 3])
    loaded = load_table(str(tmp_path / "signals.npz"))
    assert loaded.signal_shape == (2, 10) and loaded.task == "classification"


def test_fit_predict_and_export_an_npz(tmp_path):
    x, y = _signals()
    np.savez(tmp_path / "signals.npz", x=x, y=y)
    np.save(tmp_path / "x.npy", x[:7])
    out = tmp_path / "run"
    fitted = invoke("fit", tmp_path / "signals.npz", *FAST, "--out", out)
    assert fitted.exit_code == 0, fitted.output
    assert json.loads((out / "model.json").read_text())["input_shape"] == [2, 10]
    predicted = invoke("predict", out, tmp_path / "x.npy", "--json", "--engine", "torch")
    assert predicted.exit_code == 0, predicted.output
    rows = json.loads(predicted.stdout)["predictions"]
    run = growml.load_run(out)
    table, _ = read_signals(str(tmp_path / "x.npy"), labelled=False)
    assert [row["prediction"] for row in rows] == list(run.predict(table))
    assert growml.export_run(out).parity.agrees


def test_an_npy_takes_its_labels_from_a_second_npy(tmp_path):
    x, y = _signals()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    result = invoke("fit", tmp_path / "x.npy", "--target", tmp_path / "y.npy", *FAST)
    assert result.exit_code == 0, result.output


def test_an_image_folder_trains_predicts_and_exports(tmp_path):
    folder = _image_folder(tmp_path / "images")
    table = load_table(str(folder))
    assert table.signal_shape == (1, 5, 6) and table.target_name == "label"
    assert sorted(set(table.target.to_pylist())) == ["bright", "dark"]
    values = table.features.column("x0").to_numpy()
    assert values.min() >= 0 and values.max() <= 1  # pixels / 255
    out = tmp_path / "run"
    result = invoke("fit", folder, *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    predicted = invoke("predict", out, folder, "--json")
    assert predicted.exit_code == 0, predicted.output
    assert len(json.loads(predicted.stdout)["predictions"]) == 30
    assert growml.export_run(out).parity.agrees


def test_images_of_several_sizes_are_resized_to_the_setting(tmp_path):
    folder = _image_folder(tmp_path / "images", sizes=((6, 5), (9, 7)), mode="RGB")
    table = load_table(str(folder), image_size=[4, 3])
    assert table.signal_shape == (3, 4, 3)  # RGB, 4 high, 3 wide
    out = tmp_path / "run"
    result = invoke("fit", folder, *FAST, "--set", "data.image_size=[4,3]", "--out", out)
    assert result.exit_code == 0, result.output
    predicted = invoke("predict", out, folder, "--json", "--engine", "torch")
    assert predicted.exit_code == 0, predicted.output


def _bad_npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: _bad_npz(p, y=np.zeros(4)), "no array 'x'"),
        (lambda p: _bad_npz(p, x=np.zeros((4, 1, 5))), "no array 'y'"),
        (lambda p: _bad_npz(p, x=np.zeros((4, 5)), y=np.zeros(4)), "has shape (4, 5)"),
        (lambda p: _bad_npz(p, x=np.zeros((4, 1, 5)), y=np.zeros(3)), "one label per row"),
        (
            lambda p: _bad_npz(p, x=np.array([[[object()]]] * 4, dtype=object), y=np.zeros(4)),
            "not a readable .npz",
        ),
        (lambda p: p / "missing.npz", "does not exist"),
    ],
)
def test_bad_arrays_are_one_sentence(tmp_path, make, expected):
    out = tmp_path / "run"
    result = invoke("fit", make(tmp_path), *FAST, "--out", out)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_an_npy_without_labels_is_one_sentence(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 5)))
    result = invoke("fit", tmp_path / "x.npy", *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--target LABELS.npy" in result.stderr


def test_bad_image_folders_are_one_sentence(tmp_path):
    one_class = tmp_path / "one"
    (one_class / "only").mkdir(parents=True)
    Image.new("L", (4, 4)).save(one_class / "only" / "a.png")
    mixed = _image_folder(tmp_path / "mixed", sizes=((6, 5), (9, 7)))
    broken = _image_folder(tmp_path / "broken")
    (broken / "dark" / "broken.png").write_bytes(b"not an image")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    for folder, expected in (
        (one_class, "one subfolder of images per class"),
        (mixed, "data.image_size=[HEIGHT,WIDTH]"),
        (broken, "broken.png' cannot be read"),
        (empty, "holds no PNG or JPEG images"),
    ):
        out = tmp_path / f"run-{folder.name}"
        result = invoke("fit", folder, *FAST, "--out", out)
        assert result.exit_code == 2, result.output
        assert expected in result.stderr, result.stderr
        assert not out.exists()


def test_a_folder_without_class_subfolders_says_what_growml_reads(tmp_path):
    (tmp_path / "data").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "data" / "a.png")
    result = invoke("fit", tmp_path / "data", *FAST, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "is a directory without subfolders" in result.stderr


def test_channel_scaling_shares_one_mean_and_std_per_channel(tmp_path):
    from growml.data import prepare

    x, y = _signals(rows=120, channels=2, length=10)
    x[:, 1] = 5 * x[:, 1] + 3
    x[:, 0, 0] = 0.0  # a position that never varies keeps its channel's scale
    np.savez(tmp_path / "signals.npz", x=x, y=y)
    table = load_table(str(tmp_path / "signals.npz"))
    config = growml.resolve_config(
        overrides=[("data.source", str(tmp_path / "signals.npz")), ("model.arch", "conv")]
    )
    assert config.data.scaling == "channel"  # the default of a convolutional network
    prepared = prepare(table, config.data, seed=0)
    scalings = [column.scaling for column in prepared.preprocessor.columns]
    assert len({(s.mean, s.std) for s in scalings[:10]}) == 1
    assert len({(s.mean, s.std) for s in scalings[10:]}) == 1
    train = prepared.x_train.reshape(-1, 2, 10)
    for channel in range(2):
        assert float(train[:, channel].mean()) == pytest.approx(0.0, abs=1e-5)
        assert float(train[:, channel].std()) == pytest.approx(1.0, abs=1e-4)
    assert np.all(train[:, 0, 0] == train[0, 0, 0])  # a constant position stays constant


def test_an_mlp_keeps_standard_scaling_and_a_table_refuses_channel_scaling(tmp_path, write_csv):
    mlp = growml.resolve_config(overrides=[("data.source", "digits")])
    assert mlp.data.scaling == "standard"
    explicit = growml.resolve_config(
        overrides=[("data.source", "digits"), ("model.arch", "conv"), ("data.scaling", "robust")]
    )
    assert explicit.data.scaling == "robust"
    source = write_csv("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(30)))
    result = invoke("fit", source, "--target", "y", "--set", "data.scaling=channel")
    assert result.exit_code == 2 and "data.scaling=channel scales the channels" in result.stderr
    assert "model.input_shape=[1,2]" in result.stderr
