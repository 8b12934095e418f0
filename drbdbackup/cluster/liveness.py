"""Liveness as one observer sees it. Pure: fed observations stamped with the observer's own
monotonic clock; never compares a writer's timestamp with a local clock.

An agent is dead to an observer when the (instance, seq) of its heartbeat has not changed for
`timeout` (L) seconds of the observer's monotonic time. A claim holder is dead when its node's
heartbeat now carries another instance (the agent was replaced), or when it is stale as above.
A node first seen without a heartbeat object counts from that first sight.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Seen:
    instance: str | None  # None: no heartbeat object
    seq: int
    changed_at: float  # observer monotonic time of the last change, or of the first sight


@dataclass(frozen=True)
class AgentLiveness:
    """One node as this observer sees it."""

    node: str
    instance: str | None
    seq: int
    unchanged_for: float
    alive: bool


class LivenessTracker:
    """Per-observer heartbeat tracker; `timeout` is L in seconds."""

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("liveness timeout must be positive")
        self.timeout = timeout
        self._seen: dict[str, _Seen] = {}

    def observe(self, node: str, instance: str | None, seq: int, at: float) -> None:
        """Record what `node`'s heartbeat object holds at observer time `at` (None: absent)."""
        rec = self._seen.get(node)
        if rec is None:
            self._seen[node] = _Seen(instance, seq, at)
        elif (rec.instance, rec.seq) != (instance, seq):
            rec.instance, rec.seq = instance, seq
            rec.changed_at = max(rec.changed_at, at)

    def observe_absent(self, node: str, at: float) -> None:
        self.observe(node, None, -1, at)

    def note(self, node: str, at: float) -> None:
        """Start counting for a node known only from a claim (first sight = now)."""
        if node not in self._seen:
            self._seen[node] = _Seen(None, -1, at)

    def known(self, node: str) -> bool:
        return node in self._seen

    def _stale(self, rec: _Seen, at: float) -> bool:
        return at - rec.changed_at >= self.timeout

    def node_alive(self, node: str, at: float) -> bool:
        """An agent runs on `node` (a heartbeat that changed within L). Unknown: not alive."""
        rec = self._seen.get(node)
        return rec is not None and rec.instance is not None and not self._stale(rec, at)

    def instance_dead(self, node: str, instance: str, at: float) -> bool:
        """Whether the holder (`node`, `instance`) is dead. Unknown nodes are not (yet) dead."""
        rec = self._seen.get(node)
        if rec is None:
            return False
        if rec.instance is not None and rec.instance != instance:
            return True
        return self._stale(rec, at)

    def dead_nodes(self, at: float) -> tuple[str, ...]:
        return tuple(sorted(n for n in self._seen if not self.node_alive(n, at)))

    def views(self, at: float) -> tuple[AgentLiveness, ...]:
        return tuple(
            AgentLiveness(n, r.instance, r.seq, max(0.0, at - r.changed_at), self.node_alive(n, at))
            for n, r in sorted(self._seen.items())
        )
