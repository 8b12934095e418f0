"""What the controller tells us, as plain values (no python-linstor objects leave client.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Replica:
    """One diskful or diskless replica of one volume on one node."""

    node: str
    volume_number: int
    storage_pool: str
    provider_kind: str
    device_path: str
    backing_device: str | None
    usable_bytes: int
    disk_state: str
    diskless: bool
    volume_uuid: str = ""  # changes when the volume is re-created or rolled back on this node


@dataclass(frozen=True)
class NodeInfo:
    """A satellite as the controller sees it."""

    name: str
    connection_status: str  # ONLINE, OFFLINE, ...
    addresses: tuple[str, ...]

    @property
    def online(self) -> bool:
        return self.connection_status.upper() == "ONLINE"


@dataclass(frozen=True)
class DefinitionInfo:
    """A resource definition: name, uuid, resource group, its own properties."""

    name: str
    uuid: str
    group: str
    props: dict[str, str]
    volumes: tuple[tuple[int, int], ...] = ()  # (volume number, size KiB), when asked for


@dataclass
class SnapshotInfo:
    """A snapshot definition as the controller reports it."""

    name: str
    resource: str
    uuid: str
    flags: list[str]
    node_uuids: dict[str, str] = field(default_factory=dict)

    @property
    def successful(self) -> bool:
        return "SUCCESSFUL" in self.flags
