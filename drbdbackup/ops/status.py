"""The cluster view from any node: per volume its last good generation, age, tracker and node;
with a controller, per policy what it selects and why, and what nothing protects."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from drbdbackup.cluster import names as N
from drbdbackup.cluster.names import ClusterKey, agent_name
from drbdbackup.cluster.ranking import rank_nodes
from drbdbackup.cluster.store import ClusterStore
from drbdbackup.errors import IntegrityError
from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.linstor.inventory import Inventory, take_inventory
from drbdbackup.linstor.placement import UP_TO_DATE
from drbdbackup.linstor.selection import SelectionRule, select
from drbdbackup.ops.session import RepositoryRef, operation
from drbdbackup.repo.listing import list_generations
from drbdbackup.repo.records import now
from drbdbackup.repo.repository import Repository


@dataclass(frozen=True)
class VolumeStatus:
    """One volume as `status` shows it."""

    volume_id: str
    labels: dict[str, str]
    resource: str | None
    node: str | None
    generations: int
    last_good: str | None
    last_good_created: str | None
    age_s: float | None
    tracker: str | None
    last_status: str
    source: str  # present / gone / unknown (no controller asked)


@dataclass(frozen=True)
class AgentStatus:
    """An agent as its heartbeat object shows it (times are display only, never compared)."""

    node: str
    instance: str
    seq: int
    last_heartbeat: str
    heartbeat_age_s: float | None  # by the repository's clock (its modification time)


@dataclass
class StatusReport:
    """`drbdbackup status --json`."""

    volumes: list[VolumeStatus] = field(default_factory=list)
    agents: list[AgentStatus] = field(default_factory=list)
    owners: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {cycle, node, generation}
    alarms: list[str] = field(default_factory=list)
    incomplete_groups: list[dict[str, Any]] = field(default_factory=list)
    plan: dict[str, list[dict[str, str | None]]] | None = None  # policy -> [{resource, reason, agent}]
    unprotected: list[dict[str, str]] | None = None
    conflicts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"volumes": [asdict(v) for v in self.volumes],
                             "agents": [asdict(a) for a in self.agents], "owners": self.owners,
                             "alarms": self.alarms, "incomplete_groups": self.incomplete_groups,
                             "conflicts": self.conflicts, "warnings": self.warnings}
        if self.plan is not None:
            d["plan"] = self.plan
        if self.unprotected is not None:
            d["unprotected"] = self.unprotected
        return d


def _age(created: str | None) -> float | None:
    if not created:
        return None
    return round((now() - datetime.fromisoformat(created)).total_seconds(), 1)


def volume_statuses(rows: list[dict[str, Any]], present: set[str] | None) -> list[VolumeStatus]:
    """Fold `list` rows (oldest first) into one status per volume (pure)."""
    by_volume: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_volume.setdefault(r["volume_id"], []).append(r)
    out = []
    for vol, gens in sorted(by_volume.items()):
        good = [g for g in gens if g["status"] == "ok"]
        last, lg = gens[-1], (good[-1] if good else None)
        rsc = next((g.get("resource") for g in reversed(gens) if g.get("resource")), None)
        source = "unknown" if present is None or rsc is None else ("present" if rsc in present else "gone")
        out.append(VolumeStatus(
            volume_id=vol, labels=(lg or last).get("labels") or {}, resource=rsc, node=(lg or last).get("node"), generations=len(gens),
            last_good=lg["generation"] if lg else None,
            last_good_created=lg["created"] if lg else None,
            age_s=_age(lg["created"]) if lg else None, tracker=lg["tracker"] if lg else None,
            last_status=last["status"], source=source))
    return out


def incomplete_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consistency-group generations some member of which has no record of the same snapshot."""
    stored: dict[str, set[str]] = {}
    wanted: dict[str, set[str]] = {}
    for r in rows:
        snap = r.get("snapshot")
        if not snap:
            continue
        stored.setdefault(snap, set()).add(r["volume_id"])
        if r.get("group_members"):
            wanted.setdefault(snap, set()).update(r["group_members"])
    return [{"snapshot": snap, "missing": sorted(members - stored.get(snap, set())),
             "stored": sorted(stored.get(snap, set()))}
            for snap, members in sorted(wanted.items()) if members - stored.get(snap, set())]


