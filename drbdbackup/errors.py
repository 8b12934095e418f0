"""One exception hierarchy. Each class carries its exit code; the message is one line."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_LOCKED = 4


class DrbdBackupError(Exception):
    """Base of every error the command line reports as one line."""

    exit_code = EXIT_ENVIRONMENT


class UsageError(DrbdBackupError):
    """Bad usage or bad input."""

    exit_code = EXIT_USAGE


class NotARepository(UsageError):
    """The path or URL is not a drbdbackup repository."""


class RepositoryExists(UsageError):
    """init on a location that already holds a repository."""


class UnsupportedFormat(UsageError):
    """The repository uses a format version this build cannot read."""


class WrongPassword(UsageError):
    """No key file opens with the given passphrase."""


class PasswordRequired(UsageError):
    """The repository is encrypted and no passphrase was given."""


class UnknownVolume(UsageError):
    """The volume id has no generations in the repository."""


class UnknownGeneration(UsageError):
    """The generation does not exist."""


class TargetTooSmall(UsageError):
    """The restore target is smaller than the volume."""


class EnvironmentFailure(DrbdBackupError):
    """Something outside the repository failed: a device, a permission, the controller."""

    exit_code = EXIT_ENVIRONMENT


class SourceUnavailable(EnvironmentFailure):
    """The source volume is missing or unreadable."""


class DiskFull(EnvironmentFailure):
    """No space left while writing."""


class BackendError(EnvironmentFailure):
    """The storage backend failed (I/O error, network)."""


class ObjectNotFound(BackendError):
    """A named object does not exist in the backend."""


class ObjectExists(BackendError):
    """A create-exclusive put found the object already there."""


class IntegrityError(DrbdBackupError):
    """Stored data does not match its id, or a structure is damaged."""

    exit_code = EXIT_INTEGRITY


class RepositoryLocked(DrbdBackupError):
    """Another process holds a conflicting lock."""

    exit_code = EXIT_LOCKED


def describe(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for any exception, the same for every front end."""
    import errno

    if isinstance(exc, DrbdBackupError):
        return exc.exit_code, str(exc)
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return EXIT_ENVIRONMENT, "no space left on device"
        return EXIT_ENVIRONMENT, exc.strerror or str(exc)
    return EXIT_ENVIRONMENT, f"internal error: {type(exc).__name__}: {exc}"
