"""The JSON bodies of cluster objects (docs/format.md, "Cluster coordination objects").

Every body is a UTF-8 JSON object with `"format": 1`; readers ignore fields they do not know.
Times (`time`, `started`) are for display only: no decision ever reads them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from drbdbackup.cluster.errors import BadClusterObject
from drbdbackup.cluster.names import ClusterKey, KeyKind

FORMAT = 1
T = TypeVar("T")


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps({"format": FORMAT, **body}, sort_keys=True).encode()


def _load(data: bytes, what: str, build: Callable[[dict[str, Any]], T]) -> T:
    try:
        obj = json.loads(data.decode())
        if not isinstance(obj, dict):
            raise TypeError("not an object")
        return build(obj)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise BadClusterObject(f"unreadable {what}: {exc}") from None


def _key_json(key: ClusterKey) -> dict[str, str]:
    return {"kind": key.kind.value, "name": key.name}


def _key_from(obj: dict[str, Any]) -> ClusterKey:
    return ClusterKey(KeyKind(obj["kind"]), str(obj["name"]))


@dataclass(frozen=True)
class Heartbeat:
    """`cluster/agents/<node>`: rewritten every h by the agent of `node`."""

    node: str
    instance: str
    seq: int
    time: str
    started: str
    hostname: str
    pid: int

    def to_bytes(self) -> bytes:
        return _dump({"node": self.node, "instance": self.instance, "seq": self.seq,
                      "time": self.time, "started": self.started, "hostname": self.hostname,
                      "pid": self.pid})

    @classmethod
    def from_bytes(cls, data: bytes) -> Heartbeat:
        return _load(data, "heartbeat", lambda o: cls(
            str(o["node"]), str(o["instance"]), int(o["seq"]), str(o.get("time", "")),
            str(o.get("started", "")), str(o.get("hostname", "")), int(o.get("pid", 0))))


@dataclass(frozen=True)
class Alarm:
    """`cluster/alarms/<node>`: two live instances were seen under one node name."""

    node: str
    instances: tuple[str, ...]
    message: str
    time: str

    def to_bytes(self) -> bytes:
        return _dump({"node": self.node, "instances": list(self.instances),
                      "message": self.message, "time": self.time})

    @classmethod
    def from_bytes(cls, data: bytes) -> Alarm:
        return _load(data, "alarm", lambda o: cls(
            str(o["node"]), tuple(str(i) for i in o["instances"]), str(o.get("message", "")),
            str(o.get("time", ""))))


@dataclass(frozen=True)
class ClaimRecord:
    """`cluster/claims/<key>/<k>.<n>` (create-exclusive, never rewritten)."""

    key: ClusterKey
    cycle: int
    attempt: int
    instance: str
    node: str
    snapshot: str
    time: str
    members: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        return _dump({"key": _key_json(self.key), "cycle": self.cycle, "attempt": self.attempt,
                      "instance": self.instance, "node": self.node, "snapshot": self.snapshot,
                      "time": self.time, "members": list(self.members)})

    @classmethod
    def from_bytes(cls, data: bytes) -> ClaimRecord:
        return _load(data, "claim", lambda o: cls(
            _key_from(o["key"]), int(o["cycle"]), int(o["attempt"]), str(o["instance"]),
            str(o["node"]), str(o["snapshot"]), str(o.get("time", "")),
            tuple(str(m) for m in o.get("members", []))))


@dataclass(frozen=True)
class ReleaseRecord:
    """`<claim>.released`: the holder gave the claim up (create-exclusive)."""

    instance: str
    node: str
    reason: str
    time: str

    def to_bytes(self) -> bytes:
        return _dump({"instance": self.instance, "node": self.node, "reason": self.reason,
                      "time": self.time})

    @classmethod
    def from_bytes(cls, data: bytes) -> ReleaseRecord:
        return _load(data, "release marker", lambda o: cls(
            str(o.get("instance", "")), str(o.get("node", "")), str(o.get("reason", "")),
            str(o.get("time", ""))))


@dataclass(frozen=True)
class MemberCommit:
    """One member of a committed consistency-group generation."""

    member: str
    node: str
    generation: str

    def to_json(self) -> dict[str, str]:
        return {"member": self.member, "node": self.node, "generation": self.generation}


@dataclass(frozen=True)
class CommitRecord:
    """`cluster/commits/<key>/<k>`: the fence, create-exclusive, written before the record."""

    key: ClusterKey
    cycle: int
    attempt: int
    instance: str
    node: str
    snapshot: str
    generation: str | None
    time: str
    members: tuple[MemberCommit, ...] = ()

    def to_bytes(self) -> bytes:
        return _dump({"key": _key_json(self.key), "cycle": self.cycle, "attempt": self.attempt,
                      "instance": self.instance, "node": self.node, "snapshot": self.snapshot,
                      "generation": self.generation, "time": self.time,
                      "members": [m.to_json() for m in self.members]})

    @classmethod
    def from_bytes(cls, data: bytes) -> CommitRecord:
        return _load(data, "commit", lambda o: cls(
            _key_from(o["key"]), int(o["cycle"]), int(o["attempt"]), str(o["instance"]),
            str(o["node"]), str(o.get("snapshot", "")),
            None if o.get("generation") is None else str(o["generation"]), str(o.get("time", "")),
            tuple(MemberCommit(str(m["member"]), str(m["node"]), str(m["generation"]))
                  for m in o.get("members", []))))


@dataclass(frozen=True)
class MemberClaimRecord:
    """`cluster/members/<group>/<k>.<n>/m-<member>/<j>`: a member sub-claim (create-exclusive)."""

    member: str
    sub: int
    instance: str
    node: str
    time: str

    def to_bytes(self) -> bytes:
        return _dump({"member": self.member, "sub": self.sub, "instance": self.instance,
                      "node": self.node, "time": self.time})

    @classmethod
    def from_bytes(cls, data: bytes) -> MemberClaimRecord:
        return _load(data, "member claim", lambda o: cls(
            str(o["member"]), int(o["sub"]), str(o["instance"]), str(o["node"]),
            str(o.get("time", ""))))


@dataclass(frozen=True)
class MemberReady:
    """`.../m-<member>/ready`: the member's commit within one group attempt (create-exclusive).

    `payload` is opaque to the coordinator (e.g. the member's staged generation record).
    """

    member: str
    sub: int
    instance: str
    node: str
    generation: str
    payload: bytes
    time: str

    def to_bytes(self) -> bytes:
        return _dump({"member": self.member, "sub": self.sub, "instance": self.instance,
                      "node": self.node, "generation": self.generation,
                      "payload": base64.b64encode(self.payload).decode(), "time": self.time})

    @classmethod
    def from_bytes(cls, data: bytes) -> MemberReady:
        return _load(data, "member ready marker", lambda o: cls(
            str(o["member"]), int(o["sub"]), str(o["instance"]), str(o["node"]),
            str(o["generation"]), base64.b64decode(str(o.get("payload", "")), validate=True),
            str(o.get("time", ""))))


@dataclass(frozen=True)
class FloorRecord:
    """`cluster/floors/<key>/<k>`: cycles below k were pruned; nothing below it may commit."""

    cycle: int
    node: str
    time: str

    def to_bytes(self) -> bytes:
        return _dump({"cycle": self.cycle, "node": self.node, "time": self.time})
