"""How columns are read: numbers as spreadsheets write them, missing marks, infinite numbers,
dates and identifiers; the same for files and tables in memory, at training and prediction."""

import json
import warnings

import numpy as np
import pyarrow as pa
import pytest
from growml.cli import app
from typer.testing import CliRunner

from growml.data import Preprocessor, load_table
from growml.data.columns import read_columns
from growml.data.numbers import COMMA, POINT, evidence, parse, without_missing_marks
from growml.errors import DataError, GrowmlWarning

runner = CliRunner()
FAST = ["--epochs", "2", "--fixed", "2"]


def text(*values):
    return pa.chunked_array([pa.array(list(values), pa.string())])


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# Parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "point", "comma"),
    [
        ("1234.5", 1234.5, None),
        ("1,234.50", 1234.5, None),
        ("1 234.5", 1234.5, None),
        ("1'234'567", 1234567.0, 1234567.0),
        ("-0.25", -0.25, None),
        (".5", 0.5, None),
        ("1e3", 1000.0, 1000.0),
        ("1,5", None, 1.5),
        ("1.234,50", None, 1234.5),
        ("1 234,5", None, 1234.5),
        ("1\u00a0234,5", None, 1234.5),
        ("1.234.567", None, 1234567.0),
        ("1,234", 1234.0, 1.234),
        ("-inf", -np.inf, -np.inf),
        ("$1,234.50", 1234.5, None),
        ("-$5", -5.0, -5.0),
        ("12,50 €", None, 12.5),
        ("12%", 0.12, 0.12),
        ("12 apples", None, None),
        ("12,34,567.5", 1234567.5, None),
        ("1,23", None, 1.23),
    ],
)
def test_numbers_are_read_in_each_convention(written, point, comma):
    for convention, expected in ((POINT, point), (COMMA, comma)):
        value = parse(text(written), convention)[0]
        if expected is None:
            assert np.isnan(value), (written, convention)
        else:
            assert value == expected, (written, convention)


def test_missing_marks_are_missing_whatever_their_case_and_spaces():
    marks = text("?", " NA ", "N/A", "null", "-", "", "None", "nan", "#N/A", "<NA>", "4")
    assert without_missing_marks(marks).to_pylist() == [None] * 10 + ["4"]


def test_only_values_that_read_one_way_are_evidence():
    assert evidence(text("1,5", "2,25", "1,234", "7")) == (0, 2)
    assert evidence(text("1.5", "1,234.5", "1,234")) == (2, 0)


def read(columns, delimiter=None, infinite="error"):
    return read_columns(pa.table(columns), "data.csv", infinite, delimiter)


def test_a_column_of_ambiguous_numbers_follows_the_table_then_the_delimiter():
    ambiguous = ["1,250", "2,500", "3,750"] * 4
    follows_table = read({"a": ambiguous, "b": ["0,5"] * 12})
    assert follows_table.features.column("a").to_pylist()[:3] == [1.25, 2.5, 3.75]
    assert read({"a": ambiguous}).features.column("a").to_pylist()[:3] == [1250, 2500, 3750]
    semicolon = read({"a": ambiguous}, delimiter=";")
    assert semicolon.features.column("a").to_pylist()[:3] == [1.25, 2.5, 3.75]
    assert semicolon.readings[0].decimal_comma


# Column decisions ------------------------------------------------------------------------------


def test_numbers_with_missing_marks_are_numbers_and_the_marks_are_recorded():
    values = ["1,5", "?", "2,5", "-", "3", "NA", "4,25", "", "5", "6"]
    result = read({"x": values})
    np.testing.assert_array_equal(
        result.features.column("x").to_numpy(),
        [1.5, np.nan, 2.5, np.nan, 3, np.nan, 4.25, np.nan, 5, 6],
    )
    reading = result.readings[0]
    assert reading.read_as == "number" and reading.from_text and reading.decimal_comma
    assert reading.missing == 4
    assert reading.missing_marks == {"-": 1, "?": 1, "NA": 1}


