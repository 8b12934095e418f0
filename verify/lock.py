"""Shared repository lock for the duration of a verify run (section 10)."""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import FormatError, RepositoryLocked
from .jsonobj import load_json_object
from .limits import JSON_MAX_BYTES
from .names import HEX32_RE
from .store import ObjectMissing, Store, get_capped

LOCK_TTL = timedelta(minutes=30)
REFRESH_S = 240.0


def _pid_running(pid: int) -> bool:
    if not 0 < pid < 2**31:  # 0 and negatives name process groups; no pid is larger
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(lock: dict[str, Any], now: datetime, hostname: str) -> bool:
    """Expired, or held by a dead process on this host.

    An ``expires`` that cannot be parsed does not make a lock stale: a lock we cannot read is
    respected. A timestamp without an offset is taken as UTC.
    """
    try:
        expires = datetime.fromisoformat(str(lock["expires"]))
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires < now:
            return True
    except (KeyError, ValueError, TypeError):
        pass
    pid = lock.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int):
        return False
    return lock.get("hostname") == hostname and not _pid_running(pid)


def read_lock(store: Store, name: str) -> dict[str, Any]:
    """A lock object, size/depth bounded, ``exclusive`` a bool; raises FormatError/ObjectMissing."""
    lock = load_json_object(get_capped(store, name, JSON_MAX_BYTES["lock"]), "lock")
    if not isinstance(lock.get("exclusive"), bool):
        raise FormatError("lock: 'exclusive' must be true or false")
    return lock


class SharedLock:
    """Context manager: write our shared lock, fail with exit 4 on a live exclusive lock."""

    def __init__(self, store: Store, operation: str = "verify") -> None:
        self.store = store
        self.operation = operation
        self.name = f"locks/{os.urandom(16).hex()}"
        self.hostname = socket.gethostname()
        self.stale: list[str] = []
        self.unreadable: list[tuple[str, str]] = []  # (name, why): ignored, reported as notes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        now = datetime.now(UTC)
        user = os.environ.get("USER") or str(os.getuid())
        return json.dumps(
            {
                "exclusive": False,
                "operation": self.operation,
                "hostname": self.hostname,
                "pid": os.getpid(),
                "owner": f"{user}@{self.hostname}",
                "created": now.isoformat(),
                "expires": (now + LOCK_TTL).isoformat(),
            }
        ).encode()

    def __enter__(self) -> SharedLock:
        self.store.put_atomic(self.name, self._body())
        now = datetime.now(UTC)
        for other in self.store.list("locks"):
            if other == self.name or not HEX32_RE.match(other[len("locks/") :]):
                continue
            try:
                lock = read_lock(self.store, other)
            except ObjectMissing:
                continue
            except FormatError as e:
                self.unreadable.append((other, str(e)))
                continue
            if is_stale(lock, now, self.hostname):
                self.stale.append(other)
                continue
            if lock["exclusive"]:
                self.store.delete(self.name)
                raise RepositoryLocked(
                    f"repository locked by {lock.get('owner', '?')} "
                    f"({lock.get('operation', '?')}, pid {lock.get('pid', '?')})"
                )
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.store.put_atomic(self.name, self._body())
            except Exception:  # noqa: BLE001 - best effort; expiry protects others
                pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.store.delete(self.name)
