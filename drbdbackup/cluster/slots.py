"""A cluster-wide cap on concurrent LINSTOR snapshot creations (its scheduler stalls when ~20
start at once): `cap` slot objects `cluster/slots/<i>`, each taken create-exclusive by the agent
that snapshots and deleted when the snapshot is SUCCESSFUL (docs/format.md section 16).

This is a throttle, not a safety property: a slot whose holder is dead to the observer may be
freed by anyone, so a paused holder that resumes can briefly make it cap + 1.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from drbdbackup.cluster.claims import Holder
from drbdbackup.errors import EnvironmentFailure, ObjectExists, ObjectNotFound
from drbdbackup.repo.backend import Backend

log = logging.getLogger(__name__)
PREFIX = "cluster/slots/"


def slot_name(i: int) -> str:
    return f"{PREFIX}{i}"


class SnapshotSlots:
    """`with slots.hold(): create the snapshot and wait for it` — at most `cap` at once."""

    def __init__(self, backend: Backend, cap: int, me: Holder, is_dead: Callable[[Holder], bool],
                 *, poll_s: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        if cap < 1:
            raise ValueError("the snapshot cap must be at least 1")
        self.backend, self.cap, self.me, self.is_dead = backend, cap, me, is_dead
        self.poll_s, self.clock = poll_s, clock

    def _try_take(self) -> int | None:
        body = json.dumps({"node": self.me.node, "instance": self.me.instance}).encode()
        for i in range(self.cap):
            try:
                self.backend.put(slot_name(i), body, exclusive=True)
                return i
            except ObjectExists:
                continue
        return None

    def _free_dead(self) -> None:
        """Free slots whose holder is dead (a crashed agent never gives its slot back)."""
        for i in range(self.cap):
            try:
                doc = json.loads(self.backend.get(slot_name(i)))
                holder = Holder(str(doc["node"]), str(doc["instance"]))
            except ObjectNotFound:
                continue
            except (ValueError, KeyError, TypeError):
                log.warning("snapshot slot %d is unreadable: freeing it", i)
                self.backend.delete(slot_name(i))
                continue
            if holder != self.me and self.is_dead(holder):
                log.info("freeing snapshot slot %d of dead agent %s", i, holder.node)
                self.backend.delete(slot_name(i))

    @contextmanager
    def hold(self, timeout_s: float = 600) -> Iterator[int]:
        """Take a slot (waiting up to `timeout_s`), yield its number, give it back."""
        deadline = self.clock() + timeout_s
        while (slot := self._try_take()) is None:
            if self.clock() > deadline:
                raise EnvironmentFailure(
                    f"no snapshot slot free for {timeout_s:.0f}s (cluster-wide cap {self.cap})")
            self._free_dead()
            time.sleep(self.poll_s)
        try:
            yield slot
        finally:
            self.backend.delete(slot_name(slot))
