"""Back up LINSTOR resources: snapshot (one consistency group), validate lineage, choose the
tracker, read each volume's snapshot clipped to the DRBD usable size, rotate snapshots."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from drbdbackup.engine.backup import BackupRequest, BackupResult, NativeMap, run_backup
from drbdbackup.errors import EnvironmentFailure, IntegrityError, SourceUnavailable, UsageError
from drbdbackup.linstor.client import Controller, Replica, SnapshotInfo, UnknownResource
from drbdbackup.linstor.paths import snapshot_data_path
from drbdbackup.repo.records import GenerationRecord
from drbdbackup.repo.repository import Repository
from drbdbackup.tracking.changemap import positions_for_ranges
from drbdbackup.tracking.reflink import FiemapUnsupported, changed_ranges, fiemap, shared_bytes
from drbdbackup.tracking.thindelta import (
    ThinDeltaError,
    reserved_metadata_snapshot,
    run_thin_delta,
    thin_delta_map,
    thin_id,
)

SNAPSHOT_PREFIX = "drbdbackup-"
UP_TO_DATE = "UpToDate"


@dataclass
class VolumeSource:
    """One volume to back up, with where its snapshot data will be."""

    resource: str
    replica: Replica
    resource_uuid: str
    backing_object: str
    volume_id: str


def volume_id_for(cluster: str, rsc: str, vnr: int) -> str:
    """Stable across runs: cluster name, resource, volume number."""
    return f"{cluster}.{rsc}.{vnr}"


def snapshot_prefix(repo: Repository) -> str:
    """Snapshots this repository owns: `drbdbackup-<first 8 hex of the repository id>-`."""
    return f"{SNAPSHOT_PREFIX}{repo.id[:8]}-"


def snapshot_name(repo: Repository, ts: datetime | None = None) -> str:
    ts = ts or datetime.now(UTC)
    return f"{snapshot_prefix(repo)}{ts.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _rotate_snapshots(ctl: Controller, repo: Repository, rscs: list[str], cluster: str, keep: str) -> None:
    """Delete this repository's snapshots that no volume's latest generation uses as its base.

    This also removes snapshots left by runs that failed (or whose controller died) before they
    could clean up, so leaked snapshots never accumulate.
    """
    prefix = snapshot_prefix(repo)
    for rsc in rscs:
        needed = {keep}
        for vol in repo.volumes():
            if vol.startswith(f"{cluster}.{rsc}."):
                parent = _latest(repo, vol)
                if parent is not None and parent.source.get("snapshot"):
                    needed.add(parent.source["snapshot"])
        try:
            for name in ctl.snapshot_names(rsc):
                if name.startswith(prefix) and name not in needed:
                    ctl.delete_snapshot(rsc, name)
        except EnvironmentFailure as exc:
            # The generations are complete; a snapshot left now is removed by the next run.
            print(f"drbdbackup: warning: could not remove old snapshots of {rsc}: {exc}", file=sys.stderr)


def _pick_replica(replicas: list[Replica], vnr: int, node: str | None, rsc: str) -> Replica:
    mine = [r for r in replicas if r.volume_number == vnr]
    diskful = [r for r in mine if not r.diskless]
    if not diskful:
        raise UsageError(f"resource {rsc} volume {vnr} has no diskful replica (diskless only): nothing to snapshot")
    if node:
        chosen = [r for r in diskful if r.node == node]
        if not chosen:
            raise UsageError(f"resource {rsc} has no diskful replica on node {node}")
        return chosen[0]
    up = [r for r in diskful if r.disk_state == UP_TO_DATE]
    return sorted(up or diskful, key=lambda r: r.node)[0]


def resolve_sources(
    ctl: Controller, rscs: list[str], volume_nr: int | None, node: str | None, cluster: str
) -> list[VolumeSource]:
    out = []
    for rsc in rscs:
        rd_uuid = ctl.resource_uuid(rsc)
        replicas = ctl.replicas(rsc)
        vnrs = sorted({r.volume_number for r in replicas})
        if not replicas:
            raise UnknownResource(f"resource {rsc} has no replicas")
        if volume_nr is not None:
            if volume_nr not in vnrs:
                raise UnknownResource(f"resource {rsc} has no volume {volume_nr}")
            vnrs = [volume_nr]
        for vnr in vnrs:
            rep = _pick_replica(replicas, vnr, node, rsc)
            backing = ctl.pool_backing_object(rep.node, rep.storage_pool)
            snapshot_data_path(rep.provider_kind, backing, rsc, vnr, "probe")  # kind readable?
            out.append(VolumeSource(rsc, rep, rd_uuid, backing, volume_id_for(cluster, rsc, vnr)))
    return out


def _latest(repo: Repository, volume_id: str) -> GenerationRecord | None:
    gens = repo.generation_ids(volume_id)
    if not gens:
        return None
    try:
        return repo.read_record(volume_id, gens[-1])
    except IntegrityError:
        return None


def _lineage(
    ctl: Controller, src: VolumeSource, parent: GenerationRecord | None
) -> tuple[dict, str | None]:
    """Lineage facts about the parent, and the parent's snapshot data path when it still exists."""
    facts: dict = {"replica_up_to_date": src.replica.disk_state == UP_TO_DATE}
    if parent is None or parent.source.get("kind") != "linstor":
        return facts, None
    ps = parent.source
    facts["resource_uuid_matches"] = ps.get("resource_uuid") == src.resource_uuid
    changes = [
        f"{k} {ps.get(k)} -> {v}"
        for k, v in (
            ("node", src.replica.node),
            ("storage_pool", src.replica.storage_pool),
            ("provider_kind", src.replica.provider_kind),
            ("backing_object", src.backing_object),
        )
        if ps.get(k) != v
    ]
    facts["same_placement"] = not changes
    facts["placement_change"] = ", ".join(changes)
    info: SnapshotInfo | None = ctl.snapshot(src.resource, ps.get("snapshot", ""))
    facts["parent_snapshot_exists"] = info is not None
    path = None
    if info is not None:
        facts["parent_snapshot_uuid_matches"] = info.uuid == ps.get("snapshot_uuid")
        path = snapshot_data_path(
            src.replica.provider_kind, src.backing_object, src.resource,
            src.replica.volume_number, info.name,
        )
        if not os.path.exists(path):
            facts["parent_snapshot_exists"] = False
            path = None
    return facts, path


