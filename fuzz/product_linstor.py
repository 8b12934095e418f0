"""The LINSTOR replies drbdbackup consumes (drbdbackup/linstor/client.py, model.py): volume
lists, storage pools, snapshot definitions, resource definitions and nodes, as python-linstor
response objects built from the controller's JSON (the fuzzed input).

Input: a JSON object {"resources", "pools", "snapshots", "definitions", "nodes"}: lists of the
controller's REST objects. Documented errors: ControllerError (exit 3), UnknownResource (a name it does not list, exit 2).
Oracles: sizes and volume numbers read are non-negative integers; names hold no '/', '..' or NUL.
"""

import json
import sys
from typing import Any

import atheris
from linstor import responses

with atheris.instrument_imports(include=["drbdbackup.linstor"]):
    from drbdbackup.linstor.client import Controller, ControllerError, UnknownResource

import _common


class FakeApi:
    """The python-linstor calls client.py makes, answering with the fuzzed REST data."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _list(self, key: str) -> Any:
        value = self.data.get(key, [])
        return value if isinstance(value, list) else [value]

    def volume_list(self, **_kw: Any) -> list[Any]:
        return [responses.ResourceResponse(self._list("resources"))]

    def storage_pool_list(self, **_kw: Any) -> list[Any]:
        return [responses.StoragePoolListResponse(self._list("pools"))]

    def snapshot_dfn_list(self, **_kw: Any) -> list[Any]:
        return [responses.SnapshotResponse(self._list("snapshots"))]

    def resource_dfn_list(self, **_kw: Any) -> list[Any]:
        return [responses.ResourceDefinitionResponse(self._list("definitions"))]

    def node_list(self, **_kw: Any) -> list[Any]:
        return [responses.NodeListResponse(self._list("nodes"))]


def _safe(name: object) -> None:
    if isinstance(name, str) and ("/" in name or ".." in name or "\0" in name):
        raise AssertionError(f"unsafe name accepted: {name!r}")


def _replicas(ctl: Controller) -> None:
    for rep in ctl.replicas("vm1"):
        _common.hold(-rep.usable_bytes, 0, "negative usable size")
        _safe(rep.storage_pool)
        _safe(rep.node)


def _definitions(ctl: Controller) -> None:
    for rd in ctl.resource_definitions(["vm1"], volumes=True):
        for vnr, size in rd.volumes:
            _common.hold(-vnr, 0, "negative volume number")
            _common.hold(-size, 0, "negative volume size")


def _snapshots(ctl: Controller) -> None:
    for snap in ctl.snapshot_names("vm1"):
        _safe(snap)
    ctl.snapshot("vm1", "snap1")


def _nodes(ctl: Controller) -> None:
    for node in ctl.nodes():
        _safe(node.name)


def _pool(ctl: Controller) -> None:
    _safe(ctl.pool_backing_object("n1", "pool1").replace("/", ""))


def test_one_input(data: bytes) -> None:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return  # the controller's JSON is parsed by python-linstor, not by us
    if not isinstance(doc, dict):
        return
    ctl = Controller("linstor://controller.invalid")
    ctl.api = FakeApi(doc)
    for step in (_replicas, _definitions, _snapshots, _nodes, _pool):
        try:
            step(ctl)
        except (ControllerError, UnknownResource) as exc:
            _common.one_line_str(exc)


if __name__ == "__main__":
    _common.run(test_one_input, "json")
    sys.exit(0)
