"""Data larger than memory in bounded memory: the split, the metrics and the validation of
millions of rows are computed without per-row copies, and equal what the whole-array code
computes on the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from growml.config import DataConfig, TrainConfig
from growml.data import load_table, prepare
from growml.data import split as split_module
from growml.data.cache import mapped_matrices, release_pages
from growml.data.split import split_indices, stratified_split
from growml.losses import default_loss
from growml.nn import GrowingMLP
from growml.train import Trainer
from growml.train import metrics as metrics_module
from growml.train import validation as validation_module
from growml.train.metrics import evaluate


@pytest.mark.parametrize(
    ("rows", "classes", "seed", "part"),
    [(1000, 2, 0, 2), (1000, 2, 0, 200), (5000, 7, 3, 1666), (20001, 3, 42, 7), (300, 2, 5, 100)],
)
def test_the_stratified_split_draws_scikit_learns_rows(rows, classes, seed, part):
    rng = np.random.default_rng(rows + classes)
    labels = rng.integers(0, classes, rows)
    positions = np.sort(rng.choice(10 * rows, rows, replace=False))
    theirs = train_test_split(positions, test_size=part, random_state=seed, stratify=labels)
    mine = stratified_split(positions, part, seed, labels)
    for drawn, expected in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(drawn, expected)


def test_the_stratified_split_of_text_labels_draws_scikit_learns_rows():
    labels = np.array(["b", "a", "c"], dtype=object)[np.random.default_rng(0).integers(0, 3, 3000)]
    theirs = train_test_split(np.arange(3000), test_size=600, random_state=7, stratify=labels)
    for drawn, expected in zip(
        stratified_split(np.arange(3000), 600, 7, labels), theirs, strict=True
    ):
        np.testing.assert_array_equal(drawn, expected)


def test_large_splits_are_the_parts_of_small_ones(monkeypatch):
    labels = np.random.default_rng(1).integers(0, 4, 10_000)
    small = split_indices(labels, len(labels), 0.2, 0.2, seed=3)
    monkeypatch.setattr(split_module, "LARGE_SPLIT_ROWS", 1)
    large = split_indices(labels, len(labels), 0.2, 0.2, seed=3)
    for mine, theirs in zip(large, small, strict=True):
        np.testing.assert_array_equal(mine, theirs)
        assert mine.dtype == np.int64


def test_a_stratified_split_needs_every_class_in_every_part():
    with pytest.raises(ValueError, match="stratified split"):
        stratified_split(np.arange(10), 2, 0, np.array([0] * 9 + [1]))


def _network(data, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n_outputs = data.target_encoder.n_outputs
    return GrowingMLP(data.x_train.shape[1], [8], n_outputs, generator=generator)


@pytest.mark.parametrize(
    ("dataset", "weighted", "threshold"),
    [
        ("moons", False, None),
        ("moons", True, 0.3),
        ("wine", False, None),
        ("wine", True, None),
        ("friedman", False, None),
        ("friedman", True, None),
    ],
)
def test_metrics_in_slices_equal_the_metrics_of_all_rows(monkeypatch, dataset, weighted, threshold):
    data = prepare(load_table(dataset), DataConfig(), seed=0)
    model = _network(data)
    weights = np.random.default_rng(0).uniform(0.5, 2, len(data.y_train)) if weighted else None
    arguments = (model, data.x_train, data.y_train, data.target_encoder, threshold, weights)
    whole = evaluate(*arguments)
    monkeypatch.setattr(metrics_module, "EVALUATION_SLICE", 7)
    sliced = evaluate(*arguments)
    assert sliced.keys() == whole.keys()
    # The float32 outputs of a few rows at a time may differ from all at once in the last bit.
    assert sliced == pytest.approx(whole, rel=1e-8, abs=1e-12)


def test_metrics_in_slices_of_a_constant_target_follow_scikit_learn(monkeypatch):
    data = prepare(load_table("friedman"), DataConfig(), seed=0)
    constant = np.zeros_like(data.y_train)
    whole = evaluate(_network(data), data.x_train, constant, data.target_encoder)
    monkeypatch.setattr(metrics_module, "EVALUATION_SLICE", 10)
    sliced = evaluate(_network(data), data.x_train, constant, data.target_encoder)
    # The float32 outputs of a few rows at a time may differ from all at once in the last bit.
    assert sliced == pytest.approx(whole, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("dataset", ["moons", "friedman"])
def test_validation_of_mapped_rows_in_spans_equals_all_at_once(tmp_path, monkeypatch, dataset):
    data = prepare(load_table(dataset), DataConfig(), seed=0)
    task = data.task
    trainer = Trainer(TrainConfig(), default_loss(task, data.target_encoder.n_outputs), task)
    (mapped,) = mapped_matrices([data.x_val.shape], str(tmp_path))
    mapped[:] = data.x_val
    model = _network(data)
    at_once = validation_module.Validation(trainer, data.x_val, data.y_val, None)(model)
    monkeypatch.setattr(validation_module, "_VALIDATION_ROWS", 9)
    in_spans = validation_module.Validation(trainer, mapped, data.y_val, None)(model)
    assert in_spans == pytest.approx(at_once, rel=1e-6)


def _resident_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("RssFile missing")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_released_pages_leave_resident_memory_and_keep_the_rows(tmp_path):
    (matrix,) = mapped_matrices([(1 << 20, 16)], str(tmp_path))  # 64 MB
    rows = np.random.default_rng(0).normal(size=(1000, 16)).astype(np.float32)
    before = _resident_file_mb()
    matrix[:] = 1.0
    matrix[-1000:] = rows
    written = _resident_file_mb()
    release_pages(matrix)
    assert written - before > 50
    assert written - _resident_file_mb() > 50
    np.testing.assert_array_equal(matrix[-1000:], rows)
    assert float(matrix[: 1 << 19].sum()) == 1 << 23
    release_pages(np.zeros(3))  # an ordinary array is left alone
