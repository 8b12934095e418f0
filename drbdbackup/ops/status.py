"""The cluster view from any node: per volume its last good generation, age, tracker and node;
with a controller, per policy what it selects and why, and what nothing protects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.linstor.inventory import take_inventory
from drbdbackup.linstor.selection import SelectionRule, select
from drbdbackup.ops.session import RepositoryRef, operation
from drbdbackup.repo.listing import list_generations
from drbdbackup.repo.records import now


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


@dataclass
class StatusReport:
    """`drbdbackup status --json`."""

    volumes: list[VolumeStatus] = field(default_factory=list)
    plan: dict[str, list[dict[str, str]]] | None = None  # policy -> [{resource, reason}]
    unprotected: list[dict[str, str]] | None = None
    conflicts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"volumes": [asdict(v) for v in self.volumes],
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


def status(ref: RepositoryRef, controller: ControllerSettings | None = None,
           rules: list[SelectionRule] | None = None) -> StatusReport:
    """The repository's view; with a controller (and policies), the plan and what is unprotected."""
    with operation(ref, "status") as s:
        rows = list_generations(s.repo)
    rep = StatusReport()
    if controller is None:
        rep.volumes = volume_statuses(rows, None)
        return rep
    with controller.connect() as ctl:
        inv = take_inventory(ctl, with_replicas=False)
    rep.volumes = volume_statuses(rows, {r.name for r in inv.resources})
    sel = select(inv.resources, rules or [], set(inv.groups))
    rep.plan = {p: [{"resource": c.resource, "reason": c.reason} for c in items]
                for p, items in sel.chosen.items()}
    rep.unprotected = [{"resource": u.resource, "reason": u.reason} for u in sel.unprotected]
    rep.conflicts, rep.warnings = sel.conflicts, sel.warnings
    return rep
