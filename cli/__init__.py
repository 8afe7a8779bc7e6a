"""The ``growml`` command line (installed as ``growml.cli``)."""

from growml.cli.app import app, main

__all__ = ["app", "main"]
