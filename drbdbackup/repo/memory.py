"""In-memory backend for tests."""

from __future__ import annotations

import os
import tempfile
import threading

from drbdbackup.errors import ObjectExists, ObjectNotFound


class MemoryBackend:
    """Objects live in a dict; staged files go to a private temp directory."""

    def __init__(self) -> None:
        self.location = "memory:"
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._staging = tempfile.mkdtemp(prefix="drbdbackup-mem-")

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
        return sorted(n for n in self.objects if n.startswith(prefix))

    def size(self, name: str) -> int:
        return len(self.get(name))

    def exists(self, name: str) -> bool:
        return name in self.objects

    def staging_dir(self) -> str:
        return self._staging
