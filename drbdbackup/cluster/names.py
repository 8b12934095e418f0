"""Names of cluster objects (docs/format.md, "Cluster coordination objects"). Pure.

Keys and node names become single path segments: every character outside ``[A-Za-z0-9._-]``
(and ``~`` itself) is written as ``~XX`` per UTF-8 byte, and a kind prefix (``vol-``, ``rsc-``,
``grp-``) means a segment never starts with a dot. Volume ids (``linstor.rsc.0``) pass unchanged.
Listings always end their prefix with ``/``: ``claims/vol-a.1`` is a string prefix of
``claims/vol-a.10``.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass

ROOT = "cluster/"
MAX_SEGMENT = 160
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_ESCAPE_RE = re.compile(r"~([0-9A-F]{2})")
_ATTEMPT_RE = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.released)?$")
_SUB_RE = re.compile(r"^(0|[1-9][0-9]*)(\.released)?$")
_CYCLE_RE = re.compile(r"^(0|[1-9][0-9]*)$")
SNAPSHOT_PREFIX = "drbdbackup-"
_SNAPSHOT_RE = re.compile(r"^drbdbackup-([0-9a-f]{8})-([0-9]+)-([0-9]+)-([0-9a-f]{6})$")


class KeyKind(enum.StrEnum):
    """What a claim covers: one volume, one resource (all its volumes), or a consistency group."""

    VOLUME = "vol"
    RESOURCE = "rsc"
    GROUP = "grp"


def escape(text: str) -> str:
    """`text` as a path-safe segment body (reversible with `unescape`)."""
    out = []
    for ch in text:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"~{b:02X}" for b in ch.encode())
    return "".join(out)


def unescape(seg: str) -> str:
    """Inverse of `escape`."""
    raw = bytearray()
    i = 0
    while i < len(seg):
        m = _ESCAPE_RE.match(seg, i)
        if m:
            raw.append(int(m.group(1), 16))
            i = m.end()
        else:
            raw.extend(seg[i].encode())
            i += 1
    return raw.decode(errors="replace")


def segment(prefix: str, text: str) -> str:
    """A bounded path segment; over-long names are cut and suffixed with a hash (not reversible)."""
    body = escape(text)
    if not prefix and body.startswith("."):
        body = "~2E" + body[1:]
    if not prefix + body:
        raise ValueError("empty name")
    if len(prefix) + len(body) > MAX_SEGMENT:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        body = body[: MAX_SEGMENT - len(prefix) - 18].rstrip("~") + "~~" + digest
    return prefix + body


@dataclass(frozen=True, order=True)
class ClusterKey:
    """The unit of ownership: a volume id, a resource name or a consistency group name."""

    kind: KeyKind
    name: str

    @classmethod
    def volume(cls, volume_id: str) -> ClusterKey:
        return cls(KeyKind.VOLUME, volume_id)

    @classmethod
    def resource(cls, name: str) -> ClusterKey:
        return cls(KeyKind.RESOURCE, name)

    @classmethod
    def group(cls, name: str) -> ClusterKey:
        return cls(KeyKind.GROUP, name)

    @property
    def segment(self) -> str:
        return segment(self.kind.value + "-", self.name)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


def key_from_segment(seg: str) -> ClusterKey | None:
    """The key a segment names, or None (unknown kind or a hashed over-long name)."""
    kind_s, dash, body = seg.partition("-")
    if not dash or "~~" in body:
        return None
    try:
        kind = KeyKind(kind_s)
    except ValueError:
        return None
    return ClusterKey(kind, unescape(body))


def node_segment(node: str) -> str:
    return segment("", node)


# --- object names -------------------------------------------------------------------------


def agent_name(node: str) -> str:
    return f"{ROOT}agents/{node_segment(node)}"


def alarm_name(node: str) -> str:
    return f"{ROOT}alarms/{node_segment(node)}"


def claims_prefix(key: ClusterKey) -> str:
    return f"{ROOT}claims/{key.segment}/"


def claim_name(key: ClusterKey, cycle: int, attempt: int) -> str:
    return f"{claims_prefix(key)}{cycle}.{attempt}"


def release_name(key: ClusterKey, cycle: int, attempt: int) -> str:
    return claim_name(key, cycle, attempt) + ".released"


def commits_prefix(key: ClusterKey) -> str:
    return f"{ROOT}commits/{key.segment}/"


def commit_name(key: ClusterKey, cycle: int) -> str:
    return f"{commits_prefix(key)}{cycle}"


def floors_prefix(key: ClusterKey) -> str:
    return f"{ROOT}floors/{key.segment}/"


def floor_name(key: ClusterKey, cycle: int) -> str:
    return f"{floors_prefix(key)}{cycle}"


def members_prefix(group: ClusterKey) -> str:
    return f"{ROOT}members/{group.segment}/"


def member_attempt_prefix(group: ClusterKey, cycle: int, attempt: int) -> str:
    return f"{members_prefix(group)}{cycle}.{attempt}/"


def member_prefix(group: ClusterKey, cycle: int, attempt: int, member: str) -> str:
    return f"{member_attempt_prefix(group, cycle, attempt)}{segment('m-', member)}/"


def member_claim_name(group: ClusterKey, cycle: int, attempt: int, member: str, sub: int) -> str:
    return f"{member_prefix(group, cycle, attempt, member)}{sub}"


def member_release_name(group: ClusterKey, cycle: int, attempt: int, member: str, sub: int) -> str:
    return member_claim_name(group, cycle, attempt, member, sub) + ".released"


def member_ready_name(group: ClusterKey, cycle: int, attempt: int, member: str) -> str:
    return f"{member_prefix(group, cycle, attempt, member)}ready"


def probe_name() -> str:
    return f"{ROOT}probe/{secrets.token_hex(8)}"


# --- parsing listings ---------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class AttemptEntry:
    """One name below a claims prefix: claim `<k>.<n>` or its release marker."""

    cycle: int
    attempt: int
    released: bool


def parse_attempt(leaf: str) -> AttemptEntry | None:
    m = _ATTEMPT_RE.match(leaf)
    if not m:
        return None
    return AttemptEntry(int(m.group(1)), int(m.group(2)), m.group(3) is not None)


def parse_sub(leaf: str) -> tuple[int, bool] | None:
    """A member sub-claim leaf `<j>` / `<j>.released` -> (j, released)."""
    m = _SUB_RE.match(leaf)
    return (int(m.group(1)), m.group(2) is not None) if m else None


def parse_cycle(leaf: str) -> int | None:
    m = _CYCLE_RE.match(leaf)
    return int(m.group(1)) if m else None


def leaf(name: str) -> str:
    return name.rsplit("/", 1)[-1]


# --- snapshot names -----------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotTag:
    """What a drbdbackup snapshot name says about the claim that made it."""

    repo8: str
    cycle: int
    attempt: int
    nonce: str


def snapshot_name(repository_id: str, cycle: int, attempt: int, nonce: str | None = None) -> str:
    """`drbdbackup-<repo id 8 hex>-<k>-<n>-<6 hex>`: at most 48 characters for k < 10^12."""
    return f"{SNAPSHOT_PREFIX}{repository_id[:8].lower()}-{cycle}-{attempt}-{nonce or secrets.token_hex(3)}"


def parse_snapshot(name: str) -> SnapshotTag | None:
    m = _SNAPSHOT_RE.match(name)
    if not m:
        return None
    return SnapshotTag(m.group(1), int(m.group(2)), int(m.group(3)), m.group(4))
