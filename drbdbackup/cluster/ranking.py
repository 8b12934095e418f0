"""Who should claim a key first. Pure.

Eligible: a node with an UpToDate diskful replica, ONLINE in the controller, whose agent is alive.
Rank 0 is the node of the previous generation while it is eligible (native maps stay valid);
the others follow by load, then by a hash of (key, node) so that keys spread evenly, then by name.
A node that already gave up or died holding this cycle goes after every other node. An agent of
rank r waits r x d before claiming. Ranks only order attempts: the claim itself is decided by
create-exclusive names, so observers that disagree on a rank lose time, never safety.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from drbdbackup.cluster.names import ClusterKey


@dataclass(frozen=True)
class Candidate:
    """One node holding a replica of the key's volume(s), with what is known about it."""

    node: str
    up_to_date_diskful: bool
    online: bool
    agent_alive: bool

    @property
    def eligible(self) -> bool:
        return self.up_to_date_diskful and self.online and self.agent_alive


@dataclass(frozen=True)
class NodeLoad:
    """How many keys a node currently owns (or is asked to carry)."""

    node: str
    load: int


def eligible_nodes(candidates: Iterable[Candidate]) -> tuple[str, ...]:
    return tuple(sorted({c.node for c in candidates if c.eligible}))


def spread_hash(key: ClusterKey, node: str) -> int:
    """A stable pseudo-random order of nodes per key."""
    digest = hashlib.blake2b(f"{key.kind.value}\0{key.name}\0{node}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


@dataclass(frozen=True)
class Ranking:
    """Rank i is `order[i]`."""

    key: ClusterKey
    order: tuple[str, ...]

    def rank_of(self, node: str) -> int | None:
        """The node's rank, or None when it is not eligible."""
        try:
            return self.order.index(node)
        except ValueError:
            return None

    def delay(self, node: str, step_s: float) -> float | None:
        """Seconds `node` waits (rank x d) before it claims."""
        rank = self.rank_of(node)
        return None if rank is None else rank * step_s


def rank_nodes(
    key: ClusterKey,
    eligible: Iterable[str],
    previous: str | None,
    loads: Iterable[NodeLoad] = (),
    failed: Iterable[str] = (),
) -> Ranking:
    """Rank the eligible nodes of `key` (see the module docstring).

    `failed`: nodes that released this cycle's claim or died holding it (a node may appear once
    per failure; more failures rank it later).
    """
    nodes = sorted(set(eligible))
    load_of: dict[str, int] = {}
    for nl in loads:
        load_of[nl.node] = load_of.get(nl.node, 0) + nl.load
    failures: dict[str, int] = {}
    for f in failed:
        failures[f] = failures.get(f, 0) + 1

    def order_key(node: str) -> tuple[int, int, int, int, str]:
        sticky = 0 if node == previous else 1
        return (failures.get(node, 0), sticky, load_of.get(node, 0), spread_hash(key, node), node)

    return Ranking(key, tuple(sorted(nodes, key=order_key)))


class RankGate:
    """When an opportunity (a claimable attempt) was first seen; rank r may act r x d later.

    Counted on the observer's monotonic clock from its own first sight, so no clocks compare.
    """

    def __init__(self, step_s: float, capacity: int = 4096) -> None:
        self.step_s = step_s
        self.capacity = capacity
        self._first: dict[Hashable, float] = {}

    def open(self, token: Hashable, rank: int, now: float) -> bool:
        first = self._first.setdefault(token, now)
        if len(self._first) > self.capacity:
            for old in list(self._first)[: len(self._first) - self.capacity]:
                del self._first[old]
        return now - first >= rank * self.step_s
