"""The errors and warnings users see.

A ``GrowmlError`` is something the user can fix (a file, a setting, the data); its message is one
sentence that says what was wrong and what to do. The command line prints it and exits with
code 2. Anything else that escapes is a bug.
"""


class GrowmlError(Exception):
    """A problem the user can fix; the message is shown to them as it is."""


class DataError(GrowmlError):
    """The data cannot be used: a missing file, a bad column, a target that cannot be learned."""


class ConfigError(GrowmlError):
    """A setting is unknown, of the wrong type, or out of range."""


class TrainingError(GrowmlError):
    """Training failed for a reason the settings can fix (it diverged, it ran out of memory)."""


class RunError(GrowmlError):
    """A run directory is missing, incomplete, or would be overwritten."""


class ExportError(GrowmlError):
    """A run cannot be exported, or an exported model cannot be used."""


class GrowmlWarning(UserWarning):
    """Something was changed to make the data usable (a column dropped, rows skipped)."""
