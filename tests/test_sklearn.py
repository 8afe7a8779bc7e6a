"""The scikit-learn estimators: scikit-learn's own checks, its tools, persistence, export."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_iris, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import growml
from growml.config import DataConfig
from growml.data import split_indices, split_rows, table_from_columns
from growml.errors import ConfigError, DataError, GrowmlWarning, RunError
from growml.events import GrowthStep, TrainEnd
from growml.sklearn import GrowingMLPClassifier, GrowingMLPRegressor

# Few epochs and a large step keep the ~60 fits of scikit-learn's checks to seconds.
FAST = {"epochs": 5, "lr": 0.05, "start": 4, "random_state": 0}


# The validation split and the batches are drawn over rows, so a row of weight w and w copies
# of it land in different parts: the fits agree in expectation, not to 1e-7 (reordering the
# rows of one weighted fit alone moves its probabilities by 0.1; scikit-learn's own MLP passes
# this check only with its full-batch lbfgs solver). Its 15 rows also keep fewer than the 10
# rows growml needs once those of weight 0 are left out.
SAMPLE_WEIGHT_EQUIVALENCE = {
    "check_sample_weight_equivalence_on_dense_data": "the split and batches are drawn over rows"
}


@parametrize_with_checks(
    [GrowingMLPClassifier(**FAST), GrowingMLPRegressor(**FAST)],
    expected_failed_checks=lambda estimator: SAMPLE_WEIGHT_EQUIVALENCE,
)
def test_scikit_learn_checks(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture(scope="module")
def cancer():
    return load_breast_cancer(return_X_y=True)


@pytest.fixture(scope="module")
def fitted_iris(iris):
    X, y = iris
    return GrowingMLPClassifier(epochs=30, lr=0.02, random_state=0).fit(X, y)


def mixed_frame(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A DataFrame with numbers, a pandas categorical, text and missing values, whose
    target depends on each."""
    rng = np.random.default_rng(seed)
    size = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    shape = rng.choice(["round", "square"], rows).astype(object)
    score = size + (colour == "red") * 2.0 - (shape == "square")
    size[rng.random(rows) < 0.1] = np.nan
    shape[rng.random(rows) < 0.1] = None
    X = pd.DataFrame({"size": size, "colour": pd.Categorical(colour), "shape": shape})
    return X, np.where(score > 0.5, "yes", "no")


def test_exported_from_growml() -> None:
    assert growml.GrowingMLPClassifier is GrowingMLPClassifier
    assert growml.GrowingMLPRegressor is GrowingMLPRegressor


def test_learned_state_of_a_growing_network(fitted_iris, iris) -> None:
    X, y = iris
    estimator = fitted_iris
    assert list(estimator.classes_) == [0, 1, 2]
    assert estimator.n_features_in_ == 4
    assert list(estimator.feature_names_in_) == list(X.columns)
    assert estimator.hidden_widths_[0] > 1, "it grew from width 1"
    assert estimator.n_parameters_ == estimator.run_.model.n_parameters()
    assert estimator.threshold_ is None  # three classes: the largest logit decides
    # Growth's training ran its 30 epochs; trimming's fine-tuning follows it in the curve.
    ends = [e for e in estimator.history_ if isinstance(e, TrainEnd)]
    assert ends[0].epochs == 30 and estimator.n_iter_ == len(estimator.loss_curve_)
    assert estimator.n_iter_ == sum(end.epochs for end in ends)
    assert estimator.loss_curve_[-1] < estimator.loss_curve_[0]
    assert any(isinstance(e, GrowthStep) and e.added for e in estimator.history_)
    assert "test" not in estimator.metrics_, "all of X is training and validation"
    assert estimator.metrics_["rows"]["train"] + estimator.metrics_["rows"]["validation"] == 150
    assert estimator.score(X, y) > 0.85
    proba = estimator.predict_proba(X)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(1), 1)
    decision = estimator.decision_function(X)
    assert np.array_equal(estimator.classes_[decision.argmax(1)], estimator.predict(X))


def test_binary_decision_function_follows_the_threshold(cancer) -> None:
    X, y = cancer
    estimator = GrowingMLPClassifier(
        epochs=10, lr=0.01, random_state=0, set={"threshold.metric": "f1"}
    ).fit(X, y)
    assert 0 < estimator.threshold_ < 1
    decision = estimator.decision_function(X)
    assert decision.shape == (len(X),)
    predicted = estimator.predict(X)
    assert np.array_equal(estimator.classes_[(decision >= 0).astype(int)], predicted)
    positive = estimator.predict_proba(X)[:, 1]
    assert np.array_equal(positive >= estimator.threshold_, decision >= 0)