def test_a_few_stray_values_are_missing_with_a_warning_showing_them():
    values = [str(i) for i in range(60)] + ["unknown", "unknown", "n.k."]
    result = read({"x": values})
    assert result.readings[0].read_as == "number"
    assert result.readings[0].not_numbers == {"unknown": 2, "n.k.": 1}
    assert np.isnan(result.features.column("x").to_numpy()[60:]).all()
    (note,) = result.notes
    assert "'x'" in note and "3 values that are not numbers" in note
    assert "'unknown' (2)" in note and "'n.k.' (1)" in note


def test_codes_that_are_mostly_numbers_in_a_small_column_stay_categories():
    result = read({"code": ["101", "102", "103", "A7"] * 3})
    assert result.readings[0].read_as == "category"
    assert result.features.column("code").type == pa.string()


def test_identifiers_are_dropped_but_distinct_integers_are_kept():
    ids = [f"C{100000 + i}" for i in range(30)]
    result = read({"id": ids, "count": list(range(30)), "city": ["a", "b", "c"] * 10})
    assert result.features.column_names == ["count", "city"]
    assert result.readings[0].read_as == "dropped"
    assert "30 values all differ" in result.readings[0].reason
    assert any("dropped column 'id'" in note for note in result.notes)


def test_dates_written_as_text_are_dropped_like_typed_dates():
    days = [f"2024-02-{day:02d}" for day in range(1, 13)]
    written = [f"Mar {d}, 2024" for d in range(1, 13)]
    result = read({"day": days, "when": [f"{d}/03/2024" for d in range(1, 13)], "on": written})
    assert result.features.column_names == []
    assert [r.reason for r in result.readings] == ["its values are dates or times"] * 3


def test_infinite_numbers_are_refused_naming_the_column_and_row():
    with pytest.raises(DataError, match=r"column 'x' of 'data.csv'.*\(inf\) in data row 3"):
        read({"x": [1.0, 2.0, np.inf, 4.0]})
    with pytest.raises(DataError, match=r"column 'y'.*\(-inf\) in data row 2"):
        read({"y": ["1,5", "-inf", "2"]})


def test_infinite_numbers_can_be_read_as_missing():
    result = read({"x": [1.0, np.inf, -np.inf, 4.0]}, infinite="missing")
    assert np.isnan(result.features.column("x").to_numpy()).tolist() == [0, 1, 1, 0]
    assert result.readings[0].infinite == 2 and result.readings[0].missing == 2


def test_rows_to_predict_are_read_with_the_decimal_comma_of_training():
    result = read({"x": ["1,5", "2,5", "3,5", "4,5"]})
    preprocessor = Preprocessor.fit(result.features, readings=result.readings)
    again = Preprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict())))
    expected = preprocessor.transform(pa.table({"x": [1.5, 2.5, 3.5, 4.5]}))
    np.testing.assert_array_equal(
        again.transform(pa.table({"x": ["1,5", "2,5", "3,5", "4,5"]})), expected
    )
    assert again.readings == preprocessor.readings


def test_stray_text_at_prediction_is_missing_with_a_warning():
    preprocessor = Preprocessor.fit(pa.table({"x": [1.0, 2.0, 3.0]}))
    with pytest.warns(
        GrowmlWarning, match=r"column 'x' holds 1 values that are not numbers \('oops'\)"
    ):
        out = preprocessor.transform(pa.table({"x": ["1", "oops", "?"]}))
    assert out[1, 0] == out[2, 0] == 0.0  # imputed with the training mean


# The command line ------------------------------------------------------------------------------


def spreadsheet_rows(n=40):
    """(decimal-comma ';' text, the same numbers with decimal points as ',' text)."""
    comma = ["price;rate;score;y"]
    point = ["price,rate,score,y"]
    for i in range(n):
        price, rate = 1000 + 137 * i, i / 4
        score = "?" if i % 6 == 0 else str(i % 7)
        comma.append(
            f"{price:,.2f}".replace(",", " ").replace(".", ",")
            + f";{rate:g}".replace(".", ",")
            + f";{score};{i % 2}"
        )
        point.append(f"{price},{rate},{'' if score == '?' else score},{i % 2}")
    return "\n".join(comma) + "\n", "\n".join(point) + "\n"


