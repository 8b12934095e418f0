"""Errors: those that end a run, each with its exit code (DESIGN.md section 9), and FormatError."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_LOCKED = 4


class VerifyError(Exception):
    """Base class: a one-line message and an exit code."""

    exit_code = EXIT_ENVIRONMENT


class UsageError(VerifyError):
    """Bad command line or bad input (exit 2)."""

    exit_code = EXIT_USAGE


class WrongPassphrase(UsageError):
    """No key file opens with the given passphrase (exit 2: bad input)."""

    def __init__(self) -> None:
        super().__init__("wrong passphrase")


class EnvironmentFailure(VerifyError):
    """Permission, missing device, I/O failure (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class RepositoryLocked(VerifyError):
    """A conflicting lock is held (exit 4)."""

    exit_code = EXIT_LOCKED


class FatalIntegrity(VerifyError):
    """Damage that prevents any further check, e.g. an unreadable config (exit 1)."""

    exit_code = EXIT_INTEGRITY


class FormatError(ValueError):
    """Bytes that do not follow docs/format.md (a finding, never the end of a run by itself)."""
