"""The README's Python example runs as written and gives what `growml fit` gives."""

import os
import re
from pathlib import Path

import growml
from growml.data import load_table

README = Path(__file__).parent.parent / "README.md"


def _python_example() -> str:
    section = README.read_text().split("### In Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_example_runs_and_matches_the_command_line_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = load_table("wine", None, "auto").features.slice(0, 3).to_pylist()  # list of records
    namespace = {"rows": rows}
    exec(compile(_python_example(), "README.md", "exec"), namespace)  # noqa: S102
    metrics = namespace["result"].metrics
    command_line = growml.fit(
        growml.resolve_config(overrides=[("data.source", "wine")]), out=tmp_path / "cli"
    )
    assert metrics["test"] == command_line.metrics["test"]
    assert metrics["test"]["accuracy"] >= 0.9
    assert os.path.isdir(tmp_path / "runs" / "wine")
    assert len(namespace["run"].predict(rows)) == 3
