"""In-memory backend for tests: objects live in a dict, staged files in a private temp directory."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading

from drbdbackup.errors import DiskFull, ObjectExists, ObjectNotFound


class MemoryBackend:
    """A Backend whose objects live in `objects`; `capacity` (bytes, None = unlimited) lets a
    test run the store out of room: a put that would exceed it raises DiskFull and stores nothing."""

    def __init__(self, capacity: int | None = None) -> None:
        self.location = "memory:"
        self.objects: dict[str, bytes] = {}
        self.capacity = capacity
        self._lock = threading.Lock()
        self._staging = tempfile.mkdtemp(prefix="drbdbackup-mem-")

    def used(self) -> int:
        """Bytes held by all objects."""
        with self._lock:
            return sum(len(v) for v in self.objects.values())

    def get(self, name: str) -> bytes:
        try:
            return self.objects[name]
        except KeyError:
            raise ObjectNotFound(f"object not found: {name}") from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.get(name)[offset : offset + length]

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        with self._lock:
            if exclusive and name in self.objects:
                raise ObjectExists(f"object exists: {name}")
            if self.capacity is not None:
                used = sum(len(v) for k, v in self.objects.items() if k != name)
                if used + len(data) > self.capacity:
                    raise DiskFull(f"no space left in the repository while writing {name}")
            self.objects[name] = bytes(data)

    def put_file(self, name: str, path: str) -> None:
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        self.put(name, data)

    def delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(name, None)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(n for n in self.objects if n.startswith(prefix))

    def size(self, name: str) -> int:
        return len(self.get(name))

    def exists(self, name: str) -> bool:
        return name in self.objects

    def staging_dir(self) -> str:
        return self._staging

    def close(self) -> None:
        """Remove the private staging directory."""
        shutil.rmtree(self._staging, ignore_errors=True)
