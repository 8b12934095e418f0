"""What LINSTOR says about a volume's previous snapshot and placement (facts, no verdict)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from drbdbackup.linstor.client import Controller
from drbdbackup.linstor.paths import snapshot_data_path
from drbdbackup.linstor.placement import UP_TO_DATE, VolumeSource


@dataclass(frozen=True)
class LinstorFacts:
    """Facts about the parent generation's LINSTOR source; None where they do not apply."""

    replica_up_to_date: bool
    resource_uuid_matches: bool | None = None
    volume_uuid_matches: bool | None = None
    same_placement: bool | None = None
    placement_change: str = ""
    parent_snapshot_exists: bool | None = None
    parent_snapshot_uuid_matches: bool | None = None
    parent_snapshot: str | None = None
    parent_path: str | None = None  # the parent snapshot's data, when it still exists here


def source_identity(src: VolumeSource) -> dict[str, Any]:
    """The placement fields a generation record keeps (compared on the next run)."""
    return {
        "node": src.replica.node,
        "storage_pool": src.replica.storage_pool,
        "provider_kind": src.replica.provider_kind,
        "backing_object": src.backing_object,
    }


def parent_facts(ctl: Controller, src: VolumeSource, parent_source: dict[str, Any] | None) -> LinstorFacts:
    """Compare the recorded source of the parent generation with LINSTOR now."""
    up = src.replica.disk_state == UP_TO_DATE
    if not parent_source or parent_source.get("kind") != "linstor":
        return LinstorFacts(replica_up_to_date=up)
    ps = parent_source
    changes = [f"{k} {ps.get(k)} -> {v}" for k, v in source_identity(src).items() if ps.get(k) != v]
    snap = ps.get("snapshot") or None
    info = ctl.snapshot(src.resource, snap or "")
    exists, uuid_ok, path = info is not None, None, None
    if info is not None:
        uuid_ok = info.uuid == ps.get("snapshot_uuid")
        path = snapshot_data_path(src.replica.provider_kind, src.backing_object, src.resource,
                                  src.replica.volume_number, info.name)
        if not os.path.exists(path):
            exists, path = False, None
    recorded_vol = ps.get("volume_uuid")
    return LinstorFacts(
        replica_up_to_date=up,
        resource_uuid_matches=ps.get("resource_uuid") == src.resource_uuid,
        volume_uuid_matches=(None if not recorded_vol or not src.replica.volume_uuid
                             else recorded_vol == src.replica.volume_uuid),
        same_placement=not changes,
        placement_change=", ".join(changes),
        parent_snapshot_exists=exists,
        parent_snapshot_uuid_matches=uuid_ok,
        parent_snapshot=snap,
        parent_path=path,
    )
