"""A backend wrapper whose faults a test scripts, in the manner of kopia's FaultyStorage.

    faulty = FaultyBackend(MemoryBackend())
    faulty.add_fault("put", r"^packs/").error_instead(DiskFull("disk full")).times(2)
    faulty.add_fault("put", r"^locks/").error_after(BackendError("timeout"))  # stored, reply lost
    faulty.add_fault("delete").skip(1).on_call(callback)  # run `callback` on the 2nd delete
    faulty.flip_on_load("packs/")  # XOR 0xFF one byte of every loaded pack

The one-call form stays: `add_fault("put", "packs/", DiskFull("full"), repeat=1, after=0)`.
Operations: get (also get_range), put (also put_file), delete, list, size, exists. The name a
pattern is searched in is the object name (the prefix for list). With no fault scripted and no
flip pattern the wrapper passes every call through unchanged.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from drbdbackup.repo.backend import Backend

OPS = ("get", "put", "delete", "list", "size", "exists")
T = TypeVar("T")


@dataclass(eq=False)
class Fault:
    """On `op` calls whose name matches `pattern`: let `skip_first` of them through, then fire on
    `repeat` more (-1 = every one; 0 = spent). Firing runs `call_hook`, then raises `error`
    instead of the call, or - with `lose_reply` - runs the call, `return_hook`, then raises."""

    op: str
    pattern: str = ""
    error: BaseException | None = None
    repeat: int = 1
    skip_first: int = 0
    lose_reply: bool = False
    call_hook: Callable[[], None] | None = None
    return_hook: Callable[[], None] | None = None
    hits: int = 0

    def error_instead(self, error: BaseException) -> Fault:
        """Raise `error` instead of performing the call."""
        self.error, self.lose_reply = error, False
        return self

    def error_after(self, error: BaseException) -> Fault:
        """Perform the call, then raise `error`: the operation happened but its reply was lost."""
        self.error, self.lose_reply = error, True
        return self

    def times(self, n: int) -> Fault:
        """Fire on `n` matching calls (-1 = every one). (`repeat` is the count left.)"""
        self.repeat = n
        return self

    def skip(self, n: int) -> Fault:
        """Let the first `n` matching calls through before firing."""
        self.skip_first = n
        return self

    def on_call(self, hook: Callable[[], None]) -> Fault:
        """Run `hook` when the fault fires, before the call."""
        self.call_hook = hook
        return self

    def on_return(self, hook: Callable[[], None]) -> Fault:
        """Run `hook` right after the call went through (not when the error replaces the call)."""
        self.return_hook = hook
        return self


class FaultyBackend:
    """Delegates to an inner backend, injecting scripted errors, hooks and corruption.

    At most one fault fires per call: the first in the order they were added whose op and
    pattern match and that has no calls left to skip (each matching fault passed on the way
    counts the call as one of its skips). `calls` records every (op, name) seen.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.location = inner.location
        self.faults: list[Fault] = []
        self.flip_patterns: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add_fault(
        self,
        op: str,
        pattern: str = "",
        error: BaseException | None = None,
        repeat: int = 1,
        after: int = 0,
    ) -> Fault:
        """Script a fault for `op` on names matching `pattern` (a regex; "" matches all).

        Configure it with the returned Fault's methods, or in one call: `error` is raised
        instead of the call, `repeat` times (-1 = always), once `after` matching calls succeeded.
        """
        if op not in OPS:
            raise ValueError(f"unknown backend operation {op!r}: one of {', '.join(OPS)}")
        fault = Fault(op, pattern, error, repeat, after)
        with self._lock:
            self.faults.append(fault)
        return fault

    def flip_on_load(self, pattern: str) -> None:
        """Corrupt one byte (the middle one, XOR 0xFF) of every object loaded whose name matches."""
        self.flip_patterns.append(pattern)

    def _firing(self, op: str, name: str) -> Fault | None:
        with self._lock:
            self.calls.append((op, name))
            for fault in self.faults:
                if fault.op != op or fault.repeat == 0 or not re.search(fault.pattern, name):
                    continue
                if fault.skip_first > 0:
                    fault.skip_first -= 1
                    continue
                if fault.repeat > 0:
                    fault.repeat -= 1
                fault.hits += 1
                return fault
        return None

    def _run(self, op: str, name: str, call: Callable[[], T]) -> T:
        fault = self._firing(op, name)
        if fault is None:
            return call()
        if fault.call_hook is not None:
            fault.call_hook()
        if fault.error is not None and not fault.lose_reply:
            raise fault.error
        result = call()
        if fault.return_hook is not None:
            fault.return_hook()
        if fault.error is not None:
            raise fault.error
        return result

    def _maybe_flip(self, name: str, data: bytes) -> bytes:
        if data and any(re.search(p, name) for p in self.flip_patterns):
            buf = bytearray(data)
            buf[len(buf) // 2] ^= 0xFF
            return bytes(buf)
        return data

    def get(self, name: str) -> bytes:
        return self._maybe_flip(name, self._run("get", name, lambda: self.inner.get(name)))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        data = self._run("get", name, lambda: self.inner.get_range(name, offset, length))
        return self._maybe_flip(name, data)

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        self._run("put", name, lambda: self.inner.put(name, data, exclusive=exclusive))

    def put_file(self, name: str, path: str) -> None:
        self._run("put", name, lambda: self.inner.put_file(name, path))

    def delete(self, name: str) -> None:
        self._run("delete", name, lambda: self.inner.delete(name))

    def list(self, prefix: str) -> list[str]:
        return self._run("list", prefix, lambda: self.inner.list(prefix))

    def size(self, name: str) -> int:
        return self._run("size", name, lambda: self.inner.size(name))

    def exists(self, name: str) -> bool:
        return self._run("exists", name, lambda: self.inner.exists(name))

    def staging_dir(self) -> str:
        return self.inner.staging_dir()

    def close(self) -> None:
        """Close the inner backend, if it can be closed."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
