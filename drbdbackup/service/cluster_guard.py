"""What keeps the cluster agent from doing harm while something else goes on: snapshots another
run may still read or that would leak on an OFFLINE node, a repository locked by a manual
prune, and retries of a key that just failed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from drbdbackup.cluster import names as N
from drbdbackup.cluster.claims import Disposition, Holder
from drbdbackup.cluster.coordinator import Claim, Coordinator
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.slots import SnapshotSlots
from drbdbackup.linstor.inventory import Inventory
from drbdbackup.service.cluster_plan import Inventories

log = logging.getLogger("drbdbackup.service")


def offline_holders(inv: Inventory, rscs: list[str], online: dict[str, bool]) -> list[str]:
    """Nodes not ONLINE (`online`: node -> ONLINE now) holding a diskful replica of `rscs`: a
    snapshot deleted now would leave its copy there (LINSTOR forgets it, the satellite never
    hears of it)."""
    return sorted({rep.node for rsc in rscs for rep in inv.replicas.get(rsc, [])
                   if not rep.diskless and not online.get(rep.node, False)})


def volume_ids(inv: Inventory, rscs: list[str], cluster: str) -> list[str]:
    """The volume ids of `rscs` (volume numbers from their replicas)."""
    return sorted({f"{cluster}.{rsc}.{rep.volume_number}"
                   for rsc in rscs for rep in inv.replicas.get(rsc, [])})


class Retries:
    """Per (key, cycle): after a failure, wait before this agent claims it again (doubling from
    `base_s` up to `cap_s`), so failing keys do not bounce between nodes as fast as they can."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self._lock = threading.Lock()
        self._next: dict[tuple[ClusterKey, int], tuple[float, int]] = {}

    def failed(self, key: ClusterKey, cycle: int) -> float:
        """Note a failure; returns the wait before the next try."""
        with self._lock:
            n = self._next.get((key, cycle), (0.0, 0))[1] + 1
            wait = min(self.cap_s, self.base_s * 2 ** (n - 1))
            self._next[(key, cycle)] = (time.monotonic() + wait, n)
            return wait

    def ready(self, key: ClusterKey, cycle: int) -> bool:
        with self._lock:
            at = self._next.get((key, cycle))
            return at is None or time.monotonic() >= at[0]

    def forget_before(self, cycle: int) -> None:
        with self._lock:
            for k in [k for k in self._next if k[1] < cycle]:
                del self._next[k]


class SnapshotGuard:
    """`may_delete` of the agent's snapshot rotation: the claim rules (docs/format.md 16.3),
    and two more reasons to wait: a replica node OFFLINE (deleting then leaks its copy there;
    retried once it is back), and a run of another live agent that may still read it."""

    def __init__(self, coord: Callable[[Callable[[Coordinator], Any]], Any],
                 inventories: Inventories, records_of: Callable[[list[str], str], bool],
                 online: Callable[[], dict[str, bool]], cluster: str) -> None:
        self.coord, self.inventories, self.records_of = coord, inventories, records_of
        self.online, self.cluster = online, cluster
        self._kept: set[str] = set()  # logged once each

    def may_delete(self, key: ClusterKey, rscs: list[str], snapshot: str) -> bool:
        """Asked by the rotation for each old snapshot; the node states are asked fresh (a
        node that went OFFLINE a moment ago must not lose its copy to a stale view)."""
        if self.coord(lambda c: c.snapshot_disposition(key, snapshot)) is not Disposition.DELETE:
            return False
        inv = self.inventories.get()
        try:
            away = offline_holders(inv, rscs, self.online())
        except Exception as exc:  # noqa: BLE001 - unknown node states: keep it for now
            away = [f"the controller answers ({exc})"]
        why = f"until {', '.join(away)} is ONLINE again" if away else (
            "while the run that committed it may still read it"
            if self._still_read(key, rscs, snapshot, inv) else "")
        if why:
            if snapshot not in self._kept:
                self._kept.add(snapshot)
                log.info("keeping snapshot %s %s", snapshot, why)
            return False
        self._kept.discard(snapshot)
        return True

    def _still_read(self, key: ClusterKey, rscs: list[str], snapshot: str,
                    inv: Inventory) -> bool:
        """A snapshot whose cycle another live agent committed: that run may still be reading
        it (it commits before its first record, then reads the other volumes) until every
        volume has its record. Rare (after an ownership change): only then is the repository
        opened."""
        tag = N.parse_snapshot(snapshot)
        commit = None if tag is None else self.coord(
            lambda c: c.store.read_commit(key, tag.cycle))
        if commit is None or commit.snapshot != snapshot or \
                self.coord(lambda c: commit.instance == c.instance
                           or c.life.is_dead(Holder(commit.node, commit.instance))):
            return False
        return not self.records_of(volume_ids(inv, rscs, self.cluster), snapshot)


def snapshot_slot(coord: Coordinator, cap: int) -> AbstractContextManager[object]:
    """One of the cluster-wide snapshot-creation slots ([cluster] max_snapshot_creations)."""
    return SnapshotSlots(coord.store.backend, cap, coord.life.me, coord.life.is_dead).hold()


def job_result(w: Any, claim: Claim, node: str, results: list[Any]) -> dict[str, Any]:
    """A cluster job's result in the job store: which key, cycle, attempt, node, snapshot."""
    return {"cluster": {"key": str(w.key), "cycle": w.cycle, "attempt": claim.attempt,
                        "node": node, "snapshot": claim.snapshot},
            "backups": [r.to_dict() for r in results]}
