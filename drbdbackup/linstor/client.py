"""The only module that talks python-linstor. A narrow adapter; errors become ours.

What it returns are the plain values of `linstor.model` (re-exported here)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import linstor
from linstor.errors import LinstorError, LinstorNetworkError, LinstorTimeoutError

from drbdbackup.errors import EnvironmentFailure, UsageError
from drbdbackup.linstor.model import (
    DefinitionInfo,
    NodeInfo,
    Replica,
    ReplyError,
    SnapshotInfo,
    safe_backing_object,
    safe_name,
    size_value,
)


class ControllerError(EnvironmentFailure):
    """The controller refused or failed a call (its message is kept)."""


class UnknownResource(UsageError):
    """The resource (or volume) does not exist."""


def controller_uris(controllers: str | None) -> list[str]:
    """`--controllers`, $LS_CONTROLLERS, or `controllers=` in linstor-client.conf, as the linstor
    CLI does; default linstor://localhost."""
    raw = controllers or os.environ.get("LS_CONTROLLERS")
    if raw:
        return linstor.MultiLinstor.controller_uri_list(raw)
    try:
        return list(linstor.Config.get_controllers())
    except Exception:  # noqa: BLE001 - an unreadable client config means: use the default
        return ["linstor://localhost"]


def _check(replies: list[Any], what: str) -> None:
    for r in replies or []:
        if isinstance(r, linstor.ApiCallResponse) and r.is_error():
            raise ControllerError(f"{what}: controller said: {r.message}")


