"""``python -m growml.cli``: the ``growml`` command."""

from growml.cli.app import main

main()
