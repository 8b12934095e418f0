"""Back up LINSTOR resources: one snapshot (a consistency group when several resources), each
volume read where its snapshot lives, clipped to the DRBD usable size; then snapshot rotation."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from drbdbackup.engine.tuning import tune_allocator
from drbdbackup.errors import DrbdBackupError, IntegrityError, UsageError, describe
from drbdbackup.linstor.client import Controller, ControllerSettings, DefinitionInfo, SnapshotInfo
from drbdbackup.linstor.inventory import take_inventory
from drbdbackup.linstor.lineage import parent_facts, source_identity
from drbdbackup.linstor.paths import snapshot_data_path
from drbdbackup.linstor.placement import VolumeSource, resolve_sources
from drbdbackup.linstor.selection import all_resources, group_members
from drbdbackup.linstor.snapshots import (
    delete_quietly,
    ensure_readable,
    rotate_snapshots,
    snapshot_name,
    snapshot_prefix,
)
from drbdbackup.ops.backup import (
    BackupOptions,
    BackupResult,
    Parent,
    RecordContext,
    VolumeJob,
    finish_generation,
    store_generation,
)
from drbdbackup.ops.session import LockMode, RepositoryRef, Session, operation
from drbdbackup.repo.records import GenerationRecord
from drbdbackup.repo.repository import Repository
from drbdbackup.tracking.native import SnapshotPair, native_offer


@dataclass(frozen=True)
class LinstorBackup:
    """Resources to snapshot together (one consistency group when several)."""

    resources: tuple[str, ...]
    controller: ControllerSettings
    volume_nr: int | None = None
    node: str | None = None
    cluster: str = "linstor"
    policy: str | None = None
    selected_by: str | None = None  # why the policy chose these resources
    label_properties: tuple[str, ...] = ()
    # cluster agents: the snapshot name their claim gives, the fence run before each record,
    # and which of our snapshots rotation may delete (another agent's may be in use)
    snapshot: str | None = None
    fence: Callable[[str], None] | None = None
    may_delete: Callable[[str], bool] | None = None
    snapshot_slot: Callable[[], AbstractContextManager[object]] | None = None  # a cluster-wide
    # cap on concurrent snapshot creations, held from create until SUCCESSFUL


def native_streak(repo: Repository, parent: GenerationRecord | None, limit: int) -> int:
    """How many generations in a row (ending at `parent`) used a native map, up to `limit`."""
    n, rec = 0, parent
    while rec is not None and rec.tracker in ("reflink", "thin-delta") and n < limit:
        n += 1
        if not rec.parent:
            break
        try:
            rec = repo.read_record(rec.volume_id, rec.parent)
        except (IntegrityError, UsageError):
            break
    return n


def _context(req: LinstorBackup, rd: DefinitionInfo | None, members: list[str]) -> RecordContext:
    linstor = None
    if rd is not None:
        linstor = {"resource_group": rd.group or None, "rd_props": rd.props,
                   "volume_definitions": [{"volume_number": n, "size_kib": k} for n, k in rd.volumes]}
    labels = {k: rd.props[k] for k in req.label_properties if rd is not None and k in rd.props}
    return RecordContext(req.policy, req.selected_by, labels, linstor, members or None)


def _job(repo: Repository, ctl: Controller, src: VolumeSource, snap: str, info: SnapshotInfo,
         opts: BackupOptions, group: list[str], context: RecordContext,
         parent: Parent | None = None) -> VolumeJob:
    rep = src.replica
    path = snapshot_data_path(rep.provider_kind, src.backing_object, src.resource,
                              rep.volume_number, snap)
    ensure_readable(rep.provider_kind, path)
    parent = parent or Parent.read(repo, src.volume_id)
    facts = parent_facts(ctl, src, parent.record.source if parent.record else None)
    pair = SnapshotPair(rep.provider_kind, src.backing_object, src.resource, rep.volume_number,
                        rep.usable_bytes, facts.parent_snapshot, facts.parent_path, snap, path)
    source_info: dict[str, Any] = {
        "kind": "linstor",
        "controller": ",".join(ctl.uris),
        "resource": src.resource,
        "volume_number": rep.volume_number,
        "resource_uuid": src.resource_uuid,
        "volume_uuid": rep.volume_uuid,
        "snapshot": snap,
        "snapshot_uuid": info.uuid,
        **source_identity(src),
        "usable_size_bytes": rep.usable_bytes,
        "consistency_group": sorted(group) if len(group) > 1 else None,
    }
    return VolumeJob(
        path=path, volume_id=src.volume_id, source_info=source_info, size_limit=rep.usable_bytes,
        offer=native_offer(opts.tracker, pair, repo.chunk_size),
        facts=facts,
        periodic_streak=native_streak(repo, parent.record, opts.checksum_every),
        parent=parent,
        context=context,
    )


def _still_needed(repo: Repository, cluster: str, rscs: list[str], keep: str) -> set[str]:
    """Snapshots that are the base of some volume's latest generation (plus `keep`)."""
    needed = {keep}
    prefixes = tuple(f"{cluster}.{rsc}." for rsc in rscs)
    for vol in repo.volumes():
        if vol.startswith(prefixes):
            rec = repo.latest_record(vol)
            if rec is not None and rec.source.get("snapshot"):
                needed.add(rec.source["snapshot"])
    return needed


