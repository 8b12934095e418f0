"""Repository locks (format.md section 10). Only the ops layer takes them; stale locks removed
while acquiring are handed back (`Lock.stale_removed`) for the caller to report and audit.

Locks are read within the limits of format.md section 17; one that does not read (too large or
deep, not JSON, `exclusive` not a boolean) blocks nothing and is reported and removed as stale.
A readable lock whose `expires` does not parse is respected (section 10)."""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from drbdbackup.errors import ObjectNotFound, RepositoryLocked
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.capped import read_capped
from drbdbackup.repo.records import JsonObjectError, iso, load_json_object, now

LOCK_TTL = timedelta(minutes=30)
REFRESH_EVERY_S = 300
WAIT_POLL_S = 0.5  # how often a waiting exclusive lock lists again
LOCK_NAME_RE = re.compile(r"^locks/[0-9a-f]{32}$")


class UnreadableLock(dict[str, Any]):
    """Stands for a lock object that does not read (format.md section 17): it is reported and
    treated as stale, so it blocks no lock; its `problem` says why."""


def _pid_alive(pid: int) -> bool:
    if not 0 < pid < 1 << 31:  # 0 and negatives name process groups; no pid is larger
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _expires(lock: dict[str, Any]) -> datetime | None:
    """The lock's expiry, or None when it does not parse (such a lock is respected)."""
    try:
        ts = datetime.fromisoformat(lock["expires"])
    except (KeyError, TypeError, ValueError):
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def is_stale(lock: dict[str, Any], hostname: str | None = None) -> bool:
    """Expired, ours-by-host with a dead pid, or unreadable (format.md sections 10 and 17)."""
    if isinstance(lock, UnreadableLock):
        return True
    hostname = hostname or socket.gethostname()
    expires = _expires(lock)
    if expires is not None and expires < now():
        return True
    pid = lock.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int):
        return False
    return lock.get("hostname") == hostname and not _pid_alive(pid)


def _shown(lock: dict[str, Any], key: str) -> str:
    """A lock field for a one-line message: printable and short, whatever the lock holds."""
    text = str(lock.get(key))
    return "".join(c if c.isprintable() else "?" for c in text[:80])


class Lock:
    """A held lock; refreshes itself in a daemon thread until released."""

    def __init__(self, backend: Backend, exclusive: bool, operation: str) -> None:
        self.backend = backend
        self.exclusive = exclusive
        self.operation = operation
        self.name = f"locks/{secrets.token_hex(16)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stale_removed: list[tuple[str, dict]] = []  # (name, lock) removed while acquiring

    def _body(self) -> bytes:
        host = socket.gethostname()
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        t = now()
        return json.dumps(
            {
                "exclusive": self.exclusive,
                "operation": self.operation,
                "hostname": host,
                "pid": os.getpid(),
                "owner": f"{user}@{host}",
                "created": iso(t),
                "expires": iso(t + LOCK_TTL),
            }
        ).encode()

    def acquire(self, wait_s: float = 0.0) -> Lock:
        """Write the lock, then list (format.md section 10). An exclusive lock may wait up to
        `wait_s` for shared holders to finish, its object in place meanwhile (new shared
        lockers see it and fail, so a stream of backups cannot starve a prune); it never
        waits for another exclusive lock."""
        deadline = time.monotonic() + wait_s
        self.backend.put(self.name, self._body())
        while (held := self._conflict()) is not None:
            if held.get("exclusive") or time.monotonic() >= deadline:
                self.backend.delete(self.name)
                raise RepositoryLocked(
                    f"repository is locked by {_shown(held, 'owner')} pid {_shown(held, 'pid')} "
                    f"({_shown(held, 'operation')}, "
                    f"{'exclusive' if held.get('exclusive') else 'shared'}) "
                    f"since {_shown(held, 'created')}"
                )
            time.sleep(min(WAIT_POLL_S, max(0.0, deadline - time.monotonic())))
            self.backend.put(self.name, self._body())  # fresh while waiting
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()
        return self

    def _conflict(self) -> dict[str, Any] | None:
        """The first live lock that conflicts with ours (stale ones are removed, remembered)."""
        for name, lock in list_locks(self.backend):
            if name == self.name:
                continue
            if is_stale(lock):
                self.backend.delete(name)
                self.stale_removed.append((name, lock))
                continue
            if self.exclusive or lock.get("exclusive"):
                return lock
        return None

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_EVERY_S):
            try:
                self.backend.put(self.name, self._body())
            except Exception:  # noqa: BLE001 - keep the job running; expiry is the fallback
                pass

    def release(self) -> None:
        self._stop.set()
        self.backend.delete(self.name)

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_lock(backend: Backend, name: str) -> dict[str, Any]:
    """A lock object within the limits of format.md section 17, `exclusive` a boolean; raises
    JsonObjectError (a ValueError) or ObjectNotFound."""
    lock = load_json_object(read_capped(backend, name, "lock"), "lock")
    if not isinstance(lock.get("exclusive"), bool):
        raise JsonObjectError("lock: exclusive is not true or false")
    return lock


def unreadable_lock(reason: str) -> UnreadableLock:
    """The stand-in for a lock that does not read."""
    return UnreadableLock(problem=reason, owner=f"unreadable lock ({reason})", exclusive=False)


def list_locks(backend: Backend) -> list[tuple[str, dict[str, Any]]]:
    """Every lock under locks/ (names as the format has them), unreadable ones as
    `unreadable_lock`."""
    out = []
    for name in backend.list("locks/"):
        if not LOCK_NAME_RE.match(name):
            continue
        try:
            out.append((name, read_lock(backend, name)))
        except ObjectNotFound:
            continue
        except JsonObjectError as exc:
            out.append((name, unreadable_lock(str(exc))))
    return out
