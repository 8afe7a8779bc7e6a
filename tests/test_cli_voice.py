"""Every mistake speaks growml's voice, and the command line starts fast: flag errors are
one `error:` sentence with exit 2, -h and --version work, `growml settings` lists every
setting, help names values, and the commands that need no training import no torch."""

import json
import subprocess
import sys

import pytest
from growml.cli import app
from typer.testing import CliRunner

import growml
from growml.config import setting_paths
from growml.errors import ConfigError
from growml.tune.settings import TuneConfig


def invoke(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def assert_one_sentence(result, *expected):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message, message
    assert "╭" not in result.output and "Usage:" not in result.output
    for text in expected:
        assert text in message, message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["fit", "digits", "--epochs", "abc"], ["'--epochs'", "see growml fit --help"]),
        (["fit", "digits", "--bogus"], ["--bogus"]),
        (["compare", "digits", "--seeds", "x"], ["'--seeds'"]),
        (["nocommand"], ["nocommand", "see growml --help"]),
    ],
)
def test_flag_mistakes_are_one_sentence_with_exit_2(args, expected):
    assert_one_sentence(invoke(*args), *expected)


def test_version_and_short_help():
    shown = invoke("--version")
    assert shown.exit_code == 0 and shown.stdout.strip() == f"growml {growml.__version__}"
    for args in (["-h"], ["fit", "-h"], ["--help"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage: growml" in result.stdout


def test_help_names_values_not_python_types():
    text = invoke("fit", "--help").stdout
    assert "--set KEY=VALUE" in text and "--start WIDTHS" in text and "--out PATH" in text
    for python_type in ("<bool>", "<list[str]>", "<str>", "<int>", "<path>"):
        assert python_type not in text.split("Options:", 1)[1]


def test_settings_lists_every_setting_with_default_and_meaning():
    listed = json.loads(invoke("settings", "--json").stdout)
    tune = [f"tune.{name}" for name in TuneConfig.model_fields]
    assert [row["path"] for row in listed] == setting_paths() + tune
    by_path = {row["path"]: row for row in listed}
    assert by_path["growth.method"]["default"] == "pool"
    assert (
        "pool" in by_path["growth.method"]["kind"] and "gradmax" in by_path["growth.method"]["kind"]
    )
    assert all(row["meaning"] for row in listed)
    only = json.loads(invoke("settings", "train", "--json").stdout)
    assert only and all(row["path"].startswith("train.") for row in only)
    assert_one_sentence(invoke("settings", "nothing"), "'nothing'")
    assert_one_sentence(invoke("fit", "digits", "--set", "growth.foo=1"), "'growth.foo'")


def test_a_recipe_with_a_python_tag_says_the_tag_is_refused(tmp_path):
    recipe = tmp_path / "evil.yaml"
    recipe.write_text('train: !!python/object/apply:os.system ["echo hacked"]\n')
    assert_one_sentence(invoke("fit", "digits", "--recipe", recipe), "python/object", "refused")


def test_an_object_where_a_path_is_expected_is_named_by_type():
    class Frame:
        def __repr__(self):
            return "a\n0  1\n1  2"

    with pytest.raises(ConfigError) as caught:
        growml.resolve_config({"data": {"source": Frame()}})
    assert "(got a Frame)" in str(caught.value) and "\n" not in str(caught.value)


HEAVY = ("torch", "onnx", "onnxruntime", "sklearn", "optuna", "matplotlib")


@pytest.mark.parametrize(
    "args", [["--help"], ["datasets"], ["fit", "missing.csv", "--target", "y"]]
)
def test_commands_that_train_nothing_import_nothing_heavy(args, tmp_path):
    code = (
        "import sys\n"
        "from growml.cli import main\n"
        f"sys.argv = ['growml', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_output_to_a_pipe_keeps_each_message_on_one_line(tmp_path):
    """Written to a pipe (a CI log), a message is one line, whatever its length, and none is
    printed twice."""
    done = subprocess.run(
        [sys.executable, "-m", "growml.cli", "fit", "digits", "--out", str(tmp_path / "run")]
        + ["--epochs", "60", "--set", "growth.max_failures=1"],  # growth ends: a long line
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    prefixes = ("epoch", "warning:", "trimmed ", "trimming")
    assert lines and all(line.startswith(prefixes) for line in lines), lines
    assert len(set(lines)) == len(lines)


def test_every_section_of_settings_lists_its_settings_and_a_near_miss_names_the_section():
    paths = [row["path"] for row in json.loads(invoke("settings", "--json").stdout)]
    sections = {path.rsplit(".", 1)[0] for path in paths if "." in path}
    assert {"tune", "growth.pool", "data", "prune"} <= sections
    for section in sections:
        shown = json.loads(invoke("settings", section, "--json").stdout)
        assert [row["path"] for row in shown] == [p for p in paths if p.startswith(section)]
    assert_one_sentence(invoke("settings", "trian"), "did you mean 'train'?")


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("model.hidden_widths", "list of integers from 1 to 65536"),
        ("train.epochs", "integer ≥ 1"),
        ("train.lr", "number > 0"),
        ("train.momentum", "number ≥ 0 and < 1"),
        ("train.early_stopping", "true or false"),
        ("growth.pool.max_step", "number > 0 or none"),
        ("loss.tau", "number > 0 and < 1 or none"),
        ("seed", "integer from 0 to 4294967295"),
        ("tune.heartbeat_interval", "integer ≥ 1"),
        ("tune.pruner", "median | hyperband | none"),
    ],
)
def test_setting_kinds_read_as_words_with_their_ranges(path, kind):
    listed = {row["path"]: row for row in json.loads(invoke("settings", "--json").stdout)}
    assert listed[path]["kind"] == kind
    words = " ".join(row["kind"] for row in listed.values())
    for python in ("Annotated", "typing", "<class", "int", "float", "str", "dict", "NoneType"):
        assert python not in words.replace("integer", ""), python


def test_settings_table_shows_defaults_as_a_recipe_writes_them():
    line = next(
        line for line in invoke("settings", "train").stdout.splitlines() if "early_" in line
    )
    assert "│ true " in line and "True" not in line


# Nonsense numbers are refused before any work, naming the flag or setting, for every command.
NONSENSE = [
    (["fit", "iris", "--epochs", "0"], "train.epochs"),
    (["fit", "iris", "--epochs", "-3"], "train.epochs"),
    (["fit", "iris", "--seed", "-1"], "seed"),
    (["fit", "iris", "--start", "0"], "between 1 and 65536"),
    (["fit", "iris", "--fixed", "0,4"], "between 1 and 65536"),
    (["fit", "iris", "--fixed", "-4"], "between 1 and 65536"),
    (["fit", "iris", "--set", "train.lr=-1"], "greater than 0"),
    (["fit", "iris", "--set", "train.lr=.inf"], "finite number"),
    (["fit", "iris", "--set", "train.lr=.nan"], "finite number"),
    (["fit", "iris", "--set", "train.epochs=true"], "not true or false"),
    (["fit", "iris", "--set", "train.batch_size=0"], "train.batch_size"),
    (["fit", "iris", "--set", "train.threads=100000"], "train.threads"),
    (["fit", "iris", "--set", "growth.max_new_neurons=0"], "growth.max_new_neurons"),
    (["fit", "iris", "--set", "data.test_size=1.5"], "data.test_size"),
    (["fit", "iris", "--set", "model.init_scale=0"], "model.init_scale"),
    (["compare", "iris", "--depth", "0"], "'--depth'"),
    (["compare", "iris", "--depth", "17"], "'--depth'"),
    (["compare", "iris", "--seeds", "0"], "--seeds must be between 1 and 100"),
    (["compare", "iris", "--seeds", "101"], "--seeds must be between 1 and 100"),
    (["compare", "iris", "--jobs", "0"], "--jobs must be at least 1"),
    (["compare", "iris", "--widths", "0,8"], "out of range"),
    (["compare", "iris", "--widths", "8x0"], "out of range"),
    (["compare", "iris", "--epochs", "0"], "train.epochs"),
    (["tune", "iris", "--trials", "0"], "--trials must be at least 1"),
    (["tune", "iris", "--trials", "-1"], "--trials must be at least 1"),
    (["tune", "iris", "--jobs", "0"], "--jobs must be at least 1"),
    (["tune", "iris", "--timeout", "0"], "--timeout"),
    (["tune", "iris", "--timeout", "-5"], "--timeout"),
    (["tune", "iris", "--epochs", "0"], "train.epochs"),
    (["tune", "iris", "--set", "tune.heartbeat_interval=0"], "tune.heartbeat_interval"),
    (["tune", "iris", "--set", "tune.seed=99999999999"], "tune.seed"),
    (["tune", "iris", "--set", "tune.max_params=true"], "not true or false"),
]


@pytest.mark.parametrize(("args", "expected"), NONSENSE, ids=[" ".join(a) for a, _ in NONSENSE])
def test_nonsense_numbers_are_refused_in_one_sentence(args, expected, tmp_path):
    result = invoke(*args, "--out", tmp_path / "out")
    assert_one_sentence(result, expected)
    assert result.stderr.startswith("error:")  # not after an empty progress line
    assert list(tmp_path.iterdir()) == []
