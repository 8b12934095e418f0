"""Object names: key encoding, claim/commit names, snapshot names."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from drbdbackup.cluster import names as N
from drbdbackup.cluster.names import ClusterKey, KeyKind

VOLUME_IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
ANY_NAME = st.text(min_size=1, max_size=100)
KEYS = st.builds(ClusterKey, st.sampled_from(list(KeyKind)), ANY_NAME)


@given(ANY_NAME)
def test_escape_roundtrip(text: str) -> None:
    assert N.unescape(N.escape(text)) == text
    assert re.fullmatch(r"[A-Za-z0-9._~-]*", N.escape(text))


@given(KEYS)
def test_key_segment_is_one_safe_path_component(key: ClusterKey) -> None:
    seg = key.segment
    assert "/" not in seg and not seg.startswith(".") and len(seg) <= N.MAX_SEGMENT
    assert seg not in (".", "..")
    back = N.key_from_segment(seg)
    assert back is None or back == key
    if len(N.escape(key.name)) + 4 <= N.MAX_SEGMENT:
        assert back == key


@given(VOLUME_IDS)
def test_volume_ids_pass_unchanged(vid: str) -> None:
    assert ClusterKey.volume(vid).segment == "vol-" + vid


@given(KEYS, KEYS)
def test_distinct_keys_distinct_segments(a: ClusterKey, b: ClusterKey) -> None:
    if a != b:
        assert a.segment != b.segment


def test_long_names_are_hashed_and_bounded() -> None:
    a, b = ClusterKey.group("x" * 500), ClusterKey.group("x" * 499 + "y")
    assert len(a.segment) <= N.MAX_SEGMENT and a.segment != b.segment
    assert N.key_from_segment(a.segment) is None


def test_listing_prefix_ends_with_slash() -> None:
    """`claims/vol-a.1` is a string prefix of `claims/vol-a.10`: listings use a trailing '/'."""
    one, ten = ClusterKey.volume("linstor.rsc.1"), ClusterKey.volume("linstor.rsc.10")
    assert not N.claim_name(ten, 5, 0).startswith(N.claims_prefix(one))
    assert N.claim_name(one, 5, 0) == "cluster/claims/vol-linstor.rsc.1/5.0"
    assert N.release_name(one, 5, 2) == "cluster/claims/vol-linstor.rsc.1/5.2.released"
    assert N.commit_name(one, 5) == "cluster/commits/vol-linstor.rsc.1/5"


@given(st.integers(0, 10**12), st.integers(0, 10**6), st.booleans())
def test_attempt_names_parse(k: int, n: int, released: bool) -> None:
    key = ClusterKey.volume("v")
    name = N.release_name(key, k, n) if released else N.claim_name(key, k, n)
    assert N.parse_attempt(N.leaf(name)) == N.AttemptEntry(k, n, released)


def test_attempt_parse_rejects_junk() -> None:
    for junk in ("1", "a.b", "01.2", "1.02", "1.2.rel", "1.2.released.tmp", ""):
        assert N.parse_attempt(junk) is None
    assert N.parse_cycle("12") == 12 and N.parse_cycle("012") is None
    assert N.parse_sub("3.released") == (3, True) and N.parse_sub("ready") is None


@given(st.integers(0, 10**12 - 1), st.integers(0, 999))
def test_snapshot_name_fits_linstor_and_parses(k: int, n: int) -> None:
    name = N.snapshot_name(REPO := "ABCDEF0123" + "0" * 54, k, n)
    assert len(name) <= 48 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name)
    tag = N.parse_snapshot(name)
    assert tag is not None and (tag.repo8, tag.cycle, tag.attempt) == (REPO[:8].lower(), k, n)


def test_snapshot_names_are_unique_per_claim() -> None:
    assert N.snapshot_name("a" * 64, 1, 0) != N.snapshot_name("a" * 64, 1, 0)
    assert N.parse_snapshot("drbdbackup-20261125T124000123456Z-1a2b3c4d") is None


def test_node_names() -> None:
    assert N.agent_name("node-1") == "cluster/agents/node-1"
    assert N.agent_name("..") == "cluster/agents/~2E."
    assert N.agent_name("a/b") == "cluster/agents/a~2Fb"
