"""Repository upkeep: init, list, check, prune (the report: ops/reporting.py)."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

from drbdbackup.errors import UsageError
from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.ops.backup_member import mark_group_gaps
from drbdbackup.ops.session import LockMode, RepositoryRef, audit_entry, operation
from drbdbackup.repo.check import CheckReport, run_check
from drbdbackup.repo.listing import list_generations
from drbdbackup.repo.prune import PruneReport, PruneScope, prune_scopes, require_rules
from drbdbackup.repo.repository import DEFAULT_CHUNK, Repository
from drbdbackup.repo.retention import KeepRules, parse_duration


@dataclass(frozen=True)
class InitRequest:
    chunk_size: int = DEFAULT_CHUNK
    encryption: str = "none"


def init(ref: RepositoryRef, req: InitRequest) -> Repository:
    """Create a repository; a failed init leaves no directory it created behind."""
    made = None
    if ref.backend is None and ref.location and "://" not in ref.location:
        path = os.path.abspath(ref.location)
        made = None if os.path.exists(path) else path
    try:
        backend = ref.open_backend(create=True)
        repo = Repository.init(backend, chunk_size=req.chunk_size, encryption=req.encryption,
                               passphrase=ref.password)
        audit_entry(backend, "init", {"repository_id": repo.id, "chunk_size": req.chunk_size,
                                      "encryption": req.encryption})
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    return repo


def list_volumes(ref: RepositoryRef, volume_id: str | None = None,
                 controller: ControllerSettings | None = None) -> list[dict[str, Any]]:
    """Generations, oldest first, each with a status (ok / damaged / unreadable); with a
    controller, LINSTOR generations also say whether their resource still exists (`source`);
    a generation of an incomplete consistency group names the members missing
    (`group_incomplete`)."""
    with operation(ref, "list") as s:
        rows = list_generations(s.repo, volume_id)
        mark_group_gaps(s.repo, rows)
    if controller is not None:
        with controller.connect() as ctl:
            present = {rd.name for rd in ctl.resource_definitions()}
        for r in rows:
            if r.get("resource"):
                r["source"] = "present" if r["resource"] in present else "gone"
    return rows


def check(ref: RepositoryRef, *, read_data: bool = False) -> CheckReport:
    """Structural (and with `read_data`, content) consistency, under a shared lock."""
    with operation(ref, "check", lock=LockMode.SHARED) as s:
        rep = run_check(s.repo, read_data=read_data)
        s.succeeded("check", {"ok": rep.ok, "errors": len(rep.errors), "read_data": read_data})
        return rep


@dataclass(frozen=True)
class PruneRequest:
    """Keep rules (`within` e.g. "2d") and what they apply to: the generations of `policy`
    and/or `volume_id` (None: all generations, including those without a policy)."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    dry_run: bool = False
    keep_within: str | None = None
    keep_hourly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    policy: str | None = None
    volume_id: str | None = None
    lock_wait: str | None = None  # e.g. "10m": wait so long for running backups to finish

    def scope(self) -> PruneScope:
        within = parse_duration(self.keep_within) if self.keep_within else None
        rules = KeepRules(last=self.keep_last, within=within, hourly=self.keep_hourly,
                          daily=self.keep_daily, weekly=self.keep_weekly,
                          monthly=self.keep_monthly, yearly=self.keep_yearly)
        return PruneScope(rules, self.policy, self.volume_id)


def lock_wait_seconds(text: str) -> float:
    """`--lock-wait`: '90' or '90s', '10m', '2h' -> seconds (UsageError otherwise)."""
    m = re.fullmatch(r"\s*(\d{1,7})\s*([smh]?)\s*", text)
    if not m:
        raise UsageError(f"invalid --lock-wait {text[:40]!r}: use seconds, minutes or hours, "
                         "e.g. 90s, 10m, 1h")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def prune(ref: RepositoryRef, req: PruneRequest | list[PruneRequest]) -> PruneReport:
    """Apply keep rules (several requests: each to its own generations, e.g. one per policy),
    then remove unreferenced data once, under the exclusive lock. Before its first deletion the
    prune appends its intent entry, after its last its final entry (format.md section 13: a
    prune that stops in between never looks like deleted records); each lists every removed
    generation and why."""
    reqs = req if isinstance(req, list) else [req]
    scopes = [r.scope() for r in reqs]
    require_rules(scopes)  # bad rules fail before the repository is opened
    dry_run = any(r.dry_run for r in reqs)
    waits = [lock_wait_seconds(r.lock_wait) for r in reqs if r.lock_wait]
    with operation(ref, "prune", lock=LockMode.EXCLUSIVE, lock_wait_s=max(waits, default=0.0)) as s:
        def intent(plan: PruneReport) -> None:
            s.succeeded("prune", {"phase": "intent", **plan.to_dict()})

        rep = prune_scopes(s.repo, scopes, dry_run=dry_run, intent=intent)
        if not dry_run:
            s.succeeded("prune", {"phase": "done", **rep.to_dict()})
        return rep
