"""Turn a REPO argument (directory or s3://bucket/prefix) into a backend."""

from __future__ import annotations

import os

from drbdbackup.errors import NotARepository, UsageError
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.local import LocalBackend


def backend_for(location: str, *, create: bool = False) -> Backend:
    """A backend for `location`; with `create`, a missing local directory is made."""
    if location.startswith("s3://"):
        from drbdbackup.repo.retry import RetryingBackend
        from drbdbackup.repo.s3 import S3Backend

        return RetryingBackend(S3Backend.from_url(location))  # network errors are often transient
    if "://" in location:
        raise UsageError(f"unsupported repository location {location!r}: use a directory or s3://")
    path = os.path.abspath(location)
    if create:
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"cannot create a repository at {path}: it exists and is not a directory")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create a repository at {path}: {exc.strerror}") from None
    elif not os.path.exists(path):
        raise NotARepository(f"{path} is not a drbdbackup repository (no such directory)")
    elif not os.path.isdir(path):
        raise NotARepository(f"{path} is not a drbdbackup repository (it is a file, not a directory)")
    return LocalBackend(path)