def _native_map(
    tracker: str, src: VolumeSource, parent_snap: str | None, parent_path: str | None,
    snap: str, cur_path: str, chunk_size: int,
) -> NativeMap | None:
    """Reflink extents (FILE*) or thin_delta (LVM_THIN); None when unavailable (checksum then)."""
    kind, size = src.replica.provider_kind, src.replica.usable_bytes
    if parent_path is None or parent_snap is None:
        return None
    if tracker in ("auto", "reflink") and kind in ("FILE", "FILE_THIN"):
        try:
            old, new = fiemap(parent_path), fiemap(cur_path)
        except FiemapUnsupported:
            return None
        if not shared_bytes(old, new, size):
            return None  # full copies, not reflinks (a filesystem without reflink): checksum
        return NativeMap("reflink", positions_for_ranges(changed_ranges(old, new, size), chunk_size, size))
    if tracker in ("auto", "thin-delta") and kind == "LVM_THIN" and "/" in src.backing_object:
        vg, pool = src.backing_object.split("/", 1)
        base = f"{src.resource}_{src.replica.volume_number:05d}"
        try:
            with reserved_metadata_snapshot(vg, pool) as tmeta:
                delta = run_thin_delta(
                    tmeta, thin_id(f"{vg}/{base}_{parent_snap}"), thin_id(f"{vg}/{base}_{snap}"),
                    metadata_snap=True,
                )
        except (ThinDeltaError, OSError):
            return None
        return NativeMap("thin-delta", thin_delta_map(delta, size, chunk_size))
    return None


NATIVE_TRACKERS = ("reflink", "thin-delta")


