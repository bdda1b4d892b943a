"""Exceptions a user can act on.

The CLI turns ``UsageError`` subclasses into a one-line message and exit code 2,
and ``CheckFailed`` into exit code 1; anything else is a bug and keeps its
traceback (with ``--debug`` the traceback is always shown).
"""


class WsolbenchError(Exception):
    """Base class of wsolbench's user-facing errors."""

    exit_code = 2


class ConfigError(WsolbenchError):
    """A missing, malformed or invalid configuration or option."""


class ManifestError(WsolbenchError):
    """A manifest that cannot be read; the message names the file and line."""


class DataError(WsolbenchError):
    """An image, mask or annotation that cannot be used; the message names it."""


class MetricInputError(WsolbenchError):
    """A score map or annotation handed to a metric is invalid; names the image id."""


class OutputError(WsolbenchError):
    """An output location that cannot be written."""


class CheckFailed(WsolbenchError):
    """A check ran and found problems (exit code 1)."""

    exit_code = 1
