"""Planning helpers of the cluster agent: the policy's schedule, the eligible nodes of a key,
the controller's inventory shared between the planner and the claim loops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from drbdbackup.cluster.cycle import CronSlots, PeriodicSlots, Schedule
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.ranking import Candidate
from drbdbackup.linstor.inventory import Inventory
from drbdbackup.linstor.placement import UP_TO_DATE
from drbdbackup.service.config import Policy
from drbdbackup.service.cron import parse_cron


def schedule_of(policy: Policy, tz: str) -> Schedule | None:
    """The policy's slots: `every_s` (seconds) or its cron `schedule` (in the service's zone)."""
    if policy.every_s:
        return PeriodicSlots(policy.every_s)
    if not policy.schedule:
        return None
    cron, zone = parse_cron(policy.schedule), ZoneInfo(tz)
    return CronSlots(lambda t: cron.next_after(t.astimezone(zone)))


def candidates(inv: Inventory, rscs: list[str], alive: Callable[[str], bool]) -> list[Candidate]:
    """Nodes holding a diskful replica of every volume of `rscs`, with their eligibility."""
    online = {n.name: n.online for n in inv.nodes}
    per_node: dict[str, list[bool]] = {}
    for rsc in rscs:
        for rep in inv.replicas.get(rsc, []):
            if not rep.diskless:
                per_node.setdefault(rep.node, []).append(rep.disk_state == UP_TO_DATE)
    return [Candidate(node, all(states), online.get(node, False), alive(node))
            for node, states in sorted(per_node.items())]


@dataclass
class Work:
    """One key of one cycle, as the planner hands it to a backup."""

    policy: Policy
    key: ClusterKey
    resources: list[str]
    cycle: int
    reason: str
    previous: int | None = None  # the schedule's slot before `cycle`


class Inventories:
    """The controller's view shared by the planner and the claim loops: taken again when older
    than the asked age (one at a time: concurrent askers share the answer)."""

    def __init__(self, take: Callable[[], Inventory], ttl_s: float) -> None:
        self._take, self.ttl_s = take, ttl_s
        self._lock = threading.Lock()
        self._inv: Inventory | None = None
        self._at = 0.0
        self.fetches = 0  # inventories taken so far

    def get(self, max_age_s: float | None = None) -> Inventory:
        age = self.ttl_s if max_age_s is None else max_age_s
        asked = time.monotonic()
        with self._lock:
            if self._inv is None or self._at < asked - age:
                self._inv, self._at = self._take(), time.monotonic()
                self.fetches += 1
            return self._inv
