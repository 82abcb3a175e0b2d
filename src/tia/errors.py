"""The exceptions tia raises, the exit codes the CLI maps them to, and pytest's.

Every error a user can cause derives from `TiaError`; the CLI catches it once,
prints its one-line message and exits with its `exit_code`.  Anything else that
escapes is a bug in tia and gets a traceback.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """tia's own exit statuses; a run otherwise exits with pytest's status."""

    OK = 0
    USAGE = 2
    ERROR = 3
    INTERRUPTED = 130


class PytestExit(enum.IntEnum):
    """pytest's exit statuses, as `pytest.ExitCode` numbers them, for code that does not
    import pytest."""

    OK = 0
    TESTS_FAILED = 1
    INTERRUPTED = 2
    INTERNAL_ERROR = 3
    USAGE_ERROR = 4
    NO_TESTS_COLLECTED = 5


class TiaError(Exception):
    """An error the user can act on: printed as one line, no traceback."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(TiaError):
    """The command line or the configuration asks for something impossible."""

    exit_code = ExitCode.USAGE


class GitError(TiaError):
    """The repository cannot answer what tia needs: not a repo, unknown ref, shallow clone."""


class StoreError(TiaError):
    """The map in `.tia/` cannot be used: newer schema, unwritable directory."""


class CorruptStoreError(StoreError):
    """The map's content is not what tia wrote; the store moves it aside and rebuilds."""
