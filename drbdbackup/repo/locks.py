"""Repository locks (format.md section 10). Only the ops layer takes them; stale locks removed
while acquiring are handed back (`Lock.stale_removed`) for the caller to report and audit."""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta

from drbdbackup.errors import ObjectNotFound, RepositoryLocked
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.records import iso, now

LOCK_TTL = timedelta(minutes=30)
REFRESH_EVERY_S = 300


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(lock: dict, hostname: str | None = None) -> bool:
    """Expired, or ours-by-host with a dead pid."""
    hostname = hostname or socket.gethostname()
    try:
        if datetime.fromisoformat(lock["expires"]) < now():
            return True
    except (KeyError, ValueError):
        return True
    return lock.get("hostname") == hostname and not _pid_alive(int(lock.get("pid", 0)))


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

    def acquire(self) -> Lock:
        self.backend.put(self.name, self._body())
        for other in list_locks(self.backend):
            name, lock = other
            if name == self.name:
                continue
            if is_stale(lock):
                self.backend.delete(name)
                self.stale_removed.append((name, lock))
                continue
            if self.exclusive or lock.get("exclusive"):
                self.backend.delete(self.name)
                raise RepositoryLocked(
                    f"repository is locked by {lock.get('owner')} pid {lock.get('pid')} "
                    f"({lock.get('operation')}, {'exclusive' if lock.get('exclusive') else 'shared'}) "
                    f"since {lock.get('created')}"
                )
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()
        return self

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


def list_locks(backend: Backend) -> list[tuple[str, dict]]:
    out = []
    for name in backend.list("locks/"):
        try:
            out.append((name, json.loads(backend.get(name))))
        except ObjectNotFound:
            continue
        except ValueError:
            out.append((name, {"expires": "", "owner": "unreadable lock"}))
    return out