def _cluster_view(backend: Any, rep: StatusReport) -> None:
    store = ClusterStore(backend)
    now_local = time.time()
    for hb in sorted(store.heartbeats(), key=lambda h: h.node):
        mtime = store.mtime(agent_name(hb.node))
        rep.agents.append(AgentStatus(hb.node, hb.instance, hb.seq, hb.time,
                                      None if mtime is None else round(now_local - mtime, 1)))
    for key, cycle in store.latest_commits():
        rec = store.read_commit(key, cycle)
        rep.owners[str(key)] = {"cycle": cycle, "node": rec.node if rec else None,
                                "generation": rec.generation if rec else None}
    rep.alarms = [a.message for a in store.alarms()]


def next_agent(inv: Inventory, rsc: str, previous: str | None, live: set[str] | None) -> str | None:
    """The node whose agent would take `rsc` on the next cycle (rank 0), or None: nodes with an
    UpToDate diskful replica, ONLINE, with a live agent (`live` None: agents not considered)."""
    online = {n.name for n in inv.nodes if n.online}
    ok = {r.node for r in inv.replicas.get(rsc, []) if not r.diskless and r.disk_state == UP_TO_DATE}
    eligible = sorted(n for n in ok & online if live is None or n in live)
    if not eligible:
        return None
    return rank_nodes(ClusterKey.resource(rsc), eligible, previous).order[0]


def status(ref: RepositoryRef, controller: ControllerSettings | None = None,
           rules: list[SelectionRule] | None = None, lease_s: float | None = None) -> StatusReport:
    """The repository's view (volumes, agents, owners, incomplete groups); with a controller
    (and policies), the plan — with the agent that would take each resource next when agents
    heartbeat (`lease_s`: how old a heartbeat may be) — and what is unprotected."""
    rep = StatusReport()
    with operation(ref, "status") as s:
        rows = list_generations(s.repo)
        _cluster_view(s.repo.backend, rep)
    rep.incomplete_groups = incomplete_groups(rows)
    if controller is None:
        rep.volumes = volume_statuses(rows, None)
        return rep
    with controller.connect() as ctl:
        inv = take_inventory(ctl)
    rep.volumes = volume_statuses(rows, {r.name for r in inv.resources})
    sel = select(inv.resources, rules or [], set(inv.groups))
    live = None
    if rep.agents:
        live = {a.node for a in rep.agents
                if a.heartbeat_age_s is not None and (lease_s is None or a.heartbeat_age_s <= lease_s)}
    previous = {k.removeprefix("rsc:"): o["node"] for k, o in rep.owners.items()}
    rep.plan = {p: [{"resource": c.resource, "reason": c.reason,
                     "agent": next_agent(inv, c.resource, previous.get(c.resource), live)}
                    for c in items]
                for p, items in sel.chosen.items()}
    rep.unprotected = [{"resource": u.resource, "reason": u.reason} for u in sel.unprotected]
    rep.conflicts, rep.warnings = sel.conflicts, sel.warnings
    return rep


def has_records_of(ref: RepositoryRef, vols: list[str], snapshot: str) -> bool:
    """Whether every volume of `vols` has a generation record read from `snapshot`: the run
    that made it is over (its commit precedes only the first of several records). Reads each
    volume's newest records until one older than the snapshot's cycle."""
    tag = N.parse_snapshot(snapshot)
    if tag is None:
        return True
    with operation(ref, "status") as s:
        return _records_of(s.repo, vols, snapshot, tag.cycle)


def _records_of(repo: Repository, vols: list[str], snapshot: str, cycle: int) -> bool:
    for vol in vols:
        for gen in reversed(repo.generation_ids(vol)):
            try:
                snap = str(repo.read_record(vol, gen).source.get("snapshot") or "")
            except IntegrityError:
                continue
            if snap == snapshot:
                break
            older = N.parse_snapshot(snap)
            if older is not None and older.cycle < cycle:
                return False
        else:
            return False
    return True
