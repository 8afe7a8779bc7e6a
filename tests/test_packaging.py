"""The package ships every module: pyproject lists each folder of growml/."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(settings["packages"])
    found = {
        "growml." + ".".join(init.parent.relative_to(ROOT / "growml").parts)
        for init in (ROOT / "growml").rglob("__init__.py")
        if init.parent != ROOT / "growml"
    }
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
    assert settings["package-dir"]["growml.cli"] == "cli"