def native_streak(repo: Repository, parent: GenerationRecord | None, limit: int) -> int:
    """How many generations in a row (ending at `parent`) used a native map, counted up to `limit`."""
    n, rec = 0, parent
    while rec is not None and rec.tracker in NATIVE_TRACKERS and n < limit:
        n += 1
        if not rec.parent:
            break
        try:
            rec = repo.read_record(rec.volume_id, rec.parent)
        except (IntegrityError, UsageError):
            break
    return n


def _ensure_readable(kind: str, path: str) -> None:
    """LVM thin snapshots carry the activation-skip flag: activate them (`lvchange -ay -K`)."""
    if os.path.exists(path):
        return
    if kind == "LVM_THIN":
        lv = path[len("/dev/") :]
        proc = subprocess.run(["lvchange", "-ay", "-K", lv], capture_output=True, text=True)
        if proc.returncode == 0 and os.path.exists(path):
            return
    raise SourceUnavailable(
        f"snapshot data {path} is not readable on this host (is the agent running on the node "
        "that holds the snapshot?)"
    )


def backup_linstor(
    repo: Repository,
    ctl: Controller,
    rscs: list[str],
    *,
    volume_nr: int | None = None,
    node: str | None = None,
    tracker: str = "auto",
    cluster: str = "linstor",
    progress: bool | None = None,
    defer_audit: bool = False,
    read_rate_bytes_s: int = 0,
    checksum_every: int = 14,
) -> list[BackupResult]:
    """Snapshot `rscs` together, back up every volume, then delete the previous snapshots."""
    sources = resolve_sources(ctl, rscs, volume_nr, node, cluster)
    snap = snapshot_name(repo)
    groups = list(dict.fromkeys(rscs))
    # One resource: snapshot only where we read. A group: every diskful node (the controller
    # skips diskless ones), since the chosen nodes differ per resource.
    nodes = sorted({s.replica.node for s in sources}) if len(groups) == 1 else []
    ctl.create_snapshot(groups, snap, nodes)
    results: list[BackupResult] = []
    try:
        infos = ctl.wait_successful(groups, snap)
        for src in sources:
            rep = src.replica
            info = infos[src.resource]
            path = snapshot_data_path(rep.provider_kind, src.backing_object, src.resource, rep.volume_number, snap)
            _ensure_readable(rep.provider_kind, path)
            parent = _latest(repo, src.volume_id)
            facts, parent_path = _lineage(ctl, src, parent)
            parent_snap = parent.source.get("snapshot") if parent else None
            native = _native_map(tracker, src, parent_snap, parent_path, snap, path, repo.chunk_size)
            skipped = None
            if native is not None and checksum_every > 0 and tracker == "auto":
                streak = native_streak(repo, parent, checksum_every)
                if streak >= checksum_every - 1:
                    skipped = (
                        f"periodic checksum read: {streak} {native.tracker} generations in a row "
                        f"(--checksum-every {checksum_every}) bound silent drift of native maps"
                    )
                    native = None
            req = BackupRequest(
                source_path=path,
                volume_id=src.volume_id,
                tracker="auto" if tracker in ("reflink", "thin-delta") else tracker,
                size_limit=rep.usable_bytes,
                native_map=native,
                lineage=facts,
                progress=progress,
                defer_audit=defer_audit,
                read_rate_bytes_s=read_rate_bytes_s,
                native_skipped_reason=skipped,
                source_info={
                    "kind": "linstor",
                    "controller": ",".join(ctl.uris),
                    "resource": src.resource,
                    "volume_number": rep.volume_number,
                    "resource_uuid": src.resource_uuid,
                    "snapshot": snap,
                    "snapshot_uuid": info.uuid,
                    "node": rep.node,
                    "storage_pool": rep.storage_pool,
                    "provider_kind": rep.provider_kind,
                    "backing_object": src.backing_object,
                    "usable_size_bytes": rep.usable_bytes,
                    "consistency_group": sorted(set(rscs)) if len(set(rscs)) > 1 else None,
                },
            )
            results.append(run_backup(repo, req))
    except BaseException:
        for rsc in groups:
            try:
                ctl.delete_snapshot(rsc, snap)
            except Exception:  # noqa: BLE001 - best effort; the original error matters more
                pass
        raise
    _rotate_snapshots(ctl, repo, groups, cluster, snap)
    return results
