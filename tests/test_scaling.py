"""data.scaling: the robust and quantile formulas against float64 re-derivations and
scikit-learn, preprocess.json round trips, and parity of the exported ONNX graph."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pyarrow as pa
import pyarrow.csv
import pytest
import yaml
from growml.cli import app
from sample_tables import mixed_csv
from scipy.special import ndtri
from sklearn.preprocessing import QuantileTransformer
from typer.testing import CliRunner

import growml
from growml.data.preprocess import Preprocessor
from growml.data.scaling import QuantileScaling, RobustScaling, normal_quantile
from growml.export.columns import preprocessing
from growml.export.metadata import DEFAULT_OPSET, NUMBERS_INPUT
from growml.export.nodes import Graph
from growml.sklearn import GrowingMLPClassifier

runner = CliRunner()
TOLERANCE = 1e-5
# Acklam's approximation is within 1.15e-9 relative of Φ⁻¹: below 6e-9 up to |Φ⁻¹| = 5.2.
NORMAL_QUANTILE_ERROR = 1e-8


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def robust_reference(train: np.ndarray, values: np.ndarray) -> np.ndarray:
    """RealMLP's robust scale and smooth clip, written out in float64 from the paper."""
    median = np.percentile(train, 50, method="linear")
    spread = np.percentile(train, 75, method="linear") - np.percentile(train, 25, method="linear")
    if spread == 0:
        spread = 0.5 * (train.max() - train.min())
    factor = 0.0 if spread == 0 else 1.0 / (spread + 1e-30)
    z = factor * (values - median)
    return z / np.sqrt(1 + (z / 3) ** 2)


# --- robust ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "train",
    [
        pytest.param(np.random.default_rng(0).lognormal(3, 1, 500), id="skewed"),
        pytest.param(np.r_[np.zeros(80), np.linspace(1, 9, 20)], id="quartiles-equal"),
        pytest.param(np.full(30, 4.5), id="constant"),
    ],
)
def test_robust_scaling_follows_the_paper(train):
    values = np.r_[train, -1e6, -3.0, 0.0, 2.5, 1e6, train.max() * 10]
    fitted = RobustScaling.fit(train)
    np.testing.assert_allclose(
        fitted.apply(values.copy()), robust_reference(train, values), rtol=1e-13, atol=1e-15
    )


def test_robust_scaling_fallbacks_and_bounds():
    quartiles_equal = RobustScaling.fit(np.r_[np.zeros(80), np.linspace(1, 9, 20)])
    assert quartiles_equal.median == 0 and quartiles_equal.factor == pytest.approx(2 / 9)
    assert RobustScaling.fit(np.full(30, 4.5)).factor == 0
    smooth = RobustScaling.fit(np.array([-1.0, 0.0, 1.0]))  # median 0, factor 1
    # Near the centre the clip is the identity; far out it tends to ±3, never beyond.
    np.testing.assert_allclose(smooth.apply(np.array([0.0, 1e-4])), [0.0, 1e-4], rtol=1e-8)
    assert smooth.apply(np.array([3.0]))[0] == pytest.approx(3 / np.sqrt(2))
    extreme = smooth.apply(np.array([3e38, -3e38, 1e30]))
    np.testing.assert_allclose(extreme, [3.0, -3.0, 3.0])
    # Beyond float32's range a value is infinite to the exported model, so missing to both.
    assert np.isnan(smooth.apply(np.array([np.nan, 1e300]))).all()  # missing to both engines


# --- quantile -------------------------------------------------------------------------------


def test_normal_quantile_matches_the_exact_inverse():
    p = np.r_[np.linspace(1e-7, 1 - 1e-7, 100_001), np.logspace(-7, -1, 500)]
    p = np.r_[p, 1 - p]
    assert np.abs(normal_quantile(p) - ndtri(p)).max() < NORMAL_QUANTILE_ERROR


@pytest.mark.parametrize("rows", [40, 1000, 3000])
def test_quantile_scaling_matches_scikit_learn(rows):
    """Ties (values rounded to 0.1), values at, between and beyond the quantiles."""
    rng = np.random.default_rng(rows)
    train = np.round(rng.lognormal(1, 0.8, rows), 1)
    fitted = QuantileScaling.fit(train)
    assert len(fitted.quantiles) == min(rows, 1000)
    values = np.r_[train, rng.lognormal(1, 1.2, 2000), train.min() - 1, train.max() + 1]
    reference = QuantileTransformer(
        n_quantiles=1000, output_distribution="normal", subsample=None
    ).fit(train[:, None])
    expected = reference.transform(values[:, None])[:, 0]
    # At a repeated quantile itself, scikit-learn's np.percentile can leave one of the
    # repeats an ulp off, which moves its two-way average there; growml puts the order
    # statistics exactly (test below). Everywhere else the maps agree.
    quantiles = np.asarray(fitted.quantiles)
    repeated = np.unique(quantiles[1:-1][np.diff(quantiles)[1:] == 0])
    elsewhere = ~np.isin(values, repeated)
    assert elsewhere.sum() > 1000
    scaled = fitted.apply(values.copy())
    assert np.abs(scaled - expected)[elsewhere].max() < NORMAL_QUANTILE_ERROR


