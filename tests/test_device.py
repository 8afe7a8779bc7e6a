"""``train.device``: resolved to a device this machine has, refused in one sentence when it is
not there, and every tensor of training and growth on the network's device.

No GPU is needed: a run whose training happens under ``torch.device("meta")`` as the default
device puts every tensor made without naming its device on ``meta``, where mixing it with the
network's CPU tensors fails. A run that passes makes nothing on the default device, which is
what a CUDA run needs (``tests/test_cuda.py`` checks a real one where CUDA is present).
"""

from __future__ import annotations

import json

import pytest
import torch
from growml.cli import app
from sklearn.datasets import make_moons
from typer.testing import CliRunner

from growml.compare import compare
from growml.config import resolve_config
from growml.errors import ConfigError
from growml.events import EpochEnd
from growml.fitting import fit
from growml.sklearn import GrowingMLPClassifier
from growml.train import trainer as trainer_module
from growml.train.device import resolve_device
from growml.tune import resolve_tune_config, tune

TUNE_FAST = [("data.source", "moons"), ("train.epochs", 2)]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def test_auto_takes_the_cpu_on_a_machine_without_a_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@NO_CUDA
@pytest.mark.parametrize("setting", ["cuda", "cuda:1"])
def test_a_cuda_device_that_is_not_there_is_refused_in_one_sentence(setting):
    with pytest.raises(ConfigError, match=rf"train.device={setting}: this machine has no CUDA"):
        resolve_device(setting)


def test_a_device_torch_does_not_know_is_refused_by_the_settings():
    with pytest.raises(ConfigError, match="train.device must be auto, cpu, cuda, cuda:N or mps"):
        resolve_config({}, [("train.device", "gpu")])


def _meta_default(run):
    """``Trainer.run`` with ``meta`` as the default device for every tensor it makes."""

    def on_meta(self, *args, **kwargs):
        with torch.device("meta"):
            return run(self, *args, **kwargs)

    return on_meta


RUNS = {
    "growth with depth and trimming": ("moons", [("growth.max_depth", 3)]),
    "a weighted loss": ("wine", [("loss.class_weight", "balanced"), ("train.epochs", 40)]),
    "growth and pruning after it": (
        "breast-cancer",
        [("prune.method", "synflow"), ("prune.compression", 2.0), ("train.epochs", 30)],
    ),
    "a soft-set loss with its warm-up": (
        "imbalanced",
        [("loss.name", "soft-f1"), ("train.epochs", 20)],
    ),
    "numeric embeddings and the feature gate": (
        "wine",
        [("model.embedding", "periodic"), ("model.feature_gate", True), ("train.epochs", 30)],
    ),
    "regression": ("friedman", [("train.epochs", 30)]),
    "a convolutional network": (
        "mnist1d",
        [("model.arch", "conv"), ("model.channels", [4]), ("train.epochs", 4)],
    ),
}


@pytest.mark.parametrize("name", RUNS)
def test_training_and_growth_make_no_tensor_off_the_networks_device(name, monkeypatch, tmp_path):
    """The run ends as it does without ``meta`` as the default device: same widths, same
    metrics (a tensor made on ``meta`` fails the step that uses it, and growth that fails
    adds nothing)."""
    data, settings = RUNS[name]
    config = resolve_config({}, [("data.source", data), ("seed", 0), *settings])
    plain = fit(config, out=tmp_path / "plain")
    monkeypatch.setattr(trainer_module.Trainer, "run", _meta_default(trainer_module.Trainer.run))
    on_meta = fit(config, out=tmp_path / "meta")
    assert on_meta.run.model.hidden_widths == plain.run.model.hidden_widths
    assert on_meta.metrics["test"] == plain.metrics["test"]


@NO_CUDA
@pytest.mark.parametrize(
    "command",
    [
        ["fit", "moons", "--epochs", "2"],
        ["compare", "moons", "--widths", "4", "--seeds", "1", "--epochs", "2"],
        ["tune", "moons", "--trials", "1", "--epochs", "2"],
    ],
)
def test_a_missing_gpu_stops_every_command_in_one_sentence_before_it_writes(
    command, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "train.device=cuda: this machine has no CUDA GPU" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("device") / "run"
    result = CliRunner().invoke(app, ["fit", "moons", "--epochs", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_predict_on_the_cpu_by_choice_gives_the_default_predictions(moons_run):
    default = CliRunner().invoke(app, ["predict", str(moons_run), "moons", "--json"])
    on_cpu = CliRunner().invoke(
        app, ["predict", str(moons_run), "moons", "--json", "--device", "cpu", "--engine", "torch"]
    )
    assert default.exit_code == on_cpu.exit_code == 0, default.output + on_cpu.output
    assert json.loads(default.stdout) == json.loads(on_cpu.stdout)


def test_predict_refuses_a_gpu_for_onnxruntime(moons_run):
    exported = CliRunner().invoke(app, ["export", str(moons_run)])
    assert exported.exit_code == 0, exported.output
    result = CliRunner().invoke(app, ["predict", str(moons_run), "moons", "--device", "cuda"])
    assert result.exit_code == 2
    assert "--device cuda runs the torch network; add --engine torch" in result.output


def test_a_study_is_joined_whatever_device_each_worker_names(tmp_path):
    """Where a worker trains is not part of what the study searches."""
    config, settings = resolve_tune_config({}, [*TUNE_FAST, ("train.device", "cpu")])
    tune(config, settings, trials=1, out=tmp_path / "study")
    config, settings = resolve_tune_config({}, [*TUNE_FAST, ("train.device", "auto")])
    again = tune(config, settings, trials=1, out=tmp_path / "study")
    assert again.document["trials"]["total"] == 2


def test_the_estimators_take_a_device():
    X, y = make_moons(200, noise=0.2, random_state=0)
    model = GrowingMLPClassifier(epochs=5, random_state=0, device="cpu").fit(X, y)
    assert model.predict(X).shape == (200,)
    assert GrowingMLPClassifier(epochs=5, random_state=0).fit(X, y).score(X, y) == model.score(X, y)


def test_an_interrupted_run_resumes_with_another_device_setting(tmp_path):
    """A checkpoint holds CPU tensors: it resumes whatever ``train.device`` says now."""
    settings = [("data.source", "moons"), ("seed", 0), ("train.epochs", 30)]
    settings.append(("train.checkpoint_seconds", 0))

    def stop_at_epoch_10(event):
        if isinstance(event, EpochEnd) and event.epoch == 10:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(
            resolve_config({}, [*settings, ("train.device", "cpu")]),
            out=out,
            observers=[stop_at_epoch_10],
        )
    resumed = fit(resolve_config({}, [*settings, ("train.device", "auto")]), out=out, resume=True)
    history = [
        line for line in (out / "history.jsonl").read_text().splitlines() if '"epoch"' in line
    ]
    assert resumed.train.epochs > 10 and len(history) >= resumed.train.epochs


def test_a_comparison_goes_on_under_another_device_setting(tmp_path):
    """Members recorded on one device are not trained again when the comparison is run again
    naming another: where it trains is not what it compares."""
    base = [("data.source", "moons"), ("train.epochs", 3)]
    out = tmp_path / "compare"
    compare(resolve_config({}, [*base, ("train.device", "cpu")]), [(4,)], 1, jobs=1, out=out)
    records = {path: path.stat().st_mtime_ns for path in (out / "members").glob("*.json")}
    assert len(records) == 2
    compare(resolve_config({}, [*base, ("train.device", "auto")]), [(4,)], 1, jobs=1, out=out)
    assert {path: path.stat().st_mtime_ns for path in records} == records
