"""LINSTOR replies we consume (issue 20): negative sizes, missing fields, and names or pool
properties holding '..', '/' or NUL become one controller error (exit 3) before any snapshot path
is derived; paths.py refuses such names itself (exit 2). The emulator has no switch to send such
replies, so the client reads python-linstor response objects built from dicts."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from linstor import responses

from drbdbackup.errors import EXIT_ENVIRONMENT, EXIT_USAGE, describe
from drbdbackup.linstor.client import Controller, ControllerError, UnknownResource
from drbdbackup.linstor.paths import UnsafeName, snapshot_data_path, volume_data_path

VOLUME: dict[str, Any] = {
    "volume_number": 0, "storage_pool_name": "pool1", "provider_kind": "FILE_THIN",
    "device_path": "/dev/drbd1000", "uuid": "vu", "state": {"disk_state": "UpToDate"},
    "layer_data_list": [{"type": "DRBD", "data": {
        "drbd_volume_definition": {"volume_number": 0, "minor_number": 1000},
        "device_path": "/dev/drbd1000", "usable_size_kib": 4096, "allocated_size_kib": 4100,
        "backing_device": "/pools/p1/vm1_00000.img"}}],
}
RESOURCE: dict[str, Any] = {"name": "vm1", "node_name": "n1", "uuid": "ru", "flags": [],
                            "props": {}, "volumes": [VOLUME]}
POOL: dict[str, Any] = {"storage_pool_name": "pool1", "node_name": "n1",
                        "provider_kind": "FILE_THIN",
                        "props": {"StorDriver/FileDir": "/pools/p1"}}
SNAPSHOT: dict[str, Any] = {"name": "snap1", "resource_name": "vm1", "uuid": "su",
                            "flags": ["SUCCESSFUL"], "snapshots": []}
DEFINITION: dict[str, Any] = {"name": "vm1", "uuid": "du", "resource_group_name": "rg",
                              "props": {"Aux/x": "1"},
                              "volume_definitions": [{"volume_number": 0, "size_kib": 4096}]}
NODE: dict[str, Any] = {"name": "n1", "type": "SATELLITE", "connection_status": "ONLINE",
                        "net_interfaces": [{"name": "default", "address": "10.0.0.1"}]}


class FakeApi:
    """The python-linstor calls client.py makes, answering with the given REST data."""

    def __init__(self, **data: list[dict[str, Any]]) -> None:
        self.data = data

    def volume_list(self, **_kw: Any) -> list[Any]:
        return [responses.ResourceResponse(self.data["resources"])]

    def storage_pool_list(self, **_kw: Any) -> list[Any]:
        return [responses.StoragePoolListResponse(self.data["pools"])]

    def snapshot_dfn_list(self, **_kw: Any) -> list[Any]:
        return [responses.SnapshotResponse(self.data["snapshots"])]

    def resource_dfn_list(self, **_kw: Any) -> list[Any]:
        return [responses.ResourceDefinitionResponse(self.data["definitions"])]

    def node_list(self, **_kw: Any) -> list[Any]:
        return [responses.NodeListResponse(self.data["nodes"])]


def controller(**data: list[dict[str, Any]]) -> Controller:
    ctl = Controller("linstor://controller.invalid")
    ctl.api = FakeApi(**data)
    return ctl


def with_change(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `doc` with the field at 'a.b.0.c' set to `value` (or removed if None)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return out


def refused(fn: Any, *needles: str) -> str:
    with pytest.raises(ControllerError) as info:
        fn()
    code, line = describe(info.value)
    assert code == EXIT_ENVIRONMENT and "\n" not in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def test_well_formed_replies_read() -> None:
    ctl = controller(resources=[RESOURCE], pools=[POOL], snapshots=[SNAPSHOT],
                     definitions=[DEFINITION], nodes=[NODE])
    (rep,) = ctl.replicas("vm1")
    assert (rep.usable_bytes, rep.storage_pool, rep.disk_state) == (4096 * 1024, "pool1", "UpToDate")
    assert ctl.pool_backing_object("n1", "pool1") == "/pools/p1"
    assert ctl.snapshot_names("vm1") == ["snap1"] and ctl.snapshot("vm1", "snap1") is not None
    (rd,) = ctl.resource_definitions(["vm1"], volumes=True)
    assert rd.volumes == ((0, 4096),)
    assert [n.name for n in ctl.nodes()] == ["n1"]


# ---- sizes and fields -------------------------------------------------------------------------


@pytest.mark.parametrize("path,value,needle", [
    ("volumes.0.layer_data_list.0.data.usable_size_kib", -1, "usable size"),
    ("volumes.0.layer_data_list.0.data.usable_size_kib", "4096", "usable size"),
    ("volumes.0.layer_data_list.0.data.usable_size_kib", 4.5, "usable size"),
    ("volumes.0.volume_number", -2, "volume number"),
    ("volumes.0.volume_number", True, "volume number"),
    ("volumes.0.volume_number", None, "'volume_number'"),
    ("volumes.0.provider_kind", None, "'provider_kind'"),
    ("volumes.0.layer_data_list.0.data.usable_size_kib", None, "'usable_size_kib'"),
    ("node_name", None, "'node_name'"),
    ("volumes", "not a list", "volume list"),
])
def test_volume_list_with_a_negative_size_or_missing_field(path: str, value: Any,
                                                           needle: str) -> None:
    ctl = controller(resources=[with_change(RESOURCE, path, value)])
    refused(lambda: ctl.replicas("vm1"), "volume list", needle)


def test_a_huge_size_string_is_refused_without_being_multiplied() -> None:
    ctl = controller(resources=[with_change(
        RESOURCE, "volumes.0.layer_data_list.0.data.usable_size_kib", "9" * 10_000_000)])
    start = time.monotonic()
    refused(lambda: ctl.replicas("vm1"), "usable size")
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("path,value,needle", [
    ("volume_definitions.0.size_kib", -4096, "size of vm1 volume 0"),
    ("volume_definitions.0.size_kib", None, "'size_kib'"),
    ("volume_definitions.0.volume_number", -1, "volume number of vm1"),
    ("props", {"Aux/x": 5}, "properties of vm1"),
    ("name", None, "'name'"),
])
def test_definitions_with_a_negative_size_or_missing_field(path: str, value: Any,
                                                          needle: str) -> None:
    ctl = controller(definitions=[with_change(DEFINITION, path, value)])
    refused(lambda: ctl.resource_definitions(volumes=True), "resource definition list", needle)


def test_snapshot_and_node_replies_missing_fields() -> None:
    refused(lambda: controller(snapshots=[with_change(SNAPSHOT, "resource_name", None)])
            .snapshot_names("vm1"), "snapshot list", "'resource_name'")
    refused(lambda: controller(nodes=[with_change(NODE, "name", None)]).nodes(), "node list",
            "'name'")
    refused(lambda: controller(snapshots=[with_change(SNAPSHOT, "flags", [1])])
            .snapshot("vm1", "snap1"), "snapshot list", "flags")


# ---- names and pool properties ----------------------------------------------------------------

BAD_NAMES = ["../etc", "a/b", "x\x00y", "..", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("field", ["node_name", "volumes.0.storage_pool_name"])
def test_replica_names_holding_dotdot_slash_or_nul_are_refused(field: str, name: str) -> None:
    ctl = controller(resources=[with_change(RESOURCE, field, name)])
    refused(lambda: ctl.replicas("vm1"), "volume list", "not a usable name")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_resource_and_snapshot_names_are_refused(name: str) -> None:
    refused(lambda: controller(snapshots=[with_change(SNAPSHOT, "name", name)])
            .snapshot_names("vm1"), "snapshot name")
    refused(lambda: controller(snapshots=[with_change(SNAPSHOT, "name", name)])
            .snapshot("vm1", name), "snapshot name")
    refused(lambda: controller(definitions=[with_change(DEFINITION, "name", name)])
            .resource_definitions(), "resource name")
    refused(lambda: controller(nodes=[with_change(NODE, "name", name)]).nodes(), "node name")


@pytest.mark.parametrize("key,value", [
    ("StorDriver/FileDir", "/pools/../etc"),
    ("StorDriver/FileDir", "../../etc"),
    ("StorDriver/FileDir", "/pools/p1\x00"),
    ("StorDriver/LvmVg", "vg0/.."),
    ("StorDriver/ZPool", "/"),
    ("StorDriver/StorPoolName", ["/pools"]),
])
def test_pool_properties_holding_dotdot_or_nul_are_refused(key: str, value: Any) -> None:
    ctl = controller(pools=[with_change(POOL, "props", {key: value})])
    refused(lambda: ctl.pool_backing_object("n1", "pool1"), "storage pool pool1 on n1", key)


@pytest.mark.parametrize("value", ["/var/lib/linstor-pools/p.1", "vg0/thinpool", "tank/linstor"])
def test_ordinary_backing_objects_pass(value: str) -> None:
    ctl = controller(pools=[with_change(POOL, "props", {"StorDriver/FileDir": value})])
    assert ctl.pool_backing_object("n1", "pool1") == value


def test_a_pool_without_a_backing_property_or_missing_is_one_error() -> None:
    refused(lambda: controller(pools=[with_change(POOL, "props", {})])
            .pool_backing_object("n1", "pool1"), "no backing object property")
    refused(lambda: controller(pools=[with_change(POOL, "node_name", None)])
            .pool_backing_object("n1", "pool1"), "'node_name'")
    with pytest.raises(UnknownResource):
        controller(pools=[POOL]).pool_backing_object("n1", "pool2")


# ---- paths.py refuses such names itself -------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("FILE_THIN", "/pools/p1", "../vm1", 0, "s"),
    ("FILE_THIN", "/pools/p1", "vm1", 0, "../../etc/passwd"),
    ("FILE_THIN", "/pools/p1", "vm1", 0, "s/x"),
    ("LVM_THIN", "vg0/tp", "vm1", 0, "s\x00"),
    ("ZFS", "tank/../other", "vm1", 0, "s"),
    ("FILE", "/pools/p1", "vm1", -1, "s"),
])
def test_snapshot_paths_are_never_built_from_unsafe_names(args: tuple) -> None:
    with pytest.raises(UnsafeName) as info:
        snapshot_data_path(*args)
    code, line = describe(info.value)
    assert code == EXIT_USAGE and line.startswith("refusing to build a snapshot path")
    if "/" not in args[4] and "\x00" not in args[4] and ".." not in args[4]:
        with pytest.raises(UnsafeName):
            volume_data_path(*args[:4])