def test_a_value_equal_to_repeated_quantiles_gets_the_middle_of_their_probabilities():
    train = np.array([1.0, 2.0, 2.0, 2.0, 3.0, 4.0])  # 6 quantiles: p = 0, 0.2, ..., 1
    fitted = QuantileScaling.fit(train)
    assert fitted.quantiles == tuple(train)
    scaled = fitted.apply(np.array([2.0, 2.5, 1.5]))
    np.testing.assert_allclose(scaled, ndtri([0.4, 0.7, 0.1]), atol=NORMAL_QUANTILE_ERROR)


def test_quantile_scaling_of_a_single_value_is_zero_and_missing_stays_missing():
    constant = QuantileScaling.fit(np.full(50, 7.0))
    np.testing.assert_array_equal(constant.apply(np.array([7.0, -1.0, 100.0])), [0, 0, 0])
    fitted = QuantileScaling.fit(np.arange(10.0))
    scaled = fitted.apply(np.array([np.nan, 4.5, -5.0, 50.0]))
    assert np.isnan(scaled[0]) and scaled[1] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(scaled[2:], ndtri([1e-7, 1 - 1e-7]), atol=NORMAL_QUANTILE_ERROR)


def test_quantiles_sit_on_the_order_statistics_when_rows_are_few():
    """With fewer rows than 1000 every quantile is an order statistic, exactly."""
    train = np.random.default_rng(3).normal(size=999)
    np.testing.assert_array_equal(QuantileScaling.fit(train).quantiles, np.sort(train))


# --- the preprocessor and preprocess.json ---------------------------------------------------


def features_with_gaps() -> pa.Table:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(10, 3, 200), 1)
    return pa.table(
        {
            "x": pa.array([None if i % 9 == 0 else v for i, v in enumerate(x)]),
            "flag": pa.array(rng.random(200) < 0.3),
            "colour": pa.array(["red", "blue"] * 100),
        }
    )


@pytest.mark.parametrize("scaling", ["standard", "robust", "quantile"])
def test_preprocess_json_round_trips_every_scaling(scaling):
    features = features_with_gaps()
    fitted = Preprocessor.fit(features, scaling=scaling)
    saved = json.loads(json.dumps(fitted.to_dict()))
    assert saved["scaling"] == scaling
    again = Preprocessor.from_dict(saved)
    assert again.scaling == scaling
    np.testing.assert_array_equal(again.transform(features), fitted.transform(features))
    matrix = fitted.transform(features)
    missing = np.asarray(features.column("x").is_null())
    # A missing number becomes 0 with its indicator set, whatever the scaling.
    assert fitted.output_names[:2] == ["x", "x_missing"]
    np.testing.assert_array_equal(matrix[missing, 0], 0.0)
    np.testing.assert_array_equal(matrix[:, 1], missing)


def test_preprocess_json_without_scaling_reads_as_standard():
    features = features_with_gaps()
    saved = Preprocessor.fit(features).to_dict()
    del saved["scaling"]
    older = Preprocessor.from_dict(saved)
    assert older.scaling == "standard"
    column = np.asarray(features.column("x").to_numpy(zero_copy_only=False), dtype=float)
    present = column[~np.isnan(column)]
    expected = (column - present.mean()) / present.std()
    scaled = older.transform(features)[:, 0]
    np.testing.assert_allclose(scaled[~np.isnan(column)], expected[~np.isnan(column)], rtol=1e-6)


def test_a_recipe_sets_the_scaling_fitted_on_training_rows_only(tmp_path):
    recipe = yaml.safe_load("data: {source: wine, scaling: robust}\ntrain: {epochs: 2}\n")
    run = tmp_path / "run"
    result = growml.fit(growml.resolve_config(recipe), out=run)
    x_train = result.data.x_train
    # The training rows' medians scale to 0 (the smooth clip is odd): the statistics are the
    # training rows', not those of every row.
    np.testing.assert_allclose(np.median(x_train, axis=0), 0.0, atol=1e-6)
    assert growml.load_run(run).preprocessor.scaling == "robust"


