"""Exceptions that become one clear line and a non-zero exit at the CLI (never a traceback)."""
from __future__ import annotations


class BenchError(Exception):
    """An error the user can fix; the message says what was wrong and what to do."""

    exit_code = 2


class UsageError(BenchError):
    """Bad command-line input."""


class DataError(BenchError):
    """Missing, corrupt or unexpected data files."""


class RecordError(BenchError):
    """A results file that cannot be read as records."""
