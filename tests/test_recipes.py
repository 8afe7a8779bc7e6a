"""Every shipped recipe validates and names a built-in dataset."""

from pathlib import Path

import pytest

from growml.config import load_recipe, resolve_config
from growml.data import list_datasets

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


def test_the_three_recipes_ship():
    assert {p.stem for p in RECIPES} >= {"digits", "breast-cancer", "mnist1d"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_is_valid(path):
    config = resolve_config(load_recipe(path))
    assert config.data.source == path.stem
    assert config.data.source in {info.name for info in list_datasets()}
    # Comments explain the choices.
    assert path.read_text().lstrip().startswith("#")