@contextmanager
def _reply(what: str) -> Iterator[None]:
    """Reading a reply: a missing field, a value of the wrong type, a negative size or an unsafe
    name (model.ReplyError) becomes one ControllerError, never an internal error."""
    try:
        yield
    except ReplyError as exc:
        raise ControllerError(f"{what}: the controller's reply is refused: {exc}") from None
    except KeyError as exc:
        raise ControllerError(f"{what}: the controller's reply lacks field {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ControllerError(f"{what}: the controller's reply is malformed: {detail}") from None


@dataclass(frozen=True)
class ControllerSettings:
    """How to reach the controller(s), as the `linstor` CLI takes it (the token is a value read
    from a file, never logged)."""

    controllers: str | None = None
    token: str | None = field(default=None, repr=False)
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    allow_insecure: bool = False
    before_call: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def connect(self) -> Controller:
        """A new (not yet entered) Controller; use it as a context manager."""
        return Controller(self.controllers, token=self.token, certfile=self.certfile,
                          keyfile=self.keyfile, cafile=self.cafile,
                          allow_insecure=self.allow_insecure, before_call=self.before_call)


class Controller:
    """One connection (python-linstor is not thread-safe: one Controller per worker)."""

    def __init__(
        self,
        controllers: str | None = None,
        *,
        token: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        cafile: str | None = None,
        allow_insecure: bool = False,
        timeout: int = 60,
        before_call: Callable[[], None] | None = None,
    ) -> None:
        self.uris = controller_uris(controllers)
        self.before_call = before_call  # e.g. wait for a rate-limit slot
        self.token = token
        self.tls = (certfile, keyfile, cafile)
        self.timeout = timeout
        self.allow_insecure = allow_insecure
        self.api: Any = None

    def __enter__(self) -> Controller:
        if self.before_call is not None:
            self.before_call()
        insecure = [u for u in self.uris if u.startswith(("linstor://", "http://"))]
        if self.token and insecure and not self.allow_insecure:
            raise UsageError(
                f"refusing to send the controller token over plain HTTP to {insecure[0]}: "
                "use linstor+ssl:// or https://, or pass --allow-insecure for a test cluster"
            )
        try:
            api = linstor.MultiLinstor(self.uris, timeout=self.timeout, auth_token=self.token)
            certfile, keyfile, cafile = self.tls
            if certfile:
                api.certfile = certfile
            if keyfile:
                api.keyfile = keyfile
            if cafile:
                api.cafile = cafile
            if self.allow_insecure:
                api.allow_insecure = True
            api.connect()
        except (LinstorNetworkError, LinstorTimeoutError, OSError) as exc:
            raise EnvironmentFailure(
                f"LINSTOR controller unreachable at {', '.join(self.uris)}: {_short(exc)}"
            ) from None
        except LinstorError as exc:
            raise ControllerError(f"LINSTOR controller refused the connection: {_short(exc)}") from None
        self.api = api
        return self

    def __exit__(self, *exc: object) -> None:
        if self.api is not None:
            try:
                self.api.disconnect()
            except Exception:  # noqa: BLE001
                pass

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.before_call is not None:
            self.before_call()
        try:
            return fn(*args, **kwargs)
        except (LinstorNetworkError, LinstorTimeoutError, OSError) as exc:
            raise EnvironmentFailure(f"LINSTOR controller unreachable during {what}: {_short(exc)}") from None
        except LinstorError as exc:
            raise ControllerError(f"{what}: {_short(exc)}") from None

    # ---- queries --------------------------------------------------------------------------

    def controller_version(self) -> str:
        return str(self._call("version", self.api.controller_version).rest_api_version)

    def resource_uuid(self, rsc: str) -> str:
        replies = self._call(
            "resource definition list", self.api.resource_dfn_list,
            query_volume_definitions=False, filter_by_resource_definitions=[rsc],
        )
        _check(replies, "resource definition list")
        with _reply("resource definition list"):
            for resp in replies:
                for rd in getattr(resp, "resource_definitions", []):
                    if rd.name == rsc:
                        return str(rd.uuid)
        raise UnknownResource(f"resource {rsc} does not exist on the LINSTOR controller")

    def resource_groups(self) -> dict[str, dict[str, str]]:
        """Every resource group with its properties (one API call); none on a controller that
        predates resource groups (LINSTOR < 1.0 answers 404)."""
        try:
            resp = self._call("resource group list", self.api.resource_group_list_raise)
        except ControllerError as exc:
            if "HTTP-Status(404)" in str(exc):
                return {}
            raise
        with _reply("resource group list"):
            return {g.name: dict(g.properties or {}) for g in getattr(resp, "resource_groups", [])}

    def resource_definitions(self, rscs: list[str] | None = None, *,
                             volumes: bool = False) -> list[DefinitionInfo]:
        """Resource definitions (all, or `rscs`) with group, own properties and, with `volumes`,
        their volume definitions (one API call)."""
        replies = self._call("resource definition list", self.api.resource_dfn_list,
                             query_volume_definitions=volumes, filter_by_resource_definitions=rscs)
        _check(replies, "resource definition list")
        with _reply("resource definition list"):
            return [
                DefinitionInfo(rd.name, str(rd.uuid), str(rd.resource_group_name or ""),
                               dict(rd.properties or {}),
                               tuple((vd.number, vd.size) for vd in rd.volume_definitions)
                               if volumes else ())
                for resp in replies
                for rd in getattr(resp, "resource_definitions", [])
                if rscs is None or rd.name in rscs
            ]

    def nodes(self) -> list[NodeInfo]:
        """Every satellite with its connection status and interface addresses (one API call)."""
        replies = self._call("node list", self.api.node_list)
        _check(replies, "node list")
        with _reply("node list"):
            return [
                NodeInfo(n.name, str(n.connection_status or ""),
                         tuple(str(i.address) for i in (n.net_interfaces or []) if i.address))
                for resp in replies
                for n in getattr(resp, "nodes", [])
            ]

    def replicas(self, rsc: str) -> list[Replica]:
        """The volumes of one resource on every node."""
        return self._replicas([rsc]).get(rsc, [])

    def all_replicas(self, rscs: list[str] | None = None) -> dict[str, list[Replica]]:
        """Replicas of `rscs` (every resource when None), by resource, in one API call."""
        return self._replicas(rscs)

    def _replicas(self, rscs: list[str] | None) -> dict[str, list[Replica]]:
        replies = self._call("volume list", self.api.volume_list, filter_by_resources=rscs)
        _check(replies, "volume list")
        with _reply("volume list"):
            return self._replicas_of(replies, rscs)

    @staticmethod
    def _replicas_of(replies: list[Any], rscs: list[str] | None) -> dict[str, list[Replica]]:
        out: dict[str, list[Replica]] = {}
        for resp in replies:
            for res in getattr(resp, "resources", []):
                if rscs is not None and res.name not in rscs:
                    continue
                diskless_rsc = any(f in ("DISKLESS", "DRBD_DISKLESS") for f in res.flags)
                for vol in res.volumes:
                    drbd = vol.drbd_data
                    kind = vol.storage_pool_driver_name
                    usable_kib = drbd.usable_size if drbd is not None and drbd.usable_size else vol.usable_size
                    out.setdefault(res.name, []).append(
                        Replica(
                            node=res.node_name,
                            volume_number=vol.number,
                            storage_pool=vol.storage_pool_name,
                            provider_kind=kind,
                            device_path=vol.device_path,
                            backing_device=drbd.backing_device if drbd is not None else None,
                            usable_bytes=size_value("usable size (KiB)", usable_kib or 0) * 1024,
                            disk_state=str(vol.state.disk_state or ""),
                            diskless=diskless_rsc or kind == "DISKLESS",
                            volume_uuid=str(vol.uuid or ""),
                        )
                    )
        return out

    def pool_backing_object(self, node: str, pool: str) -> str:
        replies = self._call(
            "storage pool list", self.api.storage_pool_list,
            filter_by_nodes=[node], filter_by_stor_pools=[pool],
        )
        _check(replies, "storage pool list")
        with _reply("storage pool list"):
            for resp in replies:
                for sp in getattr(resp, "storage_pools", []):
                    if sp.name == pool and sp.node_name == node:
                        return _backing_object(sp.properties, pool, node)
        raise UnknownResource(f"storage pool {pool} does not exist on node {node}")

    def snapshot_names(self, rsc: str) -> list[str]:
        replies = self._call("snapshot list", self.api.snapshot_dfn_list, filter_by_resources=[rsc])
        _check(replies, "snapshot list")
        with _reply("snapshot list"):
            return sorted(
                safe_name("snapshot name", sd.name)
                for resp in replies
                for sd in getattr(resp, "snapshots", [])
                if sd.resource_name == rsc
            )

    def snapshot(self, rsc: str, name: str) -> SnapshotInfo | None:
        replies = self._call("snapshot list", self.api.snapshot_dfn_list, filter_by_resources=[rsc])
        _check(replies, "snapshot list")
        with _reply("snapshot list"):
            for resp in replies:
                for sd in getattr(resp, "snapshots", []):
                    if sd.resource_name == rsc and sd.name == name:
                        return SnapshotInfo(
                            name=sd.name,
                            resource=rsc,
                            uuid=str(sd.uuid),
                            flags=list(sd.flags),
                            node_uuids={s.node_name: str(s.uuid) for s in sd.snapshots},
                        )
        return None

    # ---- changes --------------------------------------------------------------------------

    def create_snapshot(self, rscs: list[str], name: str,
                        nodes: list[str] | dict[str, list[str]]) -> None:
        """One resource: snapshot_create; several: snapshot_create_multi (one consistency group).
        `nodes`: one list for all (empty: every diskful node), or a list per resource (the
        UpToDate replicas of each: LINSTOR refuses a snapshot of one that is not)."""
        if isinstance(nodes, dict):
            snaps = [{"name": name, "resource_name": r, **({"nodes": nodes[r]} if nodes.get(r) else {})}
                     for r in rscs]
            replies = self._call("snapshot create", self.api._rest_request,  # noqa: SLF001
                                 linstor.sharedconsts.API_CRT_SNAPSHOT_MULTI, "POST",
                                 "/v1/actions/snapshot/multi", {"snapshots": snaps})
        elif len(rscs) == 1:
            replies = self._call("snapshot create", self.api.snapshot_create, nodes, rscs[0], name)
        else:
            replies = self._call("snapshot create", self.api.snapshot_create_multi, nodes, rscs, name)
        _check(replies, f"snapshot {name} of {', '.join(rscs)}")

    def wait_successful(self, rscs: list[str], name: str, timeout_s: float = 120,
                        gone_after_s: float = 5) -> dict[str, SnapshotInfo]:
        """Wait until the snapshot is SUCCESSFUL on every resource. One that stays absent for
        `gone_after_s` was deleted (or its resource was): that fails at once, not at the timeout."""
        deadline = time.monotonic() + timeout_s
        seen_at = time.monotonic()
        while True:
            infos = {r: self.snapshot(r, name) for r in rscs}
            if all(i is not None and i.successful for i in infos.values()):
                return {r: i for r, i in infos.items() if i is not None}
            failed = [r for r, i in infos.items() if i is not None and any(f.startswith("FAILED") for f in i.flags)]
            if failed:
                raise ControllerError(f"snapshot {name} failed on {', '.join(failed)}")
            gone = [r for r, i in infos.items() if i is None]
            if not gone:
                seen_at = time.monotonic()
            elif time.monotonic() - seen_at > gone_after_s:
                raise ControllerError(f"snapshot {name} of {', '.join(gone)} is gone (deleted, or "
                                      "its resource was)")
            if time.monotonic() > deadline:
                raise ControllerError(f"snapshot {name} did not become SUCCESSFUL in {timeout_s:.0f}s")
            time.sleep(0.2)

    def delete_snapshot(self, rsc: str, name: str) -> None:
        replies = self._call("snapshot delete", self.api.snapshot_delete, rsc, name)
        _check(replies, f"delete snapshot {name} of {rsc}")

    def create_resource(self, rsc: str, size_bytes: int, node: str, pool: str, vnr: int) -> None:
        size_kib = (size_bytes + 1023) // 1024
        _check(self._call("resource definition create", self.api.resource_dfn_create, rsc),
               f"create resource definition {rsc}")
        _check(self._call("volume definition create", self.api.volume_dfn_create, rsc, size_kib, vnr),
               f"create volume definition {rsc}/{vnr}")
        _check(self._call("resource create", self.api.resource_create,
                          [linstor.ResourceData(node, rsc, storage_pool=pool)]),
               f"create resource {rsc} on {node}")

    def spawn(self, group: str, rsc: str, sizes_kib: list[int]) -> None:
        """`resource-group spawn-resources`: definition, volumes and placement from the group."""
        _check(self._call("resource group spawn", self.api.resource_group_spawn, group, rsc,
                          sizes_kib), f"spawn {rsc} from resource group {group}")

    def set_definition_props(self, rsc: str, props: dict[str, str]) -> None:
        if props:
            _check(self._call("resource definition modify", self.api.resource_dfn_modify, rsc,
                              props), f"set properties of {rsc}")

    def delete_resource_definition(self, rsc: str) -> None:
        _check(self._call("resource definition delete", self.api.resource_dfn_delete, rsc),
               f"delete resource definition {rsc}")

    def resource_exists(self, rsc: str) -> bool:
        try:
            self.resource_uuid(rsc)
        except UnknownResource:
            return False
        return True


BACKING_KEYS = ("StorDriver/StorPoolName", "StorDriver/FileDir", "StorDriver/LvmVg",
                "StorDriver/ThinPool", "StorDriver/ZPool", "StorDriver/ZPoolThin")


def _backing_object(props: dict[str, Any], pool: str, node: str) -> str:
    """The pool property naming its backing object (snapshot paths are derived from it)."""
    for key in BACKING_KEYS:
        if props.get(key):
            return safe_backing_object(f"storage pool {pool} on {node}: {key}", props[key])
    raise ControllerError(f"storage pool {pool} on {node} has no backing object property")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
