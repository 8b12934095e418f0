"""A backend wrapper whose faults a test scripts, in the manner of kopia's FaultyStorage.

    faulty = FaultyBackend(MemoryBackend())
    faulty.add_fault("put", "packs/", DiskFull("disk full"), repeat=1)
    faulty.flip_on_load("packs/")      # XOR 0xFF one byte of every loaded pack
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drbdbackup.repo.backend import Backend


@dataclass
class Fault:
    """Raise `error` for operation `op` on names matching `pattern`, `repeat` times (-1 = always)."""

    op: str
    pattern: str
    error: Exception
    repeat: int = 1
    after: int = 0


class FaultyBackend:
    """Delegates to an inner backend, injecting scripted errors and corruption."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.location = inner.location
        self.faults: list[Fault] = []
        self.flip_patterns: list[str] = []
        self.calls: list[tuple[str, str]] = []

    def add_fault(
        self, op: str, pattern: str, error: Exception, repeat: int = 1, after: int = 0
    ) -> Fault:
        """Script a fault; `after` lets that many matching calls succeed first."""
        fault = Fault(op, pattern, error, repeat, after)
        self.faults.append(fault)
        return fault

    def flip_on_load(self, pattern: str) -> None:
        """Corrupt one byte (the middle one, XOR 0xFF) of every object loaded whose name matches."""
        self.flip_patterns.append(pattern)

    def _check(self, op: str, name: str) -> None:
        self.calls.append((op, name))
        for fault in self.faults:
            if fault.op == op and fault.repeat != 0 and re.search(fault.pattern, name):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if fault.repeat > 0:
                    fault.repeat -= 1
                raise fault.error

    def _maybe_flip(self, name: str, data: bytes) -> bytes:
        if data and any(re.search(p, name) for p in self.flip_patterns):
            buf = bytearray(data)
            buf[len(buf) // 2] ^= 0xFF
            return bytes(buf)
        return data

    def get(self, name: str) -> bytes:
        self._check("get", name)
        return self._maybe_flip(name, self.inner.get(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        self._check("get", name)
        return self._maybe_flip(name, self.inner.get_range(name, offset, length))

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        self._check("put", name)
        self.inner.put(name, data, exclusive=exclusive)

    def put_file(self, name: str, path: str) -> None:
        self._check("put", name)
        self.inner.put_file(name, path)

    def delete(self, name: str) -> None:
        self._check("delete", name)
        self.inner.delete(name)

    def list(self, prefix: str) -> list[str]:
        self._check("list", prefix)
        return self.inner.list(prefix)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def staging_dir(self) -> str:
        return self.inner.staging_dir()
