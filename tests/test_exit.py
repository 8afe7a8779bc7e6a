"""A user error ends the process cleanly: exit code 2, one sentence, no thread left running.

A display or worker thread still alive when the interpreter shuts down runs on while modules
and native libraries are torn down under it; a process that then aborts (exit 134) turns a
clear user error into a crash. These tests drive the command line as users do, alone and
many at once.
"""

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from growml.cli import app
from typer.testing import CliRunner

GROWML = [sys.executable, "-m", "growml.cli"]
DIVERGING = ["--task", "regression", "--fixed", "8", "--epochs", "3", "--set", "train.lr=1e12"]


def _table(rows: int = 80) -> str:
    lines = [f"{i % 7 * 0.5},{(i * 3) % 11},{'abc'[i % 3]},{i % 2}" for i in range(rows)]
    return "a,b,c,y\n" + "\n".join(lines) + "\n"


def test_a_training_error_leaves_no_progress_thread_running(tmp_path, write_csv):
    path = write_csv(_table())
    before = set(threading.enumerate())
    result = CliRunner().invoke(
        app, ["fit", str(path), "--target", "y", *DIVERGING, "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2, result.output
    assert "diverged" in result.stderr
    assert set(threading.enumerate()) - before == set()
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def user_errors(tmp_path_factory):
    """Fifty invocations that each end in a user error, of every kind the reading, the
    settings, the training and the prediction code raise, in a folder of their own."""
    root = tmp_path_factory.mktemp("errors")
    (root / "ok.csv").write_text(_table())
    (root / "one.csv").write_text("a,y\n" + "".join(f"{i},1\n" for i in range(30)))
    (root / "short.csv").write_text(_table() + "1,2\n")
    pq.write_table(pa.table({"a": [1.0, 2.0] * 20, "y": [0, 1] * 20}), root / "ok.parquet")
    (root / "nocolumn.csv").write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(20)))
    subprocess.run(
        [*GROWML, "fit", "ok.csv", "--target", "y", "--fixed", "4", "--epochs", "2"]
        + ["--out", "run"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    kinds = [
        ["fit", "ok.csv", "--target", "zz"],
        ["fit", "one.csv", "--target", "y"],
        ["fit", "short.csv", "--target", "y"],
        ["fit", "missing.csv", "--target", "y"],
        ["fit", "ok.parquet", "--target", "zz"],
        ["fit", "ok.csv", "--target", "y", "--set", "train.lr=-1"],
        ["fit", "ok.csv", "--target", "y", "--loss", "soft-f1", "--task", "regression"],
        ["fit", "ok.csv", "--target", "y", *DIVERGING],
        ["predict", "run", "nocolumn.csv"],
        ["predict", "nowhere", "ok.csv"],
    ]
    return root, [kinds[i % len(kinds)] for i in range(50)]


@pytest.mark.slow
def test_fifty_user_errors_at_once_each_exit_2_with_one_sentence(user_errors):
    root, commands = user_errors

    def run(index_and_args):
        index, args = index_and_args
        out = ["--out", f"run-{index}"] if args[0] == "fit" else []
        return subprocess.run(
            [*GROWML, *args, *out], cwd=root, capture_output=True, text=True, timeout=600
        )

    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(run, enumerate(commands)))
    for args, result in zip(commands, results, strict=True):
        lines = result.stderr.strip().splitlines()
        assert (result.returncode, len(lines)) == (2, 1), (args, result.stderr)
        assert lines[0].startswith("error: "), (args, result.stderr)
    assert sorted(p.name for p in Path(root).iterdir() if p.name.startswith("run-")) == []
