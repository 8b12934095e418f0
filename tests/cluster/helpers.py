"""Test support for the cluster package: a manual clock, backends that report modification
times, and a small in-memory backend for fast simulations."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from drbdbackup.cluster.agent import Clocks, ClusterSettings
from drbdbackup.cluster.coordinator import Coordinator
from drbdbackup.errors import ObjectExists, ObjectNotFound
from drbdbackup.repo.local import LocalBackend

REPO_ID = "0123abcd" + "0" * 56
FAST = ClusterSettings(heartbeat_s=1.0, liveness_s=5.0, rank_step_s=2.0, keep_cycles=3)


@dataclass
class ManualClock:
    """A monotonic clock tests advance by hand."""

    t: float = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class MtimeLocalBackend(LocalBackend):
    """LocalBackend plus the `mtime` the cluster store clock asks for (the proposed addition)."""

    def mtime(self, name: str) -> float:
        try:
            return os.stat(self._path(name)).st_mtime
        except FileNotFoundError:
            raise ObjectNotFound(name) from None


class NoExclusiveBackend(LocalBackend):
    """A backend whose 'exclusive' put silently overwrites (what cluster mode must refuse)."""

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        super().put(name, data, exclusive=False)


@dataclass
class SimBackend:
    """Dict-backed Backend with a store clock (`now`) used as every object's mtime."""

    location: str = "sim:"
    now: float = 1_800_000_000.0
    objects: dict[str, bytes] = field(default_factory=dict)
    mtimes: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> bytes:
        with self.lock:
            if name not in self.objects:
                raise ObjectNotFound(name)
            return self.objects[name]

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.get(name)[offset:offset + length]

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        with self.lock:
            if exclusive and name in self.objects:
                raise ObjectExists(name)
            self.objects[name] = bytes(data)
            self.mtimes[name] = self.now

    def put_file(self, name: str, path: str) -> None:  # pragma: no cover - unused
        raise NotImplementedError

    def delete(self, name: str) -> None:
        with self.lock:
            self.objects.pop(name, None)

    def list(self, prefix: str) -> list[str]:
        with self.lock:
            return sorted(n for n in self.objects if n.startswith(prefix))

    def size(self, name: str) -> int:
        return len(self.get(name))

    def exists(self, name: str) -> bool:
        with self.lock:
            return name in self.objects

    def staging_dir(self) -> str:  # pragma: no cover - unused
        raise NotImplementedError

    def mtime(self, name: str) -> float:
        with self.lock:
            if name not in self.mtimes or name not in self.objects:
                raise ObjectNotFound(name)
            return self.mtimes[name]


def coordinator(backend: object, node: str, clock: ManualClock | None = None,
                settings: ClusterSettings = FAST, wall_offset: float = 0.0) -> Coordinator:
    clocks = Clocks(monotonic=clock or ManualClock(), wall_offset_s=wall_offset)
    return Coordinator(backend, node, REPO_ID, settings, clocks)  # type: ignore[arg-type]
