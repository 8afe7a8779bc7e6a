"""The installed growml's version, for the records a run, an export or a study writes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("growml")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
