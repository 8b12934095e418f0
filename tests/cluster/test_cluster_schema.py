"""Object bodies: round trips, tolerance of unknown fields, refusal of garbage."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drbdbackup.cluster.errors import BadClusterObject
from drbdbackup.cluster.names import ClusterKey, KeyKind
from drbdbackup.cluster.schema import (
    Alarm,
    ClaimRecord,
    CommitRecord,
    Heartbeat,
    MemberClaimRecord,
    MemberCommit,
    MemberReady,
    ReleaseRecord,
)

TEXT = st.text(max_size=30)
KEYS = st.builds(ClusterKey, st.sampled_from(list(KeyKind)), st.text(min_size=1, max_size=30))
NAT = st.integers(0, 2**40)


@given(TEXT, TEXT, NAT, TEXT, st.integers(0, 2**22))
def test_heartbeat_roundtrip(node: str, inst: str, seq: int, t: str, pid: int) -> None:
    hb = Heartbeat(node, inst, seq, t, t, "host", pid)
    assert Heartbeat.from_bytes(hb.to_bytes()) == hb


@given(KEYS, NAT, NAT, TEXT, TEXT, st.lists(TEXT, max_size=4))
def test_claim_roundtrip(key: ClusterKey, k: int, n: int, inst: str, node: str,
                         members: list[str]) -> None:
    rec = ClaimRecord(key, k, n, inst, node, "drbdbackup-x", "t", tuple(members))
    assert ClaimRecord.from_bytes(rec.to_bytes()) == rec


@given(KEYS, NAT, NAT, st.one_of(st.none(), TEXT),
       st.lists(st.builds(MemberCommit, TEXT, TEXT, TEXT), max_size=3))
def test_commit_roundtrip(key: ClusterKey, k: int, n: int, gen: str | None,
                          members: list[MemberCommit]) -> None:
    rec = CommitRecord(key, k, n, "i", "node", "snap", gen, "t", tuple(members))
    assert CommitRecord.from_bytes(rec.to_bytes()) == rec


@given(st.binary(max_size=200))
def test_member_ready_payload_roundtrip(payload: bytes) -> None:
    rec = MemberReady("m", 2, "i", "n", "gen", payload, "t")
    assert MemberReady.from_bytes(rec.to_bytes()) == rec


def test_small_records_roundtrip() -> None:
    for rec in (Alarm("n", ("a", "b"), "msg", "t"), ReleaseRecord("i", "n", "why", "t"),
                MemberClaimRecord("m", 1, "i", "n", "t")):
        assert type(rec).from_bytes(rec.to_bytes()) == rec


def test_unknown_fields_are_ignored_and_format_is_written() -> None:
    rec = ReleaseRecord("i", "n", "why", "t")
    body = json.loads(rec.to_bytes())
    assert body["format"] == 1
    body["future"] = {"x": 1}
    assert ReleaseRecord.from_bytes(json.dumps(body).encode()) == rec


@pytest.mark.parametrize("data", [b"", b"\xff", b"[]", b"{}", b'{"node": "n"}', b"null",
                                  b'{"key": {"kind": "bogus", "name": "x"}}'])
def test_garbage_is_refused(data: bytes) -> None:
    for cls in (Heartbeat, ClaimRecord, CommitRecord, MemberReady, Alarm, MemberClaimRecord):
        with pytest.raises(BadClusterObject):
            cls.from_bytes(data)  # type: ignore[attr-defined]
