"""growml: size neural networks by growing them.

Public API::

    import growml
    config = growml.resolve_config({"data": {"source": "digits"}})
    result = growml.fit(config, out="runs/digits")
    run = growml.load_run("runs/digits")
    run.predict(rows)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("growml")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

from growml.config import FitConfig, load_recipe, resolve_config
from growml.errors import ConfigError, DataError, GrowmlError, GrowmlWarning, RunError
from growml.fitting import FitResult, fit
from growml.runs import Run, load_run

__all__ = [
    "ConfigError",
    "DataError",
    "FitConfig",
    "FitResult",
    "GrowmlError",
    "GrowmlWarning",
    "Run",
    "RunError",
    "__version__",
    "fit",
    "load_recipe",
    "load_run",
    "resolve_config",
]