def test_fit_reads_a_decimal_comma_file_as_the_same_numbers(tmp_path, write_csv):
    comma, point = spreadsheet_rows()
    runs = {}
    for name, content in (("comma", comma), ("point", point)):
        runs[name] = tmp_path / name
        result = invoke(
            "fit", write_csv(content, f"{name}.csv"), "--target", "y", *FAST, "--out", runs[name]
        )
        assert result.exit_code == 0, result.output
    columns = {
        name: json.loads((run / "preprocess.json").read_text())["features"]["columns"]
        for name, run in runs.items()
    }
    for read_comma, read_point in zip(columns["comma"], columns["point"], strict=True):
        assert read_comma["kind"] == "numeric"
        assert read_comma["mean"] == pytest.approx(read_point["mean"])
        assert read_comma["std"] == pytest.approx(read_point["std"])
    assert [c["decimal_comma"] for c in columns["comma"]] == [True, True, True]


def test_report_shows_how_each_column_was_read(tmp_path, write_csv):
    comma, _ = spreadsheet_rows()
    ids = "\n".join(
        f"{line};C{100000 + i}" if i else f"{line};customer"
        for i, line in enumerate(comma.splitlines())
    )
    out = tmp_path / "run"
    fitted = invoke("fit", write_csv(ids + "\n"), "--target", "y", *FAST, "--out", out)
    assert fitted.exit_code == 0, fitted.output
    assert "dropped column 'customer'" in fitted.stderr and "all differ" in fitted.stderr
    shown = invoke("report", out)
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[1]: line for line in shown.stdout.splitlines() if line.startswith("│")}
    assert "decimal comma" in lines["price"] and "thousands ' '" in lines["price"]
    assert "'?' (7)" in lines["score"]
    assert "dropped" in lines["customer"] and "identifier" in lines["customer"]
    document = json.loads(invoke("report", out, "--json").stdout)
    by_name = {column["name"]: column for column in document["columns"]}
    assert by_name["score"]["missing_marks"] == {"?": 7} and by_name["score"]["missing"] == 7
    assert by_name["customer"]["read_as"] == "dropped"


