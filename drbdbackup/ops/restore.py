"""Restore a generation to a file, a block device, or a new LINSTOR resource."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from drbdbackup.engine.restore import restore_chunks
from drbdbackup.errors import UsageError
from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.linstor.identity_props import without_identity
from drbdbackup.ops.session import LockMode, RepositoryRef, Session, operation
from drbdbackup.repo.records import GenerationRecord


@dataclass(frozen=True)
class RestoreResult:
    """The `restore --json` object."""

    volume_id: str
    generation: str
    target: str
    size_bytes: int
    written_bytes: int
    zero_chunks_skipped: int
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RestoreRequest:
    """Which generation (`latest` or an id) of which volume, and where to."""

    volume_id: str
    generation: str | None = "latest"
    target: str | None = None  # a file or block device
    force: bool = False
    progress: bool | None = None


@dataclass(frozen=True)
class ResourceTarget:
    """`--to-resource`: create (or with force reuse) a LINSTOR resource and write into it."""

    resource: str
    controller: ControllerSettings
    node: str | None = None
    storage_pool: str | None = None
    volume_nr: int = 0
    resource_group: str | None = None  # spawn the target from this group (its placement)
    like_original: bool = False  # the recorded group and properties, minus identity ones


def _write(s: Session, rec: GenerationRecord, target: str, req: RestoreRequest, *,
           in_place: bool = False, limit: int | None = None) -> RestoreResult:
    start = time.monotonic()
    ids = s.repo.chunk_ids(rec)
    out = restore_chunks(ids, rec.size_bytes, rec.chunk_size, s.repo.read_blob, target,
                         label=f"restore {rec.volume_id}", force=req.force, in_place=in_place,
                         limit=limit, progress=req.progress)
    return RestoreResult(rec.volume_id, rec.generation, target, rec.size_bytes, out.written_bytes,
                         out.zero_chunks_skipped, round(time.monotonic() - start, 3))


def restore(ref: RepositoryRef, req: RestoreRequest, to: ResourceTarget | None = None) -> RestoreResult:
    """The whole `restore` operation: into `req.target`, or into the resource `to`."""
    if (req.target is None) == (to is None):
        raise UsageError("restore needs --target PATH or --to-resource RSC (one of them)")
    with operation(ref, "restore", lock=LockMode.SHARED,
                   audit_failure={"volume_id": req.volume_id, "resources": None}) as s:
        s.repo.load_index()
        rec = s.repo.resolve_generation(req.volume_id, req.generation)
        if to is None:
            assert req.target is not None
            result = _write(s, rec, req.target, req)
        else:
            result = _to_resource(s, rec, req, to)
        s.succeeded("restore", result.to_dict())
        return result


def _shape(rec: GenerationRecord, to: ResourceTarget) -> tuple[str | None, dict[str, str]]:
    """(group to spawn from, properties to set) for the target."""
    recorded = rec.linstor or {}
    if not to.like_original:
        return to.resource_group, {}
    group = to.resource_group or recorded.get("resource_group")
    if not group:
        raise UsageError(f"generation {rec.generation} of {rec.volume_id} records no resource group: "
                         "use --resource-group RG or --node/--storage-pool")
    props, _left_out = without_identity(dict(recorded.get("rd_props") or {}))
    return group, props


def _to_resource(s: Session, rec: GenerationRecord, req: RestoreRequest, to: ResourceTarget) -> RestoreResult:
    src = rec.source if rec.source.get("kind") == "linstor" else {}
    group, props = _shape(rec, to)
    node = to.node or (None if group else src.get("node"))
    pool = to.storage_pool or (None if group else src.get("storage_pool"))
    if not group and (not node or not pool):
        raise UsageError("--to-resource needs --node and --storage-pool, or --resource-group "
                         "(the source was not a LINSTOR volume)")
    with to.controller.connect() as ctl:
        created = False
        if ctl.resource_exists(to.resource):
            if not req.force:
                raise UsageError(f"resource {to.resource} already exists; pass --force to overwrite its data")
        elif group:
            sizes = [(rec.size_bytes + 1023) // 1024] * (to.volume_nr + 1)
            try:
                ctl.spawn(group, to.resource, sizes)  # fails before any data is written
            except BaseException:
                if ctl.resource_exists(to.resource):  # a definition left by a failed placement
                    ctl.delete_resource_definition(to.resource)
                raise
            created = True
            ctl.set_definition_props(to.resource, props)
        else:
            ctl.create_resource(to.resource, rec.size_bytes, node or "", pool or "", to.volume_nr)
            created = True
        try:
            replicas = [r for r in ctl.replicas(to.resource)
                        if r.volume_number == to.volume_nr and not r.diskless]
            target = next((r for r in replicas if r.node == node),
                          min(replicas, key=lambda r: r.node) if replicas else None)
            if target is None:
                raise UsageError(f"resource {to.resource} has no diskful volume {to.volume_nr} to restore into")
            result = _write(s, rec, target.device_path, req, in_place=True, limit=target.usable_bytes)
        except BaseException:
            if created:
                try:
                    ctl.delete_resource_definition(to.resource)
                except Exception:  # noqa: BLE001 - best effort cleanup; the error matters more
                    pass
            raise
    return replace(result, target=f"{to.resource} ({target.node}:{target.device_path})")
