"""The error tree shared by every layer, and the process exit code each error maps to.

Errors a user can fix (bad input, a malformed runbook, a held lock) carry a hint
with the next thing to do; the CLI prints message and hint without a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in one table in the README."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    AWAITING_APPROVAL = 3
    IN_DOUBT = 4
    LOCK_HELD = 5
    UNREACHABLE = 6
    INTERRUPTED = 130


class BreakglassError(Exception):
    """Base of every error breakglass raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UserInputError(BreakglassError):
    """Invalid input from the operator: a flag, an input value, a file."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(UserInputError):
    """The platform config is missing, unreadable or invalid."""


class RunbookError(UserInputError):
    """A runbook cannot be found, parsed or validated."""


class NotFoundError(UserInputError):
    """A named run, step, runbook or entry does not exist."""


class SecretError(ConfigError):
    """A secret reference cannot be resolved."""


class LockHeldError(BreakglassError):
    """A lock a run declares is held by another live run."""

    exit_code = ExitCode.LOCK_HELD


class TargetUnreachableError(BreakglassError):
    """A target system did not respond within its timeout."""

    exit_code = ExitCode.UNREACHABLE


class StoreError(BreakglassError):
    """The state store cannot be opened, migrated or written."""


class StoreUnreachableError(StoreError):
    """The state store cannot be reached or opened."""

    exit_code = ExitCode.UNREACHABLE


class LeaseLostError(StoreError):
    """This process no longer holds the run's lease, so it must stop writing."""
