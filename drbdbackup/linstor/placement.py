"""Which replica of each volume a backup reads, and what is known about it."""

from __future__ import annotations

from dataclasses import dataclass

from drbdbackup.errors import UsageError
from drbdbackup.linstor.client import Controller, Replica, UnknownResource
from drbdbackup.linstor.paths import snapshot_data_path

UP_TO_DATE = "UpToDate"


@dataclass(frozen=True)
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


def pick_replica(replicas: list[Replica], vnr: int, node: str | None, rsc: str) -> Replica:
    """The replica to read: on `node` when given, else the first UpToDate diskful one by name."""
    mine = [r for r in replicas if r.volume_number == vnr]
    diskful = [r for r in mine if not r.diskless]
    if not diskful:
        raise UsageError(f"resource {rsc} volume {vnr} has no diskful replica (diskless only): nothing to snapshot")
    if node:
        chosen = [r for r in diskful if r.node == node]
        if not chosen:
            where = ", ".join(sorted({r.node for r in diskful}))
            raise UsageError(f"resource {rsc} has no diskful replica on node {node}; "
                             f"its diskful replicas are on: {where}")
        return chosen[0]
    up = [r for r in diskful if r.disk_state == UP_TO_DATE]
    return sorted(up or diskful, key=lambda r: r.node)[0]


def resolve_sources(
    ctl: Controller, rscs: list[str], volume_nr: int | None, node: str | None, cluster: str
) -> list[VolumeSource]:
    """Every volume of `rscs` (or only `volume_nr`), with the replica each is read from."""
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
            rep = pick_replica(replicas, vnr, node, rsc)
            backing = ctl.pool_backing_object(rep.node, rep.storage_pool)
            snapshot_data_path(rep.provider_kind, backing, rsc, vnr, "probe")  # kind readable?
            out.append(VolumeSource(rsc, rep, rd_uuid, backing, volume_id_for(cluster, rsc, vnr)))
    return out
