"""growml.data: built-in datasets, files, checks, splits and preprocessing."""

import dataclasses
import json
import random
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import growml.data.builtin as builtin
import growml.data.files as files
from growml.config import DataConfig
from growml.data import (
    Preprocessor,
    TargetEncoder,
    as_arrow,
    infer_task,
    list_datasets,
    load_table,
    prepare,
    split_indices,
)
from growml.errors import DataError, GrowmlWarning


def save_csv(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def people_csv(tmp_path: Path, rows: int = 30, name: str = "people.csv") -> str:
    """A small mixed-type table: numbers, text categories, gaps, and a yes/no target."""
    lines = ["age,city,income,bought"]
    cities = ["paris", "lyon", "nice"]
    for i in range(rows):
        age = "" if i % 7 == 3 else str(20 + i)
        city = "" if i % 11 == 5 else cities[i % 3]
        lines.append(f"{age},{city},{1000.5 + 10 * i},{'yes' if i % 2 else 'no'}")
    return save_csv(tmp_path / name, "\n".join(lines) + "\n")


# Built-in datasets ---------------------------------------------------------------------------

BUILTINS = {
    "digits": (1797, 64, "classification", 10),
    "breast-cancer": (569, 30, "classification", 2),
    "wine": (178, 13, "classification", 3),
    "iris": (150, 4, "classification", 3),
    "mnist1d": (5000, 40, "classification", 10),
    "moons": (1000, 2, "classification", 2),
    "circles": (1000, 2, "classification", 2),
    "imbalanced": (2000, 20, "classification", 2),
    "friedman": (2000, 10, "regression", None),
    "spirals": (1000, 2, "classification", 2),
    "xor": (2000, 10, "classification", 2),
    "sine": (1000, 1, "regression", None),
    "diabetes": (442, 10, "regression", None),
    "many-features": (3000, 100, "classification", 2),
    "clusters": (3000, 20, "classification", 4),
    "checkerboard": (4000, 2, "classification", 2),
}


@pytest.mark.parametrize("name", list(BUILTINS))
def test_builtin_loads_with_its_shape_and_task(name: str) -> None:
    rows, features, task, classes = BUILTINS[name]
    table = load_table(name)
    assert (table.features.num_rows, table.features.num_columns) == (rows, features)
    assert len(table.target) == rows
    assert table.task == task
    assert table.target_name == "target"
    if classes is not None:
        assert len(set(table.target.to_pylist())) == classes


def test_builtins_are_deterministic() -> None:
    assert load_table("moons").features.equals(load_table("moons").features)
    assert load_table("friedman").target.equals(load_table("friedman").target)
    for name in ("many-features", "clusters", "checkerboard"):
        first, again = load_table(name), load_table(name)
        assert first.features.equals(again.features) and first.target.equals(again.target)


def test_checkerboard_labels_are_the_colour_of_each_points_cell() -> None:
    table = load_table("checkerboard")
    x = np.column_stack([table.features.column(i).to_numpy() for i in range(2)])
    assert x.min() >= 0 and x.max() < 1
    cells = np.floor(8 * x).astype(int)
    assert np.array_equal(table.target.to_numpy(), (cells[:, 0] + cells[:, 1]) % 2)
    # Every one of the 64 cells holds points, so the board is there to be learnt.
    assert len({tuple(cell) for cell in cells}) == 64


def test_many_features_has_twelve_informative_columns_and_noise() -> None:
    """The 12 informative columns tell the classes apart (jointly: some carry no signal in
    their means), the 88 noise columns no better than a coin."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    table = load_table("many-features")
    names = table.features.column_names
    assert names[:12] == [f"informative{i}" for i in range(12)]
    x = np.column_stack([c.to_numpy() for c in table.features.columns])
    y = table.target.to_numpy()

    def accuracy(columns: slice) -> float:
        return cross_val_score(KNeighborsClassifier(15), x[:, columns], y, cv=3).mean()

    assert accuracy(slice(0, 12)) > 0.8
    assert abs(accuracy(slice(12, 24)) - 0.5) < 0.05
    assert abs(accuracy(slice(88, 100)) - 0.5) < 0.05


def test_list_datasets_describes_every_builtin_in_order() -> None:
    infos = list_datasets()
    assert [info.name for info in infos] == list(BUILTINS)
    for info in infos:
        rows, features, task, classes = BUILTINS[info.name]
        assert (info.rows, info.features, info.task) == (rows, features, task)
        assert info.description.endswith(".")
        if classes is None:
            assert info.class_balance is None
        else:
            assert len(info.class_balance) == classes
            assert sum(info.class_balance.values()) == pytest.approx(1.0)
    imbalanced = next(info for info in infos if info.name == "imbalanced")
    assert imbalanced.class_balance["1"] == pytest.approx(0.05, abs=0.01)
    iris = next(info for info in infos if info.name == "iris")
    assert list(iris.class_balance) == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("name", list(BUILTINS))
def test_the_recorded_facts_of_each_builtin_are_its_data(name) -> None:
    """`growml datasets` lists recorded sizes and label counts without loading anything:
    they must be what loading gives."""
    import pyarrow.compute as pc

    from growml.data.builtin import load_builtin, recorded_facts

    features, target = load_builtin(name)
    shape, counts = recorded_facts(name)
    assert shape == (features.num_rows, features.num_columns)
    if counts is not None:
        found = {str(e["values"]): e["counts"] for e in pc.value_counts(target).to_pylist()}
        assert counts == found


def test_mnist1d_is_cached_and_read_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GROWML_CACHE", str(tmp_path))
    first = load_table("mnist1d")
    assert [p.name for p in tmp_path.iterdir()] == ["mnist1d-v1.npz"]  # no temp file left

    def no_generation() -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(builtin, "_generate_mnist1d", no_generation)
    assert load_table("mnist1d").features.equals(first.features)


def test_corrupt_mnist1d_cache_is_regenerated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GROWML_CACHE", str(tmp_path))
    cache = tmp_path / "mnist1d-v1.npz"
    cache.write_bytes(b"PK\x03\x04 not really a zip file")
    table = load_table("mnist1d")
    assert table.features.num_rows == 5000
    with np.load(cache, allow_pickle=False) as arrays:
        assert arrays["x"].shape == (5000, 40)


def test_cache_directory_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GROWML_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert builtin.cache_dir() == tmp_path / "growml"
    monkeypatch.setenv("GROWML_CACHE", str(tmp_path / "mine"))
    assert builtin.cache_dir() == tmp_path / "mine"


def test_generating_mnist1d_leaves_global_random_state_alone() -> None:
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    builtin._generate_mnist1d()
    assert (np.random.random(), random.random()) == expected


def test_builtin_rejects_another_target() -> None:
    with pytest.raises(DataError, match="has its own target 'target'"):
        load_table("iris", target="species")
    assert load_table("iris", target="target").task == "classification"


def test_task_can_be_overridden() -> None:
    assert load_table("digits", task="regression").task == "regression"
    with pytest.raises(DataError, match="cannot be predicted by regression"):
        load_table("iris", task="regression")


def test_unknown_task() -> None:
    with pytest.raises(DataError, match="task 'clustering' is unknown"):
        load_table("iris", task="clustering")


def test_unknown_dataset_lists_the_builtins() -> None:
    with pytest.raises(
        DataError, match=r"unknown dataset 'digitz'; built-in datasets are digits, "
    ):
        load_table("digitz")


# Files ---------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"file '.*nothere\.csv' does not exist\."):
        load_table(str(tmp_path / "nothere.csv"), target="y")


def test_csv_and_parquet_give_the_same_table(tmp_path: Path) -> None:
    from_csv = load_table(people_csv(tmp_path), target="bought")
    data = pa.table(
        {
            "age": pa.array([None if i % 7 == 3 else 20 + i for i in range(30)], pa.int64()),
            "city": [None if i % 11 == 5 else ["paris", "lyon", "nice"][i % 3] for i in range(30)],
            "income": [1000.5 + 10 * i for i in range(30)],
            "bought": ["yes" if i % 2 else "no" for i in range(30)],
        }
    )
    pq.write_table(data, tmp_path / "people.parquet")
    from_parquet = load_table(str(tmp_path / "people.parquet"), target="bought")
    assert from_csv.name == from_parquet.name == "people"
    assert from_csv.features.equals(from_parquet.features)
    assert from_csv.target.equals(from_parquet.target)
    assert from_csv.task == "classification"
    assert from_csv.features.column_names == ["age", "city", "income"]


def test_delimiter_by_extension_or_sniffed(tmp_path: Path) -> None:
    body = "".join(f"{i}{{d}}{'ab'[i % 2]}{{d}}{i % 2}\n" for i in range(12))
    for name, delimiter in [("t.tsv", "\t"), ("t.txt", ";"), ("t.csv", ";"), ("u.txt", "|")]:
        text = f"x{{d}}c{{d}}y\n{body}".replace("{d}", delimiter)
        table = load_table(save_csv(tmp_path / name, text), target="y")
        assert table.features.column_names == ["x", "c"]
        assert table.target.to_pylist()[:2] == [0, 1]


def test_column_types_are_widened_when_later_rows_disagree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyarrow infers types from the first block; later blocks may need a wider type.
    monkeypatch.setattr(files, "_BLOCK_SIZE", 64)
    rows = [f"{i},{i % 2},{i}" for i in range(40)] + ["1.5,0,x", "2,1,y"]
    table = files.read_file(save_csv(tmp_path / "m.csv", "a,y,b\n" + "\n".join(rows)))
    assert table.schema.field("a").type == pa.float64()
    assert table.schema.field("b").type == pa.string()
    assert table.num_rows == 42


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.json", b'{"a": 1}', r"unsupported extension '\.json'"),
        ("empty.csv", b"", r"is empty\."),
        ("header.csv", b"a,b,y\n", r"has column names but no rows of data\."),
        ("garbage.csv", bytes(range(256)) * 8, r"is not UTF-8 text"),
        ("broken.parquet", b"PAR1 but not really", r"is not a valid Parquet file"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_table(str(path), target="y")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        load_table(str(tmp_path), target="y")


def test_row_with_wrong_number_of_fields(tmp_path: Path) -> None:
    path = save_csv(tmp_path / "bad.csv", "a,b,y\n1,2,0\n3,4,1\n5,6,7,1\n")
    with pytest.raises(DataError, match=r"line 4 of file .* has 4 fields but the header has 3"):
        load_table(path, target="y")


def test_duplicate_column_names(tmp_path: Path) -> None:
    path = save_csv(tmp_path / "dup.csv", "a,a,y\n" + "1,2,0\n3,4,1\n" * 6)
    with pytest.raises(DataError, match="more than one column named 'a'"):
        load_table(path, target="y")


def test_file_needs_a_target(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pass --target with one of its columns \('age', 'city'"):
        load_table(people_csv(tmp_path))


def test_missing_target_column_suggests_close_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"has no column 'bougth' \(did you mean 'bought'\)"):
        load_table(people_csv(tmp_path), target="bougth")
    with pytest.raises(DataError, match=r"has no column 'zzz' \(its columns: 'age', 'city'"):
        load_table(people_csv(tmp_path), target="zzz")


def test_empty_target_column(tmp_path: Path) -> None:
    path = save_csv(tmp_path / "e.csv", "a,y\n" + "1,\n" * 12)
    with pytest.raises(DataError, match="target column 'y' of .* is empty"):
        load_table(path, target="y")


def test_single_class_target(tmp_path: Path) -> None:
    path = save_csv(tmp_path / "one.csv", "a,y\n" + "".join(f"{i},yes\n" for i in range(12)))
    with pytest.raises(DataError, match=r"has a single class \('yes'\)"):
        load_table(path, target="y")


def test_regression_needs_a_numeric_target(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'bought' holds string values"):
        load_table(people_csv(tmp_path), target="bought", task="regression")


def test_rows_without_target_are_dropped_with_a_warning(tmp_path: Path) -> None:
    lines = [f"{i},{'' if i % 5 == 0 else i * 0.5}" for i in range(30)] + ["99,NaN"]
    path = save_csv(tmp_path / "gaps.csv", "a,y\n" + "\n".join(lines) + "\n")
    with pytest.warns(GrowmlWarning, match="dropped 7 of 31 rows .* whose target 'y' is missing"):
        table = load_table(path, target="y")
    assert table.features.num_rows == len(table.target) == 24
    assert table.target.null_count == 0
    assert table.task == "regression"


def test_too_few_rows(tmp_path: Path) -> None:
    path = save_csv(tmp_path / "tiny.csv", "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(6)))
    with pytest.raises(DataError, match="only 6 rows with a target, fewer than the 10"):
        load_table(path, target="y")


def test_empty_feature_column_is_dropped_with_a_warning(tmp_path: Path) -> None:
    path = save_csv(
        tmp_path / "c.csv", "a,blank,y\n" + "".join(f"{i},,{i % 2}\n" for i in range(12))
    )
    with pytest.warns(GrowmlWarning, match="dropped column 'blank' .* every value is missing"):
        table = load_table(path, target="y")
    assert table.features.column_names == ["a"]


def test_no_feature_column_left(tmp_path: Path) -> None:
    path = save_csv(tmp_path / "c.csv", "blank,y\n" + "".join(f",{i % 2}\n" for i in range(12)))
    with (
        warnings.catch_warnings(),
        pytest.raises(DataError, match="no usable feature columns besides the target 'y'"),
    ):
        warnings.simplefilter("ignore", GrowmlWarning)
        load_table(path, target="y")


def test_integer_valued_float_labels_become_integers(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"a": list(range(12)), "y": [float(i % 3) for i in range(12)]}), path)
    table = load_table(str(path), target="y")
    assert table.task == "classification"
    assert table.target.type == pa.int64()


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b", "a"], "classification"),
        ([True, False, True], "classification"),
        ([0, 1, 2, 1], "classification"),
        ([0.0, 1.0, None, 1.0], "classification"),
        ([0.5, 1.0, 2.0], "regression"),
        (list(range(21)), "regression"),
        (list(range(20)), "classification"),
    ],
)
def test_infer_task(values: list, task: str) -> None:
    assert infer_task(pa.chunked_array([pa.array(values)])) == task


# Splits --------------------------------------------------------------------------------------


def test_split_is_disjoint_complete_and_sized() -> None:
    train, validation, test = split_indices(None, 100, 0.2, 0.1, seed=0)
    assert (len(train), len(validation), len(test)) == (70, 10, 20)
    assert np.array_equal(np.sort(np.concatenate([train, validation, test])), np.arange(100))
    for part in (train, validation, test):
        assert part.dtype == np.int64
        assert np.array_equal(part, np.sort(part))


def test_split_is_seeded() -> None:
    labels = np.repeat(["a", "b", "c"], [50, 30, 20])
    first = split_indices(labels, 100, 0.2, 0.2, seed=1)
    again = split_indices(labels, 100, 0.2, 0.2, seed=1)
    other = split_indices(labels, 100, 0.2, 0.2, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[2], other[2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_is_stratified(seed: int) -> None:
    labels = np.repeat([0, 1, 2], [900, 80, 20])
    train, validation, test = split_indices(labels, len(labels), 0.2, 0.15, seed=seed)

    def deviation(part: np.ndarray) -> float:
        expected = np.array([900, 80, 20]) * len(part) / len(labels)
        return np.abs(np.bincount(labels[part], minlength=3) - expected).max()

    assert deviation(test) <= 1
    # Train and validation come from a second split of the rest, whose rounding adds up.
    assert deviation(train) < 2 and deviation(validation) < 2


def test_split_rejects_a_rare_class() -> None:
    labels = np.array(["a"] * 20 + ["b"] * 20 + ["rare"] * 2)
    with pytest.raises(DataError, match=r"class 'rare' has only 2 row\(s\)"):
        split_indices(labels, len(labels), 0.2, 0.2, seed=0)


def test_split_needs_a_row_in_every_part() -> None:
    with pytest.raises(DataError, match="cannot be split into train, validation and test"):
        split_indices(None, 2, 0.2, 0.2, seed=0)
    with pytest.raises(DataError, match="the test part would have 2 rows, fewer than the 3"):
        split_indices(np.repeat([0, 1, 2], 4), 12, 0.1, 0.3, seed=0)


# Preprocessing -------------------------------------------------------------------------------


def mixed_features() -> pa.Table:
    return pa.table(
        {
            "age": [20.0, None, 40.0, 30.0, float("nan")],
            "city": ["paris", "lyon", None, "paris", "nice"],
            "member": [True, False, True, True, False],
            "constant": [7, 7, 7, 7, 7],
        }
    )


def test_preprocessor_imputes_standardises_and_one_hot_encodes() -> None:
    preprocessor = Preprocessor.fit(mixed_features())
    assert preprocessor.feature_names == ["age", "city", "member", "constant"]
    assert preprocessor.output_names == [
        "age",
        "age_missing",
        "city=lyon",
        "city=nice",
        "city=paris",
        "city_missing",
        "member",
        "constant",
    ]
    x = preprocessor.transform(mixed_features())
    assert x.dtype == np.float32
    assert x.shape == (5, 8)
    age = np.array([20.0, 30.0, 40.0, 30.0, 30.0])
    np.testing.assert_allclose(x[:, 0], (age - 30.0) / np.std([20.0, 40.0, 30.0]), rtol=1e-6)
    np.testing.assert_array_equal(x[:, 1], [0, 1, 0, 0, 1])
    # city=lyon, city=nice, city=paris, city_missing for paris, lyon, (missing), paris, nice
    city = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(x[:, 2:6], city)
    assert x[:, 6].mean() == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_array_equal(x[:, 7], 0.0)


def test_unknown_category_is_all_zeros_and_columns_are_found_by_name() -> None:
    preprocessor = Preprocessor.fit(mixed_features())
    rows = pa.table(
        {
            "extra": ["ignored"],
            "constant": [7],
            "member": [True],
            "city": ["tokyo"],
            "age": [30.0],
        }
    )
    x = preprocessor.transform(rows)
    np.testing.assert_array_equal(x[0, 2:6], 0.0)
    assert x[0, 0] == 0.0


def test_max_categories_keeps_the_most_frequent() -> None:
    column = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"]
    with pytest.warns(GrowmlWarning, match=r"column 'k' has 4 categories; the 2 most frequent"):
        preprocessor = Preprocessor.fit(pa.table({"k": column}), max_categories=2)
    # "b" and "c" tie; the tie goes to the smaller value.
    assert preprocessor.output_names == ["k=a", "k=b"]
    np.testing.assert_array_equal(preprocessor.transform(pa.table({"k": ["c", "d"]})), 0.0)


def test_preprocessor_json_round_trip_transforms_identically() -> None:
    preprocessor = Preprocessor.fit(mixed_features())
    saved = json.loads(json.dumps(preprocessor.to_dict()))
    rebuilt = Preprocessor.from_dict(saved)
    assert rebuilt.output_names == preprocessor.output_names
    np.testing.assert_array_equal(
        rebuilt.transform(mixed_features()), preprocessor.transform(mixed_features())
    )


def test_transform_needs_every_feature_column() -> None:
    preprocessor = Preprocessor.fit(mixed_features())
    with pytest.raises(DataError, match="column 'city' is missing from the data"):
        preprocessor.transform(mixed_features().drop_columns(["city"]))


def test_numeric_column_given_text_at_prediction() -> None:
    preprocessor = Preprocessor.fit(mixed_features())
    rows = mixed_features().set_column(0, "age", pa.array(["old"] * 5))
    with pytest.raises(DataError, match="column 'age' must hold numbers"):
        preprocessor.transform(rows)


def test_preprocessing_is_fitted_on_training_rows_only() -> None:
    table = load_table("wine")
    config = DataConfig(test_size=0.2, validation_size=0.2)
    prepared = prepare(table, config, seed=0)
    # Make every validation and test value absurd: the fitted statistics must not move.
    rows = table.features.num_rows
    train, _, _ = split_indices(table.target.to_numpy(), rows, 0.2, 0.2, seed=0)
    scale = np.full(rows, 1000.0)
    scale[train] = 1.0
    columns = {
        name: table.features.column(name).to_numpy() * scale for name in table.features.column_names
    }
    altered = dataclasses.replace(table, features=pa.table(columns))
    assert (
        prepare(altered, config, seed=0).preprocessor.to_dict() == prepared.preprocessor.to_dict()
    )
    np.testing.assert_allclose(prepared.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert np.abs(prepared.x_test.mean(axis=0)).max() > 0.01


# Targets -------------------------------------------------------------------------------------


def test_target_encoder_round_trips_string_labels() -> None:
    labels = pa.chunked_array([["virginica", "setosa", "versicolor", "setosa"]])
    encoder = TargetEncoder.fit(labels, "classification")
    assert encoder.classes == ["setosa", "versicolor", "virginica"]
    assert encoder.n_outputs == 3
    encoded = encoder.encode(labels)
    assert encoded.dtype == np.int64
    assert encoded.tolist() == [2, 0, 1, 0]
    rebuilt = TargetEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert rebuilt.decode(encoded).tolist() == labels.to_pylist()


def test_target_encoder_round_trips_integer_labels() -> None:
    labels = np.array([3, 1, 3, 1])
    encoder = TargetEncoder.fit(labels, "classification")
    assert encoder.n_outputs == 1
    rebuilt = TargetEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert rebuilt.classes == [1, 3]
    assert rebuilt.decode(rebuilt.encode(labels)).tolist() == [3, 1, 3, 1]
    with pytest.raises(DataError, match="target label 5 was not seen in training"):
        encoder.encode(np.array([5]))


def test_target_encoder_standardises_regression_targets() -> None:
    train = np.array([1.0, 2.0, 3.0, 4.0])
    encoder = TargetEncoder.fit(train, "regression")
    assert (encoder.mean, encoder.std) == (2.5, pytest.approx(np.std(train)))
    assert encoder.n_outputs == 1
    encoded = encoder.encode(np.array([2.5, 10.0]))
    assert encoded.dtype == np.float32
    assert encoded[0] == 0.0
    rebuilt = TargetEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    np.testing.assert_allclose(rebuilt.decode(encoded), [2.5, 10.0], rtol=1e-6)


# Rows for prediction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows",
    [
        pa.table({"a": [1.0, 2.0], "b": ["x", "y"]}),
        {"a": [1.0, 2.0], "b": ["x", "y"]},
        [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}],
        [[1.0, "x"], [2.0, "y"]],
        np.array([[1.0, "x"], [2.0, "y"]], dtype=object),
    ],
    ids=["arrow", "columns", "records", "lists", "numpy"],
)
def test_as_arrow_accepts_each_kind_of_rows(rows: object) -> None:
    table = as_arrow(rows, feature_names=["a", "b"])
    assert table.column_names == ["a", "b"]
    assert table.column("a").to_pylist() == [1.0, 2.0]
    assert table.column("b").to_pylist() == ["x", "y"]


def test_as_arrow_reads_a_numeric_matrix_and_single_rows() -> None:
    table = as_arrow(np.arange(6.0).reshape(3, 2), feature_names=["a", "b"])
    assert table.column("b").to_pylist() == [1.0, 3.0, 5.0]
    table = as_arrow([np.array([1.0, 2.0])], feature_names=["a", "b"])
    assert table.to_pylist() == [{"a": 1.0, "b": 2.0}]
    assert as_arrow({"a": 1.0, "b": "x"}).to_pylist() == [{"a": 1.0, "b": "x"}]


def test_as_arrow_reads_a_pandas_frame() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}, index=[5, 6])
    assert as_arrow(frame).column_names == ["a", "b"]


def test_as_arrow_rejects_the_wrong_number_of_columns() -> None:
    with pytest.raises(DataError, match=r"each row has 3 values but 2 columns are expected"):
        as_arrow([[1, 2, 3]], feature_names=["a", "b"])
    with pytest.raises(DataError, match="need the column names"):
        as_arrow([[1, 2]])
    with pytest.raises(DataError, match="different numbers of values"):
        as_arrow([[1, 2], [3]], feature_names=["a", "b"])


# The whole way -------------------------------------------------------------------------------


def test_prepare_classification_file(tmp_path: Path) -> None:
    table = load_table(people_csv(tmp_path, rows=60), target="bought")
    prepared = prepare(table, DataConfig(test_size=0.2, validation_size=0.2), seed=0)
    assert (len(prepared.x_train), len(prepared.x_val), len(prepared.x_test)) == (36, 12, 12)
    assert prepared.x_train.dtype == np.float32
    assert prepared.x_train.shape[1] == len(prepared.preprocessor.output_names)
    assert prepared.y_train.dtype == np.int64
    assert set(prepared.y_test.tolist()) == {0, 1}
    assert prepared.target_encoder.classes == ["no", "yes"]
    assert "age_missing" in prepared.preprocessor.output_names
    # The raw test rows, prepared again, are exactly what the model was tested on.
    np.testing.assert_array_equal(
        prepared.preprocessor.transform(prepared.raw_test), prepared.x_test
    )


def test_prepare_regression_standardises_on_train() -> None:
    prepared = prepare(load_table("friedman"), DataConfig(), seed=3)
    assert prepared.task == "regression"
    assert prepared.y_train.dtype == np.float32
    assert prepared.y_train.mean() == pytest.approx(0.0, abs=1e-5)
    assert prepared.y_train.std() == pytest.approx(1.0, abs=1e-5)
    assert (len(prepared.y_train), len(prepared.y_val), len(prepared.y_test)) == (1200, 400, 400)


def test_date_columns_are_dropped_with_advice(tmp_path):
    import datetime

    from growml.errors import GrowmlWarning

    days = [datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in range(40)]
    table = pa.table({"day": days, "x": list(range(40)), "y": [i % 2 for i in range(40)]})
    pq.write_table(table, tmp_path / "dated.parquet")
    with pytest.warns(GrowmlWarning, match="'day'.*convert them to numbers"):
        loaded = load_table(str(tmp_path / "dated.parquet"), target="y")
    assert loaded.features.column_names == ["x"]


def test_many_distinct_integers_are_regression_with_a_note(tmp_path):
    from growml.errors import GrowmlWarning

    path = tmp_path / "counts.csv"
    path.write_text("x,count\n" + "\n".join(f"{i},{i * 3}" for i in range(60)) + "\n")
    with pytest.warns(GrowmlWarning, match="--task classification"):
        loaded = load_table(str(path), target="count")
    assert loaded.task == "regression"


def test_class_labels_that_look_like_missing_marks_are_classes(tmp_path: Path) -> None:
    from growml.sklearn import GrowingMLPClassifier

    labels = ["None", "Mild", "Severe", "-"]
    rows = [f"{i / 7:.3f},{labels[i % 4]}" for i in range(60)]
    path = save_csv(tmp_path / "severity.csv", "x,severity\n" + "\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrowmlWarning)
        table = load_table(path, "severity")
    assert table.features.num_rows == 60
    assert sorted(set(table.target.to_pylist())) == ["-", "Mild", "None", "Severe"]
    x = np.arange(60.0).reshape(-1, 1) / 7
    estimator = GrowingMLPClassifier(epochs=1, random_state=0)
    estimator.fit(x, np.array([labels[i % 4] for i in range(60)]))
    assert list(estimator.classes_) == ["-", "Mild", "None", "Severe"]


def test_missing_marks_in_a_number_target_are_still_missing(tmp_path: Path) -> None:
    rows = [f"{i},{'?' if i % 10 == 0 else f'{i / 4:.2f}'}" for i in range(40)]
    path = save_csv(tmp_path / "amounts.csv", "x,amount\n" + "\n".join(rows) + "\n")
    with pytest.warns(GrowmlWarning, match="dropped 4 of 40 rows"):
        table = load_table(path, "amount")
    assert table.task == "regression"
