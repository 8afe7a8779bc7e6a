"""A run on a CUDA GPU against the same run on the CPU; skipped where CUDA is not present.

Floating point sums in another order on a GPU, so the runs agree within tolerance, not to the
bit: growth's discrete choices (which candidates, how many) may differ by a neuron or two, so
the widths agree within a margin, the metrics within a small one, and predictions of one
trained network equal in float64. TF32 is off: it would round float32 products to 10 bits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from growml.checkpoint import read_checkpoint
from growml.config import resolve_config
from growml.fitting import fit
from growml.runs import load_run
from growml.runs.run import inference_outputs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.fixture(autouse=True)
def full_float32(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)


RUNS = {
    "growth": ("moons", []),
    "growth with depth and trimming": ("spirals", [("growth.max_depth", 2)]),
    "a convolutional network": (
        "mnist1d",
        [("model.arch", "conv"), ("model.channels", [4]), ("train.epochs", 10)],
    ),
}


@pytest.mark.parametrize("name", RUNS)
def test_a_cuda_run_grows_the_cpu_runs_widths_with_its_metrics(name, tmp_path):
    data, settings = RUNS[name]
    runs = {}
    for device in ("cpu", "cuda"):
        config = resolve_config(
            {}, [("data.source", data), ("seed", 0), ("train.device", device), *settings]
        )
        runs[device] = fit(config, out=tmp_path / device)
    cpu, cuda = runs["cpu"], runs["cuda"]
    assert cuda.metrics["growth"]["steps"] > 0  # growth did run on the GPU
    widths = zip(cuda.run.model.hidden_widths, cpu.run.model.hidden_widths, strict=True)
    for on_gpu, on_cpu in widths:
        assert abs(on_gpu - on_cpu) <= max(2, 0.1 * on_cpu)
    for metric in ("accuracy", "log_loss"):
        assert cuda.metrics["test"][metric] == pytest.approx(cpu.metrics["test"][metric], abs=0.02)
    assert next(cuda.run.model.parameters()).device.type == "cpu"  # saved from the CPU


def test_predictions_on_the_gpu_equal_those_on_the_cpu(tmp_path):
    config = resolve_config({}, [("data.source", "wine"), ("train.epochs", 20)])
    run = fit(config, out=tmp_path / "run").run
    x = np.random.default_rng(0).normal(size=(500, run.model.spec().input_size))
    on_cpu = inference_outputs(run.model, x)
    on_gpu = inference_outputs(run.model, x, torch.device("cuda"))
    assert on_gpu.device.type == "cpu"
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-9, atol=1e-9)


def test_a_run_checkpointed_on_the_gpu_resumes_on_the_cpu(tmp_path):
    settings = [
        ("data.source", "moons"),
        ("seed", 0),
        ("train.epochs", 30),
        ("train.checkpoint_seconds", 0),
    ]
    out = tmp_path / "run"

    def stop_at_epoch_10(event):
        if getattr(event, "epoch", 0) == 10 and type(event).__name__ == "EpochEnd":
            raise KeyboardInterrupt

    config = resolve_config({}, [*settings, ("train.device", "cuda")])
    with pytest.raises(KeyboardInterrupt):
        fit(config, out=out, observers=[stop_at_epoch_10])
    partial = next(tmp_path.glob(".run.partial-*"))
    checkpoint = read_checkpoint(partial)
    assert checkpoint is not None
    assert all(tensor.device.type == "cpu" for tensor in checkpoint.tensors.values())
    config = resolve_config({}, [*settings, ("train.device", "cpu")])
    resumed = fit(config, out=out, resume=True)
    assert resumed.train.epochs >= 10  # went on from the checkpoint, on the CPU
    assert load_run(resumed.path).model.hidden_widths == resumed.run.model.hidden_widths
