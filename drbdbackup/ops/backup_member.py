"""Consistency groups whose members live on different nodes (docs/format.md 16.3).

The group's claimant takes the one snapshot (`snapshot_group`: `snapshot_create_multi`, each
resource on its UpToDate replicas); each member resource is then read by an agent on a node
that holds it (`back_up_member`), whose fence writes the member's `ready` marker and waits for
the group commit before the first record. A member generation of an incomplete group (a member
without a record of the same snapshot) is never a lineage base: the newest complete one is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from drbdbackup.cluster.errors import Fenced
from drbdbackup.engine.tuning import tune_allocator
from drbdbackup.errors import IntegrityError, UsageError
from drbdbackup.linstor.client import Controller, ControllerError, ControllerSettings, SnapshotInfo
from drbdbackup.linstor.placement import resolve_sources, volume_id_for
from drbdbackup.linstor.snapshots import delete_quietly, rotate_snapshots, snapshot_prefix
from drbdbackup.ops.backup import (
    BackupOptions,
    BackupResult,
    Parent,
    finish_generation,
    store_generation,
)
from drbdbackup.ops.backup_linstor import LinstorBackup, _context, _job, _still_needed
from drbdbackup.ops.session import LockMode, RepositoryRef, operation
from drbdbackup.repo.records import GenerationRecord
from drbdbackup.repo.repository import Repository

LOOK_BACK = 8  # generations searched for a complete group base / a member's record


@dataclass(frozen=True)
class GroupSnapshot:
    """The claimant's snapshot: every member resource, each on the nodes listed for it."""

    nodes: dict[str, list[str]]  # resource -> its UpToDate diskful replicas' nodes
    snapshot: str
    controller: ControllerSettings
    snapshot_slot: Callable[[], AbstractContextManager[object]] | None = None


def snapshot_group(req: GroupSnapshot) -> None:
    """`snapshot_create_multi` and wait for SUCCESSFUL; a failure leaves no snapshot."""
    rscs = sorted(req.nodes)
    with req.controller.connect() as ctl, req.snapshot_slot() if req.snapshot_slot else nullcontext():
        ctl.create_snapshot(rscs, req.snapshot, req.nodes)
        try:
            ctl.wait_successful(rscs, req.snapshot)
        except BaseException:
            delete_quietly(ctl, rscs, req.snapshot)
            raise


@dataclass(frozen=True)
class MemberBackup:
    """One member resource of a group attempt, read on `base.node` from `base.snapshot`.

    `base.fence` runs before each record (the first one: ready marker, then the group commit);
    `still_wanted()` is asked while the claimant's snapshot is not there yet."""

    resource: str
    members: tuple[str, ...]  # every resource of the group
    base: LinstorBackup
    still_wanted: Callable[[], bool]
    poll_s: float = 0.5


def _wait_snapshot(ctl: Controller, req: MemberBackup) -> SnapshotInfo:
    snap = req.base.snapshot
    assert snap is not None
    while True:
        info = ctl.snapshot(req.resource, snap)
        if info is not None and info.successful:
            return info
        if info is not None and any(f.startswith("FAILED") for f in info.flags):
            raise ControllerError(f"snapshot {snap} of {req.resource} failed")
        if not req.still_wanted():
            raise Fenced(f"group attempt of snapshot {snap} is over before its snapshot was ready")
        time.sleep(req.poll_s)


def _record_of(repo: Repository, volume_id: str, snapshot: str) -> bool:
    for gen in reversed(repo.generation_ids(volume_id)[-LOOK_BACK:]):
        try:
            if repo.read_record(volume_id, gen).source.get("snapshot") == snapshot:
                return True
        except IntegrityError:
            continue
    return False


def group_complete(repo: Repository, rec: GenerationRecord) -> bool:
    """Whether every volume of `rec`'s consistency group has a record of its snapshot."""
    snap = rec.source.get("snapshot")
    return not rec.group_members or all(
        m == rec.volume_id or _record_of(repo, m, str(snap)) for m in rec.group_members)


def complete_parent(repo: Repository, volume_id: str) -> Parent:
    """The volume's newest generation that is not part of an incomplete group."""
    latest = Parent.read(repo, volume_id)
    if latest.record is None or group_complete(repo, latest.record):
        return latest
    for gen in reversed(repo.generation_ids(volume_id)[-LOOK_BACK:-1]):
        try:
            rec = repo.read_record(volume_id, gen)
            if group_complete(repo, rec):
                return Parent(rec, repo.chunk_ids(rec), True)
        except IntegrityError:
            continue
    return Parent(None, None, True)


def back_up_member(ref: RepositoryRef, req: MemberBackup, opts: BackupOptions) -> list[BackupResult]:
    """Wait for the group snapshot, store every volume of the member, rotate its snapshots."""
    base = req.base
    if base.snapshot is None or base.node is None:
        raise UsageError("a group member is read from the group's snapshot on this node")
    tune_allocator()
    with operation(ref, "backup", lock=LockMode.SHARED,
                   audit_failure={"volume_id": None, "resources": [req.resource]}) as s:
        s.repo.load_index()
        with base.controller.connect() as ctl:
            info = _wait_snapshot(ctl, req)
            sources = resolve_sources(ctl, [req.resource], None, base.node, base.cluster)
            rds = {rd.name: rd for rd in ctl.resource_definitions(list(req.members), volumes=True)}
            members = sorted(volume_id_for(base.cluster, rd.name, n)
                             for rd in rds.values() for n, _kib in rd.volumes)
            results: list[BackupResult] = []
            for src in sources:
                job = _job(s.repo, ctl, src, base.snapshot, info, opts, list(req.members),
                           _context(base, rds.get(src.resource), members),
                           parent=complete_parent(s.repo, src.volume_id))
                job.fence = base.fence
                results.append(finish_generation(s, ref, store_generation(s, job, opts), opts))
            rotate_snapshots(ctl, [req.resource], snapshot_prefix(s.repo.id),
                             _still_needed(s.repo, base.cluster, [req.resource], base.snapshot),
                             may_delete=base.may_delete)
            return results


def group_gaps(repo: Repository, rows: list[dict]) -> dict[str, list[str]]:
    """For the consistency-group generations among `rows` (listing rows): snapshot -> the
    member volume ids without a record of that snapshot (an incomplete group)."""
    seen: dict[str, set[str]] = {}

    def snapshots(vol: str) -> set[str]:
        if vol not in seen:
            seen[vol] = set()
            for gen in repo.generation_ids(vol):
                try:
                    seen[vol].add(str(repo.read_record(vol, gen).source.get("snapshot")))
                except IntegrityError:
                    continue
        return seen[vol]

    out: dict[str, list[str]] = {}
    for r in rows:
        snap = r.get("snapshot")
        if r.get("group_members") and snap and snap not in out:
            missing = sorted(m for m in r["group_members"] if snap not in snapshots(m))
            if missing:
                out[snap] = missing
    return out


def mark_group_gaps(repo: Repository, rows: list[dict]) -> None:
    """Give each listing row of an incomplete consistency group `group_incomplete`: the members
    without a record of its snapshot (`group_gaps`)."""
    gaps = group_gaps(repo, rows)
    for r in rows:
        if r.get("snapshot") in gaps:
            r["group_incomplete"] = gaps[r["snapshot"]]


def drop_group_snapshot(controller: ControllerSettings, rscs: list[str], snapshot: str) -> None:
    """Best-effort removal of a group attempt's snapshot once the attempt is over uncommitted
    (what is left is removed by the members' later rotations)."""
    with controller.connect() as ctl:
        delete_quietly(ctl, rscs, snapshot)