def test_fit_refuses_an_infinite_number_in_one_sentence(tmp_path, write_csv):
    rows = [f"{i},{i % 2}" for i in range(20)]
    rows[4] = "inf,0"
    data = write_csv("x,y\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    result = invoke("fit", data, "--target", "y", *FAST, "--out", out)
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.count("\n") == 0 and "Traceback" not in message
    assert (
        "column 'x'" in message and "data row 5" in message and "data.infinite=missing" in message
    )
    assert not out.exists()
    allowed = invoke(
        "fit", data, "--target", "y", *FAST, "--out", out, "--set", "data.infinite=missing"
    )
    assert allowed.exit_code == 0, allowed.output
    (reading,) = json.loads((out / "preprocess.json").read_text())["features"]["reading"]
    assert reading["infinite"] == 1


def test_predict_reads_a_decimal_comma_file_as_training_did(tmp_path, write_csv):
    comma, point = spreadsheet_rows()
    out = tmp_path / "run"
    assert (
        invoke("fit", write_csv(comma, "c.csv"), "--target", "y", *FAST, "--out", out).exit_code
        == 0
    )
    from_comma = invoke("predict", out, write_csv(comma, "c.csv"), "--json", "--engine", "torch")
    from_point = invoke("predict", out, write_csv(point, "p.csv"), "--json", "--engine", "torch")
    assert from_comma.exit_code == 0, from_comma.output
    assert json.loads(from_comma.stdout) == json.loads(from_point.stdout)


def test_estimator_and_command_line_read_a_table_alike(tmp_path):
    pandas = pytest.importorskip("pandas")
    from growml.sklearn import GrowingMLPClassifier

    lines = ["price,day,code,colour,rate,visits,y"]
    for i in range(40):
        price, day, colour = f'"{1000 + 37 * i:,}.50"', f"2024-01-{i % 28 + 1:02d}", "rb"[i % 2]
        rate, visits = "?" if i % 5 == 0 else str(i), "n/k" if i == 9 else str(i % 6)
        lines.append(f"{price},{day},C{100000 + i},{colour},{rate},{visits},{i % 2}")
    path = tmp_path / "shop.csv"
    path.write_text("\n".join(lines) + "\n")
    fitted = invoke("fit", path, "--target", "y", *FAST, "--out", tmp_path / "run")
    assert fitted.exit_code == 0, fitted.output
    assert "column 'visits'" in fitted.stderr and "'n/k' (1)" in fitted.stderr
    preprocess = json.loads((tmp_path / "run" / "preprocess.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrowmlWarning)
        frame = pandas.read_csv(path, dtype=str, keep_default_na=False)
        estimator = GrowingMLPClassifier(epochs=2, random_state=0)
        estimator.fit(frame.drop(columns="y"), frame["y"])
    readings = [reading.model_dump() for reading in estimator.run_.preprocessor.readings]
    assert readings == preprocess["features"]["reading"]
    kinds = [reading["read_as"] for reading in readings]
    assert kinds == ["number", "dropped", "dropped", "category", "number", "number"]
    assert readings[0]["thousands"] == ","


def test_boolean_words_in_memory_are_booleans_as_in_a_file():
    result = read({"member": ["True", "false", None, "TRUE"] * 3})
    assert result.readings[0].read_as == "boolean"
    assert result.features.column("member").to_pylist()[:4] == [True, False, None, True]


def test_a_target_written_with_decimal_commas_is_a_quantity(write_csv):
    rows = [f"{i};{1000 + 250.5 * i:.2f}".replace(".", ",") for i in range(30)]
    rows[3] = "3;?"
    with pytest.warns(GrowmlWarning, match="dropped 1 of 30 rows"):
        table = load_table(str(write_csv("x;price\n" + "\n".join(rows) + "\n")), "price")
    assert table.task == "regression"
    assert table.target.to_pylist()[:3] == [1000.0, 1250.5, 1501.0]


def test_currency_and_percentages_are_numbers_and_the_report_says_so():
    result = read({"price": ["$1,234.50", "$5.25"] * 6, "share": ["12%", "3.5%"] * 6})
    assert result.features.column("price").to_pylist()[:2] == [1234.5, 5.25]
    assert result.features.column("share").to_pylist()[:2] == [0.12, 0.035]
    price, share = (reading.description() for reading in result.readings)
    assert "currency '$'" in price and "thousands ','" in price
    assert "percentages as fractions" in share


def test_infinite_numbers_to_predict_on_are_missing_with_a_warning():
    preprocessor = Preprocessor.fit(pa.table({"x": [1.0, 2.0, 3.0]}))
    with pytest.warns(GrowmlWarning, match=r"column 'x' holds 2 infinite numbers"):
        out = preprocessor.transform(pa.table({"x": [np.inf, 2.0, -np.inf]}))
    assert out[0, 0] == out[2, 0] == 0.0  # imputed with the training mean


def test_estimator_drops_typed_date_and_time_columns_of_a_dataframe():
    pandas = pytest.importorskip("pandas")
    from growml.sklearn import GrowingMLPClassifier

    frame = pandas.DataFrame(
        {
            "day": pandas.date_range("2024-01-01", periods=30, tz="UTC"),
            "wait": pandas.to_timedelta(np.arange(30), unit="D"),
            "x": np.arange(30.0),
        }
    )
    estimator = GrowingMLPClassifier(epochs=2, random_state=0)
    with pytest.warns(GrowmlWarning, match="dropped column 'day'.*dates or times"):
        estimator.fit(frame, np.arange(30) % 2)
    assert estimator.run_.preprocessor.feature_names == ["x"]
    assert estimator.predict(frame).shape == (30,)


def test_fit_says_when_a_column_has_more_categories_than_are_kept(tmp_path, write_csv):
    rows = [f"city{i % 12},{i % 2}" for i in range(60)]
    data = write_csv("city,y\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    result = invoke(
        "fit", data, "--target", "y", *FAST, "--out", out, "--set", "data.max_categories=5"
    )
    assert result.exit_code == 0, result.output
    assert "column 'city' has 12 categories; the 5 most frequent" in result.stderr
    (city,) = json.loads((out / "preprocess.json").read_text())["features"]["columns"]
    assert len(city["categories"]) == 5


def test_predict_with_onnx_reads_a_decimal_comma_file_as_torch_does(tmp_path, write_csv):
    comma, _ = spreadsheet_rows()
    data, out = write_csv(comma, "c.csv"), tmp_path / "run"
    assert invoke("fit", data, "--target", "y", *FAST, "--out", out).exit_code == 0
    exported = invoke("export", out)
    assert exported.exit_code == 0, exported.output
    by_torch = invoke("predict", out, data, "--json", "--engine", "torch")
    by_onnx = invoke("predict", out, data, "--json", "--engine", "onnx")
    assert by_onnx.exit_code == 0, by_onnx.output
    torch_rows = json.loads(by_torch.stdout)["predictions"]
    onnx_rows = json.loads(by_onnx.stdout)["predictions"]
    assert [r["prediction"] for r in onnx_rows] == [r["prediction"] for r in torch_rows]
    np.testing.assert_allclose(
        [r["probability_1"] for r in onnx_rows], [r["probability_1"] for r in torch_rows], atol=1e-5
    )


def test_a_column_mostly_of_numbers_read_as_categories_says_why():
    result = read({"size": ["1", "2", "3", "big"] * 3})
    assert result.readings[0].read_as == "category"
    (note,) = result.notes
    assert "column 'size'" in note and "9 of its 12 values are numbers" in note
    assert "'big' (3)" in note


def test_a_semicolon_file_of_three_decimals_reads_its_commas_as_decimal_marks(write_csv):
    rows = [f"{i % 4},{(i * 37) % 1000:03d};{i % 2}" for i in range(20)]
    table = load_table(str(write_csv("weight;y\n" + "\n".join(rows) + "\n")), "y")
    assert table.features.column("weight").to_pylist()[:3] == [0.0, 1.037, 2.074]
    assert table.readings[0].decimal_comma


def test_missing_marks_in_a_category_column_are_missing_not_categories():
    result = read({"colour": ["red", "?", " blue ", "-"] * 3})
    (reading,) = result.readings
    assert (reading.read_as, reading.categories, reading.missing) == ("category", 2, 6)
    assert reading.missing_marks == {"-": 3, "?": 3}
    preprocessor = Preprocessor.fit(result.features)
    assert preprocessor.output_names == ["colour=blue", "colour=red", "colour_missing"]
    rows = preprocessor.transform(pa.table({"colour": ["N/A", "blue"]}))
    np.testing.assert_array_equal(rows, [[0, 0, 1], [1, 0, 0]])


def test_predict_reads_thousands_points_of_a_decimal_comma_column(tmp_path, write_csv):
    # Every value to predict on ('2.000') is also a number with a decimal point, so a CSV reader
    # would type it 2.0; the column was read with a decimal comma in training: it is 2000.
    values = ["1,5", "2.000", "3,25", "1.234,5"]
    rows = [f"{values[i % 4] if i else '?'};{i};{i % 2}" for i in range(40)]
    out = tmp_path / "run"
    data = write_csv("a;b;y\n" + "\n".join(rows) + "\n", "train.csv")
    assert invoke("fit", data, "--target", "y", *FAST, "--out", out).exit_code == 0
    comma = write_csv("a;b\n2.000;1\n1.500;2\n", "comma.csv")
    point = write_csv("a,b\n2000,1\n1500,2\n", "point.csv")
    by_comma = invoke("predict", out, comma, "--json", "--engine", "torch")
    by_point = invoke("predict", out, point, "--json", "--engine", "torch")
    assert by_comma.exit_code == 0, by_comma.output
    assert json.loads(by_comma.stdout) == json.loads(by_point.stdout)


def test_a_semicolon_file_reads_thousands_points_alike_in_every_column(tmp_path, write_csv):
    # 'a' holds a '?', so it arrives as text; 'b' does not, and must not be typed 1.234.
    lines = [
        f"{['1.234', '2.500', '?'][i % 3]};{['1.234', '2.500'][i % 2]};{i % 2}" for i in range(30)
    ]
    data = write_csv("a;b;y\n" + "\n".join(lines) + "\n")
    out = tmp_path / "run"
    result = invoke("fit", data, "--target", "y", *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    columns = json.loads((out / "preprocess.json").read_text())["features"]["columns"]
    means = {column["name"]: column["mean"] for column in columns}
    assert means["a"] == pytest.approx((1234 + 2500) / 2, rel=0.2)
    assert means["b"] == pytest.approx((1234 + 2500) / 2, rel=0.2)


def test_a_dataframe_category_column_of_numbers_is_one_hot_encoded():
    pandas = pytest.importorskip("pandas")
    from growml.sklearn import GrowingMLPClassifier

    frame = pandas.DataFrame(
        {
            "x": np.arange(40.0),
            "size": pandas.Series([3, 7, 12, 3] * 10).astype("category"),
            "code": pandas.Series(["10", "20", "30", "10"] * 10).astype("category"),
        }
    )
    estimator = GrowingMLPClassifier(epochs=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrowmlWarning)
        estimator.fit(frame, np.arange(40) % 2)
    assert estimator.run_.preprocessor.output_names == [
        "x",
        *("size=12", "size=3", "size=7"),
        *("code=10", "code=20", "code=30"),
    ]
    assert estimator.predict(frame.head(5)).shape == (5,)


def test_a_dictionary_column_of_a_parquet_file_is_categories(tmp_path):
    import pyarrow.parquet as pq

    # pyarrow keeps the dictionary of text values only; "1", "2"... would read as numbers.
    grade = pa.array(["1", "2", "3", "5"] * 10).dictionary_encode()
    data = pa.table({"x": np.arange(40.0), "grade": grade, "y": np.arange(40) % 2})
    pq.write_table(data, tmp_path / "grades.parquet")
    out = tmp_path / "run"
    result = invoke("fit", tmp_path / "grades.parquet", "--target", "y", *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    columns = json.loads((out / "preprocess.json").read_text())["features"]["columns"]
    grade_column = next(column for column in columns if column["name"] == "grade")
    assert grade_column["kind"] == "categorical"
    assert grade_column["categories"] == ["1", "2", "3", "5"]
    predicted = invoke("predict", out, tmp_path / "grades.parquet", "--json", "--engine", "torch")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["rows"] == 40


@pytest.mark.parametrize("text_type", [pa.large_string(), pa.string_view()])
def test_text_of_every_arrow_string_type_is_read_as_plain_text(text_type):
    from growml.sklearn import GrowingMLPClassifier

    columns = {
        "rate": ["1,5", "2,5", "?"] * 10,
        "member": ["True", "False", None] * 10,
        "colour": ["red", "blue", "NA"] * 10,
        "id": [f"id{i}" for i in range(30)],
    }
    typed = pa.table({name: pa.array(values, text_type) for name, values in columns.items()})
    plain = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    as_typed, as_plain = read(typed), read(plain)
    assert as_typed.readings == as_plain.readings
    estimator = GrowingMLPClassifier(epochs=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrowmlWarning)
        estimator.fit(typed, np.arange(30) % 2)
        assert estimator.predict(typed).shape == (30,)
