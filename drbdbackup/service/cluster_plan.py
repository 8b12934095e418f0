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
from drbdbackup.linstor.selection import select
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


def up_to_date_nodes(inv: Inventory, rscs: list[str]) -> dict[str, list[str]]:
    """Per resource, the ONLINE nodes whose diskful replica (every volume) is UpToDate: the
    nodes a snapshot may be taken on (LINSTOR refuses a replica that is not UpToDate)."""
    online = {n.name for n in inv.nodes if n.online}
    out: dict[str, list[str]] = {}
    for rsc in rscs:
        ok: dict[str, bool] = {}
        for rep in inv.replicas.get(rsc, []):
            if not rep.diskless and rep.node in online:
                ok[rep.node] = ok.get(rep.node, True) and rep.disk_state == UP_TO_DATE
        out[rsc] = sorted(n for n, good in ok.items() if good)
    return out


def policy_batches(inv: Inventory, policies: list[Policy],
                   policy: Policy) -> list[tuple[ClusterKey, list[str], str]]:
    """`policy`'s keys with their resources and why it chose them: one group key for a
    consistency-group policy, else one key per resource (selection against all policies)."""
    rules = [p.selection_rule() for p in policies if p.selects_linstor]
    chosen = select(inv.resources, rules, set(inv.groups)).chosen.get(policy.name, [])
    why = {c.resource: c.reason for c in chosen}
    names = sorted(why)
    keys = ([(ClusterKey.group(policy.name), names)] if policy.consistency_group and names
            else [(ClusterKey.resource(r), [r]) for r in names])
    return [(key, rscs, "; ".join(dict.fromkeys(why[r] for r in rscs))) for key, rscs in keys]


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
