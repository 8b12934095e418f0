"""What the controller tells us, as plain values (no python-linstor objects leave client.py).

Each value is checked when it is made (issue 20): names that reach a path (resources, snapshots,
nodes, storage pools) hold no '/', '..' or NUL, sizes and volume numbers are non-negative
integers. A bad value raises ReplyError, which client.py reports as one controller error."""

from __future__ import annotations

from dataclasses import dataclass, field


class ReplyError(ValueError):
    """A controller reply holds a value drbdbackup refuses to use."""


def _shown(value: object) -> str:
    return repr(value)[:80]


def safe_name(what: str, value: object) -> str:
    """`value` if it is a non-empty string without '/', '..' or NUL (it may end up in a path)."""
    if not isinstance(value, str) or not value or "/" in value or "\0" in value or ".." in value:
        raise ReplyError(f"{what} {_shown(value)} is not a usable name (empty, or holds '/', "
                         "'..' or NUL)")
    return value


def safe_backing_object(what: str, value: object) -> str:
    """A pool's backing object (a directory, vg/pool, a dataset): no NUL, no '..' component."""
    if not isinstance(value, str) or not value.strip("/") or "\0" in value or ".." in value.split("/"):
        raise ReplyError(f"{what} {_shown(value)} is not a usable path (empty, or holds a '..' "
                         "component or NUL)")
    return value


def size_value(what: str, value: object) -> int:
    """A non-negative integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReplyError(f"{what} {_shown(value)} is not a non-negative integer")
    return value


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

    def __post_init__(self) -> None:
        safe_name("node name", self.node)
        safe_name("storage pool name", self.storage_pool)
        size_value("volume number", self.volume_number)
        size_value("usable size", self.usable_bytes)
        if not isinstance(self.provider_kind, str):
            raise ReplyError(f"provider kind {_shown(self.provider_kind)} is not a string")
    volume_uuid: str = ""  # changes when the volume is re-created or rolled back on this node


@dataclass(frozen=True)
class NodeInfo:
    """A satellite as the controller sees it."""

    name: str
    connection_status: str  # ONLINE, OFFLINE, ...
    addresses: tuple[str, ...]

    def __post_init__(self) -> None:
        safe_name("node name", self.name)

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

    def __post_init__(self) -> None:
        safe_name("resource name", self.name)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.props.items()):
            raise ReplyError(f"properties of {self.name} are not all strings")
        for number, size_kib in self.volumes:
            size_value(f"volume number of {self.name}", number)
            size_value(f"size of {self.name} volume {number}", size_kib)


@dataclass
class SnapshotInfo:
    """A snapshot definition as the controller reports it."""

    name: str
    resource: str
    uuid: str
    flags: list[str]
    node_uuids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        safe_name("snapshot name", self.name)
        safe_name("resource name", self.resource)
        if not all(isinstance(f, str) for f in self.flags):
            raise ReplyError(f"flags of snapshot {self.name} are not strings")

    @property
    def successful(self) -> bool:
        return "SUCCESSFUL" in self.flags
