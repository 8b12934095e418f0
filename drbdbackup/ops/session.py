"""The one context in which an operation touches a repository (in the manner of borg's
`with_repository`): open, lock, audit on success and on failure, release."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from drbdbackup.errors import DrbdBackupError, RepositoryLocked
from drbdbackup.repo import audit_writer
from drbdbackup.repo import open as repo_open
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.locks import Lock, is_stale, list_locks
from drbdbackup.repo.repository import Repository

log = logging.getLogger("drbdbackup")


@dataclass(frozen=True)
class RepositoryRef:
    """Which repository and how to open it: a location (directory or s3://...) or a backend."""

    location: str | None = None
    password: str | None = field(default=None, repr=False)
    backend: Backend | None = None

    @classmethod
    def of(cls, where: str | Backend, password: str | None = None) -> RepositoryRef:
        if isinstance(where, str):
            return cls(location=where, password=password)
        return cls(backend=where, password=password)

    def open_backend(self, *, create: bool = False) -> Backend:
        if self.backend is not None:
            return self.backend
        assert self.location is not None
        return repo_open.backend_for(self.location, create=create)

    def open(self) -> Repository:
        return Repository.open(self.open_backend(), self.password)

    @property
    def display(self) -> str:
        return self.location or self.open_backend().location


class LockMode(Enum):
    """Which repository lock an operation holds (format.md section 10)."""

    NONE = "none"
    SHARED = "shared"
    EXCLUSIVE = "exclusive"


class Session:
    """An open repository inside `operation`; `succeeded` writes the operation's audit entry."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def succeeded(self, event: str, details: dict[str, Any], *,
                  record: dict[str, str] | None = None) -> None:
        """Append an audit entry of the operation: details sealed when the repository is
        encrypted; a backup names its `record`, a prune lists the records it removes (its
        intent entry before any deletion, its final entry after: format.md sections 12, 13)."""
        removed = None
        if event == "prune":
            removed = [str(r) for r in details.get("removed_generations") or ()]
        audit_writer.append(self.repo.backend, event, details, enc_key=self.repo.enc_key,
                            record=record, removed=removed)

    def late_entry(self, record: dict[str, str], reason: str) -> None:
        """The entry a crashed run did not write for its record (section 13: the next backup
        of the volume writes it before its own record)."""
        audit_writer.append(self.repo.backend, "backup", {"late": True, "reason": reason},
                            enc_key=self.repo.enc_key, record=record)


def audit_entry(backend: Backend, event: str, details: dict[str, Any]) -> None:
    """Append an audit entry outside a session (init: the repository did not exist before)."""
    audit_writer.append(backend, event, details)


def _printable(value: object) -> str:
    """A lock field as one safe line (a hostile lock may hold newlines or control bytes)."""
    return "".join(c if c.isprintable() else "?" for c in str(value))[:200]


def _report_stale(backend: Backend, lock: Lock, enc_key: bytes | None) -> None:
    for name, held in lock.stale_removed:
        fields = [_printable(held.get(k)) for k in ("owner", "pid", "operation", "created", "expires")]
        log.warning("removing stale lock %s of %s pid %s (%s), created %s, expires %s",
                    _printable(name), *fields)
        try:
            audit_writer.append(backend, "lock", {"removed_stale_lock": name, "lock": held},
                                enc_key=enc_key)
        except Exception as exc:  # noqa: BLE001 - reporting must not block the job
            log.debug("could not audit the stale lock removal: %s", exc)


@contextmanager
def operation(
    ref: RepositoryRef,
    command: str,
    *,
    lock: LockMode = LockMode.NONE,
    audit_failure: dict[str, Any] | None = None,
    lock_wait_s: float = 0.0,
) -> Iterator[Session]:
    """Open the repository, take `lock` (an exclusive one waiting up to `lock_wait_s` for
    shared holders), yield a `Session`, release.

    With `audit_failure` (the failure entry's context, e.g. the volume id), a `DrbdBackupError`
    escaping the block appends a `failure` audit entry first — unless the repository is locked
    by another process, which then writes nothing.
    """
    repo = ref.open()
    held = None
    if lock is not LockMode.NONE:
        held = Lock(repo.backend, exclusive=lock is LockMode.EXCLUSIVE,
                    operation=command).acquire(lock_wait_s)
        _report_stale(repo.backend, held, repo.enc_key)
    try:
        yield Session(repo)
    except DrbdBackupError as exc:
        if audit_failure is not None and not isinstance(exc, RepositoryLocked):
            details = {"command": command, **audit_failure, "error": type(exc).__name__,
                       "message": str(exc), "exit_code": exc.exit_code}
            try:
                audit_writer.append(repo.backend, "failure", details, enc_key=repo.enc_key)
            except Exception as audit_exc:  # noqa: BLE001 - the original error is what matters
                log.debug("could not audit the failure: %s", audit_exc)
        raise
    finally:
        if held is not None:
            held.release()


def exclusive_lock_holder(backend: Backend) -> str | None:
    """One line naming a live exclusive lock on the repository (a manual prune), or None."""
    for _name, lock in list_locks(backend):
        if lock.get("exclusive") and not is_stale(lock):
            return (f"repository is locked by {str(lock.get('owner'))[:80]} "
                    f"({str(lock.get('operation'))[:40]}, exclusive) since {lock.get('created')}")
    return None