def test_dataframes_with_categories_and_missing_values() -> None:
    X, y = mixed_frame()
    estimator = GrowingMLPClassifier(epochs=40, lr=0.02, random_state=0).fit(X, y)
    assert list(estimator.classes_) == ["no", "yes"]
    assert estimator.score(X, y) > 0.8
    assert set(estimator.predict(X.head(5))) <= {"no", "yes"}
    # A pyarrow Table of the same rows predicts the same; so does a fit on one.
    table = pa.Table.from_pandas(X, preserve_index=False)
    assert np.array_equal(estimator.predict(table), estimator.predict(X))
    from_arrow = GrowingMLPClassifier(epochs=40, lr=0.02, random_state=0).fit(table, y)
    assert list(from_arrow.feature_names_in_) == ["size", "colour", "shape"]
    assert np.allclose(from_arrow.predict_proba(table), estimator.predict_proba(X))


def test_random_state_makes_fit_reproducible(cancer) -> None:
    X, y = cancer
    first = GrowingMLPClassifier(epochs=8, random_state=3).fit(X, y)
    again = GrowingMLPClassifier(epochs=8, random_state=3).fit(X, y)
    other = GrowingMLPClassifier(epochs=8, random_state=4).fit(X, y)
    assert np.array_equal(first.predict_proba(X), again.predict_proba(X))
    assert first.loss_curve_ == again.loss_curve_
    assert first.loss_curve_ != other.loss_curve_


