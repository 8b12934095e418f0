"""The cluster-wide snapshot cap: never more than `cap` holders at once, slots of dead holders
are freed, waiting past the timeout is one clear error."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drbdbackup.cluster.claims import Holder
from drbdbackup.cluster.slots import SnapshotSlots, slot_name
from drbdbackup.errors import EnvironmentFailure
from drbdbackup.repo.local import LocalBackend


def test_at_most_cap_holders_at_once(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    active, peak, lock = [0], [0], threading.Lock()

    def agent(i: int) -> None:
        slots = SnapshotSlots(backend, 3, Holder(f"n{i}", f"i{i}"), lambda _h: False, poll_s=0.01)
        for _ in range(4):
            with slots.hold(timeout_s=30):
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.01)
                with lock:
                    active[0] -= 1

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert peak[0] == 3 and active[0] == 0
    assert backend.list("cluster/slots/") == []


def test_a_dead_holders_slot_is_freed_and_a_timeout_is_one_error(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path))
    dead = Holder("gone", "x1")
    SnapshotSlots(backend, 1, dead, lambda _h: False)._try_take()  # a crashed agent's slot
    blocked = SnapshotSlots(backend, 1, Holder("a", "i"), lambda _h: False, poll_s=0.01)
    with pytest.raises(EnvironmentFailure, match="cluster-wide cap 1"), blocked.hold(timeout_s=0.1):
        pass
    sees_dead = SnapshotSlots(backend, 1, Holder("a", "i"), lambda h: h == dead, poll_s=0.01)
    with sees_dead.hold(timeout_s=5) as slot:
        assert slot == 0 and b'"node": "a"' in backend.get(slot_name(0))