def test_graph_scaling_equals_numpy_at_every_quantile_and_between(tmp_path):
    """The two-level search of the graph against numpy's interpolation, fed float64: columns
    with 3, 70 and 1000 distinct quantiles (block edges included), ties and a constant."""
    rng = np.random.default_rng(4)
    train = pa.table(
        {
            "few": rng.integers(0, 3, 2000).astype(float),
            "tied": np.round(rng.normal(0, 1, 2000), 1),
            "many": rng.lognormal(0, 1, 2000),
            "constant": np.full(2000, 2.5),
        }
    )
    preprocessor = Preprocessor.fit(train, scaling="quantile")
    quantiles = np.unique(np.concatenate([c.scaling.quantiles for c in preprocessor.columns]))
    probes = np.r_[quantiles, (quantiles[1:] + quantiles[:-1]) / 2, -100.0, 100.0]
    rows = pa.table({name: probes for name in train.column_names})
    graph = Graph(DEFAULT_OPSET, [*train.column_names, NUMBERS_INPUT])
    features, order = preprocessing(graph, preprocessor, True, onnx.TensorProto.DOUBLE)
    output = onnx.helper.make_tensor_value_info(features, onnx.TensorProto.FLOAT, ["N", 4])
    numbers = onnx.helper.make_tensor_value_info(NUMBERS_INPUT, onnx.TensorProto.DOUBLE, ["N", 4])
    model = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, "scaling", [numbers], [output], graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", DEFAULT_OPSET)],
    )
    model.ir_version = 8
    session = onnxruntime.InferenceSession(model.SerializeToString())
    (computed,) = session.run(None, {NUMBERS_INPUT: np.column_stack([probes] * 4)})
    expected = preprocessor.transform(rows)[:, order]
    np.testing.assert_allclose(computed, expected, rtol=0, atol=1e-6)  # float32 outputs


# --- commands and estimators ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::growml.errors.GrowmlWarning")
@pytest.mark.parametrize("scaling", ["robust", "quantile"])
def test_export_keeps_parity_on_training_ties_and_odd_values(tmp_path, scaling):
    source = mixed_csv(tmp_path / "mixed.csv")
    run_dir = tmp_path / "run"
    fitted = invoke(
        "fit", source, "--target", "label", "--epochs", "5", "--fixed", "6", "--out", run_dir,
        "--set", f"data.scaling={scaling}",
    )  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    exported = invoke("export", run_dir, "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["max_difference"] <= TOLERANCE
    run = growml.load_run(run_dir)
    model = growml.load_onnx(run_dir / "model.onnx")
    every_row = pa.csv.read_csv(source).drop(["label"])  # training values, repeated ones too
    odd = [
        {"age": float("inf"), "income": float("nan"), "colour": "red", "member": False},
        {"age": -1e30, "income": 0.0, "colour": "purple", "member": True},
        {"age": 1e300, "income": 1e9, "colour": None, "member": None},
    ]
    for rows in (every_row, odd):
        np.testing.assert_array_equal(model.predict(rows), run.predict(rows))
        np.testing.assert_allclose(
            model.predict_proba(rows), run.predict_proba(rows), rtol=0, atol=TOLERANCE
        )


@pytest.mark.parametrize("source", ["friedman", "digits"])
def test_quantile_export_of_a_regression_and_of_integer_pixels(tmp_path, source):
    run_dir = tmp_path / "run"
    fitted = invoke(
        "fit", source, "--epochs", "3", "--fixed", "8", "--out", run_dir,
        "--set", "data.scaling=quantile",
    )  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    exported = invoke("export", run_dir, "--json")
    assert exported.exit_code == 0, exported.output
    shown = json.loads(exported.stdout)
    assert shown["max_difference"] <= shown["tolerance"]
    if source == "digits":  # integers are exact in float32, so the input stays float32
        assert shown["number_type"] == "float32"


def test_an_unknown_scaling_is_refused_in_one_sentence(tmp_path):
    result = invoke("fit", "iris", "--out", tmp_path / "run", "--set", "data.scaling=minmax")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "data.scaling" in message and "'quantile'" in message and "minmax" in message
    assert message.count("\n") == 0 and "Traceback" not in result.output


def test_the_report_names_the_scaling(tmp_path):
    settings = ["--set", "data.scaling=robust", "--set", "train.epochs=3"]
    assert invoke("fit", "iris", "--out", tmp_path / "run", *settings).exit_code == 0
    report = invoke("report", tmp_path / "run")
    assert report.exit_code == 0
    line = next(line for line in report.stdout.splitlines() if " scaling " in line)
    assert "robust (numeric columns)" in line


@pytest.mark.filterwarnings("ignore::growml.errors.GrowmlWarning")
def test_estimator_scales_as_set_and_exports(tmp_path):
    rng = np.random.default_rng(2)
    X = pd.DataFrame(np.round(rng.lognormal(0, 1, (300, 3)), 2), columns=["a", "b", "c"])
    y = (X["a"] > X["b"]).astype(int)
    estimator = GrowingMLPClassifier(epochs=5, start=4, set={"data.scaling": "quantile"})
    estimator.fit(X, y)
    assert estimator.run_.preprocessor.scaling == "quantile"
    model = growml.load_onnx(estimator.to_onnx(tmp_path / "model.onnx", X=X))
    table = pa.Table.from_pandas(X, preserve_index=False)
    np.testing.assert_allclose(
        model.predict_proba(table), estimator.predict_proba(X), rtol=0, atol=TOLERANCE
    )
