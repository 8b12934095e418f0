"""Restore a generation into a new LINSTOR resource created through the API."""

from __future__ import annotations

from drbdbackup.engine.restore import RestoreResult, run_restore
from drbdbackup.errors import UsageError
from drbdbackup.linstor.client import Controller
from drbdbackup.repo.repository import Repository


def restore_to_resource(
    repo: Repository,
    ctl: Controller,
    volume_id: str,
    generation: str | None,
    rsc: str,
    *,
    node: str | None = None,
    pool: str | None = None,
    volume_nr: int = 0,
    force: bool = False,
    progress: bool | None = None,
) -> RestoreResult:
    """Create `rsc` (or, with force, reuse it) and write the generation onto its device."""
    repo.load_index()
    rec = repo.resolve_generation(volume_id, generation)
    src = rec.source if rec.source.get("kind") == "linstor" else {}
    node = node or src.get("node")
    pool = pool or src.get("storage_pool")
    if not node or not pool:
        raise UsageError("--to-resource needs --node and --storage-pool (the source was not a LINSTOR volume)")
    created = False
    if ctl.resource_exists(rsc):
        if not force:
            raise UsageError(f"resource {rsc} already exists; pass --force to overwrite its data")
    else:
        ctl.create_resource(rsc, rec.size_bytes, node, pool, volume_nr)
        created = True
    try:
        replicas = [r for r in ctl.replicas(rsc) if r.volume_number == volume_nr and not r.diskless]
        target = next((r for r in replicas if r.node == node), replicas[0] if replicas else None)
        if target is None:
            raise UsageError(f"resource {rsc} has no diskful volume {volume_nr} to restore into")
        result = run_restore(
            repo, volume_id, rec.generation, target.device_path,
            in_place=True, limit=target.usable_bytes, progress=progress,
        )
    except BaseException:
        if created:
            try:
                ctl.delete_resource_definition(rsc)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        raise
    result.target = f"{rsc} ({target.node}:{target.device_path})"
    return result