def _back_up(s: Session, ref: RepositoryRef, ctl: Controller, req: LinstorBackup,
             opts: BackupOptions) -> list[BackupResult]:
    repo = s.repo
    group = list(dict.fromkeys(req.resources))
    sources = resolve_sources(ctl, group, req.volume_nr, req.node, req.cluster)
    rds = {rd.name: rd for rd in ctl.resource_definitions(group, volumes=True)}
    members = [src.volume_id for src in sources] if len(group) > 1 else []
    snap = req.snapshot or snapshot_name(repo.id)
    # One resource: snapshot only where we read. A group: every diskful node (the controller
    # skips diskless ones), since the chosen nodes differ per resource.
    nodes = sorted({src.replica.node for src in sources}) if len(group) == 1 else []
    with req.snapshot_slot() if req.snapshot_slot else nullcontext():
        ctl.create_snapshot(group, snap, nodes)
        try:
            infos = ctl.wait_successful(group, snap)
        except BaseException:
            delete_quietly(ctl, group, snap)
            raise
    results: list[BackupResult] = []
    try:
        for src in sources:
            context = _context(req, rds.get(src.resource), members)
            job = _job(repo, ctl, src, snap, infos[src.resource], opts, group, context)
            job.fence = req.fence
            results.append(finish_generation(s, ref, store_generation(s, job, opts), opts))
    except BaseException:
        delete_quietly(ctl, group, snap)
        raise
    rotate_snapshots(ctl, group, snapshot_prefix(repo.id), _still_needed(repo, req.cluster, group, snap),
                     may_delete=req.may_delete)
    return results


def back_up_resources(ref: RepositoryRef, req: LinstorBackup, opts: BackupOptions) -> list[BackupResult]:
    """The whole `backup --resource` operation: snapshot, back up every volume, rotate."""
    if not req.resources:
        raise UsageError("backup needs at least one --resource")
    tune_allocator()
    with operation(ref, "backup", lock=LockMode.SHARED,
                   audit_failure={"volume_id": None, "resources": list(req.resources)}) as s:
        s.repo.load_index()
        with req.controller.connect() as ctl:
            return _back_up(s, ref, ctl, req, opts)


@dataclass(frozen=True)
class GroupBackup:
    """`backup --resource-group RG` (or `--all` with group None): every member not excluded."""

    group: str | None
    controller: ControllerSettings
    consistency_group: bool = False
    cluster: str = "linstor"


@dataclass
class GroupBackupResult:
    results: list[BackupResult]
    skipped: list[dict[str, str]]  # [{resource, reason}]
    failed: list[dict[str, str]]  # [{resource, error}]


def back_up_group(ref: RepositoryRef, req: GroupBackup, opts: BackupOptions) -> GroupBackupResult:
    """Back up a resource group's members (one snapshot each, or one for all with
    `consistency_group`); a failing member does not stop the others."""
    with req.controller.connect() as ctl:
        inv = take_inventory(ctl, with_replicas=False)
    if req.group is None:
        members, skipped = all_resources(inv.resources)
    else:
        members, skipped = group_members(inv.resources, req.group, set(inv.groups))
    batches = [members] if req.consistency_group and members else [[m] for m in members]
    out = GroupBackupResult([], [{"resource": u.resource, "reason": u.reason} for u in skipped], [])
    for batch in batches:
        try:
            out.results += back_up_resources(ref, LinstorBackup(tuple(batch), req.controller,
                                                                cluster=req.cluster), opts)
        except DrbdBackupError as exc:
            if len(batches) == 1:
                raise
            out.failed.append({"resource": ", ".join(batch), "error": describe(exc)[1]})
    return out