def test_parameters_round_trip_and_map_to_growml_settings() -> None:
    estimator = GrowingMLPRegressor(
        start=(2, 3), max_params=500, method="tiny", epochs=7, lr=0.01, batch_size=16,
        loss="mse", prune="synflow", compression=2.0, validation_fraction=0.25,
        random_state=5, set={"growth.max_new_neurons": 2},
    )  # fmt: skip
    params = estimator.get_params()
    assert GrowingMLPRegressor(**params).get_params() == params
    assert clone(estimator).get_params() == params
    assert estimator.set_params(lr=0.1).lr == 0.1
    config = estimator.fit_config()
    assert config.model.hidden_widths == [2, 3]
    assert (config.growth.max_params, config.growth.method) == (500, "tiny")
    assert (config.train.epochs, config.train.lr, config.train.batch_size) == (7, 0.1, 16)
    assert (config.loss.name, config.prune.method, config.prune.compression) == (
        "mse",
        "synflow",
        2.0,
    )
    assert (config.data.validation_size, config.data.test_size, config.seed) == (0.25, 0, 5)
    assert config.growth.max_new_neurons == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train.lr": 0.1}, "the estimator's 'lr' parameter"),
        ({"data.test_size": 0.2}, "decided by the estimator"),
        ({"train.nope": 1}, "unknown setting 'train.nope'"),
    ],
)
def test_set_refuses_what_it_cannot_take(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        GrowingMLPClassifier(set=settings).fit_config()


def test_pipeline_cross_validation_and_grid_search(cancer) -> None:
    X, y = cancer
    pipeline = make_pipeline(StandardScaler(), GrowingMLPClassifier(epochs=10, random_state=0))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    search = GridSearchCV(
        GrowingMLPClassifier(epochs=10, random_state=0), {"lr": [1e-3, 1e-2]}, cv=2
    ).fit(X, y)
    assert search.best_params_["lr"] in (1e-3, 1e-2)
    assert search.best_estimator_.hidden_widths_


def test_set_output_pandas_feeds_names_through(iris) -> None:
    X, y = iris
    preprocess = ColumnTransformer([("scale", StandardScaler(), list(X.columns))])
    pipeline = make_pipeline(preprocess, GrowingMLPClassifier(epochs=5, random_state=0))
    pipeline.set_output(transform="pandas").fit(X, y)
    names = pipeline[-1].feature_names_in_
    assert list(names) == [f"scale__{name}" for name in X.columns]
    assert pipeline.predict(X).shape == (150,)


def test_regressor_learns_in_the_targets_units() -> None:
    X, y = make_regression(n_samples=300, n_features=5, noise=1.0, random_state=0)
    y = 1000 + 50 * y
    estimator = GrowingMLPRegressor(epochs=60, lr=0.01, random_state=0).fit(X, y)
    assert estimator.score(X, y) > 0.9
    assert abs(estimator.predict(X).mean() - y.mean()) < 0.2 * y.std()
    assert not hasattr(estimator, "decision_function")


def test_save_and_load_a_run_directory(fitted_iris, iris, tmp_path) -> None:
    X, _ = iris
    path = fitted_iris.save(tmp_path / "iris")
    run = growml.load_run(path)  # a growml run like any other
    assert np.array_equal(run.predict(X), fitted_iris.predict(X))
    loaded = GrowingMLPClassifier.load(path)
    assert np.array_equal(loaded.predict_proba(X), fitted_iris.predict_proba(X))
    assert loaded.get_params() == fitted_iris.get_params()
    assert list(loaded.feature_names_in_) == list(fitted_iris.feature_names_in_)
    assert loaded.history_ == fitted_iris.history_
    with pytest.raises(RunError, match="already exists"):
        fitted_iris.save(path)
    fitted_iris.save(path, overwrite=True)
    with pytest.raises(RunError, match="holds a classification run"):
        GrowingMLPRegressor.load(path)


def test_load_keeps_array_input_without_names(cancer, tmp_path) -> None:
    X, y = cancer
    estimator = GrowingMLPClassifier(epochs=3, random_state=0, run_dir=tmp_path / "run")
    estimator.fit(X, y)
    assert (tmp_path / "run" / "model.json").is_file(), "run_dir keeps the run"
    loaded = GrowingMLPClassifier.load(tmp_path / "run")
    assert not hasattr(loaded, "feature_names_in_")
    assert loaded.n_features_in_ == 30
    assert np.array_equal(loaded.predict(X), estimator.predict(X))


def test_pickle_round_trip(fitted_iris, iris) -> None:
    X, _ = iris
    restored = pickle.loads(pickle.dumps(fitted_iris))
    assert np.array_equal(restored.predict_proba(X), fitted_iris.predict_proba(X))


def test_to_onnx_is_verified_and_predicts_alike(tmp_path) -> None:
    X, y = mixed_frame()
    estimator = GrowingMLPClassifier(epochs=10, lr=0.02, random_state=0).fit(X, y)
    path = estimator.to_onnx(tmp_path / "model.onnx")
    onnx_model = growml.load_onnx(path)
    table = pa.Table.from_pandas(X, preserve_index=False)
    assert np.array_equal(onnx_model.predict(table), estimator.predict(X))
    assert np.allclose(onnx_model.predict_proba(table), estimator.predict_proba(X), atol=1e-5)
    estimator.to_onnx(tmp_path / "checked.onnx", X=X)  # verified on rows the user gives
    assert (tmp_path / "checked.onnx").is_file()


def test_load_reads_a_run_of_growml_fit(iris, tmp_path) -> None:
    X, _ = iris
    config = growml.resolve_config({"data": {"source": "iris"}, "train": {"epochs": 3}})
    growml.fit(config, out=tmp_path / "iris")
    loaded = GrowingMLPClassifier.load(tmp_path / "iris")
    assert loaded.epochs == 3 and loaded.random_state == 0
    assert loaded.n_features_in_ == 4
    rows = X.rename(columns=dict(zip(X.columns, loaded.feature_names_in_, strict=True)))
    assert np.array_equal(loaded.predict(rows), growml.load_run(tmp_path / "iris").predict(rows))


def test_a_column_without_values_is_dropped_and_predict_takes_the_full_width(cancer) -> None:
    X, y = cancer
    X = X.copy()
    X[:, 3] = np.nan
    with pytest.warns(growml.GrowmlWarning, match="dropped column 'x3'"):
        estimator = GrowingMLPClassifier(epochs=3, random_state=0).fit(X, y)
    assert estimator.n_features_in_ == 30
    assert "x3" not in estimator.run_.preprocessor.feature_names
    assert estimator.predict(X).shape == (len(X),)


# growml's data settings the estimators rely on ------------------------------------------------


def test_a_zero_test_size_keeps_every_row_for_training_and_validation() -> None:
    labels = np.repeat([0, 1, 2], 10)
    train, validation, test = split_indices(labels, 30, 0.0, 0.2, seed=0)
    assert len(test) == 0 and len(validation) == 6
    assert sorted([*train, *validation]) == list(range(30))
    assert np.array_equal(np.bincount(labels[validation]), [2, 2, 2]), "still stratified"
    with pytest.raises(DataError, match="one each for train and validation"):
        split_indices(np.array([0] * 10 + [1]), 11, 0.0, 0.2, seed=0)


def test_when_possible_splits_rare_classes_at_random() -> None:
    features = pa.table({"x": np.arange(20.0)})
    target = pa.chunked_array([pa.array([0] * 19 + [1])])
    table = table_from_columns("rare", features, target, "y", "classification")
    strict = DataConfig(test_size=0.0, validation_size=0.2)
    with pytest.raises(DataError, match="class 1 has only 1 row"):
        split_rows(table, strict, seed=0)
    train, validation, test = split_rows(
        table, DataConfig(test_size=0.0, validation_size=0.2, stratify="when-possible"), seed=0
    )
    assert (len(train), len(validation), len(test)) == (16, 4, 0)


def test_data_infinite_missing_lets_infinite_numbers_in_x_through() -> None:
    X = np.random.default_rng(0).normal(size=(40, 2))
    X[3, 0] = np.inf
    y = X[:, 1]
    with pytest.raises(ValueError, match="Input X contains infinity"):
        GrowingMLPRegressor(epochs=1).fit(X, y)
    estimator = GrowingMLPRegressor(epochs=1, set={"data.infinite": "missing"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrowmlWarning)
        estimator.fit(X, y)
    assert estimator.run_.preprocessor.readings[0].infinite == 1
    with pytest.warns(GrowmlWarning, match="1 infinite numbers"):
        assert np.isfinite(estimator.predict(X[:5])).all()
