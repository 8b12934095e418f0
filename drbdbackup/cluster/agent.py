"""One agent's presence: its heartbeat, what it observes of the others, the store's clock.

Every h the agent lists `cluster/agents/` and feeds each heartbeat to its liveness tracker
(judged on its own monotonic clock), checks that its own heartbeat object still carries its own
instance id (another instance there after our first write = two agents with one node name: alarm
and stop), rewrites its heartbeat with seq + 1 and samples the store's clock from the object's
modification time.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drbdbackup.cluster import names as N
from drbdbackup.cluster.claims import Holder
from drbdbackup.cluster.cycle import StoreClock
from drbdbackup.cluster.errors import DuplicateAgent
from drbdbackup.cluster.liveness import AgentLiveness, LivenessTracker
from drbdbackup.cluster.schema import Alarm, Heartbeat
from drbdbackup.cluster.store import ClusterStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSettings:
    """h, L, d and how many cycles prune keeps (seconds unless named otherwise)."""

    heartbeat_s: float = 10.0
    liveness_s: float = 60.0
    rank_step_s: float = 15.0
    keep_cycles: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.liveness_s:
            raise ValueError("need 0 < heartbeat interval < liveness timeout")
        if self.rank_step_s < 0 or self.keep_cycles < 1:
            raise ValueError("rank step must be >= 0 and keep_cycles >= 1")

    def takeover_bound(self, rank: int) -> float:
        """L + h + rank x d: how long a key can stay unclaimed after its holder dies."""
        return self.liveness_s + self.heartbeat_s + rank * self.rank_step_s


@dataclass(frozen=True)
class Clocks:
    """Injectable clocks: `monotonic` decides liveness; `wall` (+ offset) is display only."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    wall_offset_s: float = 0.0

    def wall_now(self) -> float:
        return self.wall() + self.wall_offset_s

    def iso_now(self) -> str:
        return datetime.fromtimestamp(self.wall_now(), UTC).isoformat()


@dataclass
class AgentLife:
    """Heartbeat writer and observer for one (node, instance)."""

    store: ClusterStore
    node: str
    settings: ClusterSettings = field(default_factory=ClusterSettings)
    clocks: Clocks = field(default_factory=Clocks)
    instance: str = field(default_factory=lambda: secrets.token_hex(8))

    def __post_init__(self) -> None:
        self.tracker = LivenessTracker(self.settings.liveness_s)
        self.store_clock = StoreClock()
        self.seq = 0
        self.started = self.clocks.iso_now()
        self.stopped: str | None = None
        self._lock = threading.Lock()  # one heartbeat round at a time
        self._tlock = threading.RLock()  # the tracker is read from worker threads
        self._warned_clock = False

    @property
    def me(self) -> Holder:
        return Holder(self.node, self.instance)

    def check_running(self) -> None:
        if self.stopped:
            raise DuplicateAgent(self.stopped)

    def _stop(self, other: str) -> None:
        msg = (f"two agents run as node {self.node!r} (instances {self.instance} and {other}): "
               "stopped; give each agent its own node name")
        self.stopped = msg
        log.error("%s", msg)
        raise DuplicateAgent(msg)

    def heartbeat(self) -> None:
        """One heartbeat round (see the module docstring). Raises DuplicateAgent."""
        with self._lock:
            self.check_running()
            alarm = self.store.read_alarm(self.node)
            if alarm is not None and self.instance in alarm.instances:
                others = [i for i in alarm.instances if i != self.instance]
                self._stop(others[0] if others else "?")
            beats = self.observe()
            own = next((hb for hb in beats if hb.node == self.node), None)
            if own is not None and own.instance != self.instance:
                if self.seq > 0:
                    self.store.write_alarm(Alarm(self.node, (self.instance, own.instance),
                                                 "two live agents use this node name",
                                                 self.clocks.iso_now()))
                    self._stop(own.instance)
                log.info("node %s: taking over from instance %s (seq %d)", self.node,
                         own.instance, own.seq)
            self.seq += 1
            hb = Heartbeat(self.node, self.instance, self.seq, self.clocks.iso_now(), self.started,
                           socket.gethostname(), os.getpid())
            before = self.clocks.monotonic()
            self.store.write_heartbeat(hb)
            after = self.clocks.monotonic()
            with self._tlock:
                self.tracker.observe(self.node, self.instance, self.seq, after)
            mtime = self.store.mtime(N.agent_name(self.node))
            if mtime is not None:
                self.store_clock.sample(mtime, (before + after) / 2)

    def observe(self) -> list[Heartbeat]:
        """Read every heartbeat into the tracker (nodes whose object vanished count as absent)."""
        beats = self.store.heartbeats()
        at = self.clocks.monotonic()
        seen = {hb.node for hb in beats}
        with self._tlock:
            for hb in beats:
                self.tracker.observe(hb.node, hb.instance, hb.seq, at)
            for view in self.tracker.views(at):
                if view.node not in seen:
                    self.tracker.observe_absent(view.node, at)
        return beats

    def is_dead(self, holder: Holder) -> bool:
        """Whether a claim holder is dead to this observer (never ourselves)."""
        if holder == self.me:
            return False
        at = self.clocks.monotonic()
        with self._tlock:
            if not self.tracker.known(holder.node):
                self.tracker.note(holder.node, at)
            return self.tracker.instance_dead(holder.node, holder.instance, at)

    def alive(self, node: str) -> bool:
        if node == self.node:
            return True
        with self._tlock:
            return self.tracker.node_alive(node, self.clocks.monotonic())

    def dead_agents(self) -> tuple[str, ...]:
        with self._tlock:
            dead = self.tracker.dead_nodes(self.clocks.monotonic())
        return tuple(n for n in dead if n != self.node)

    def agents(self) -> tuple[AgentLiveness, ...]:
        with self._tlock:
            return self.tracker.views(self.clocks.monotonic())

    def store_now(self) -> float:
        """The store's clock; before a sample (or without `mtime`), the local wall clock."""
        now = self.store_clock.now(self.clocks.monotonic())
        if now is not None:
            return now
        if not self._warned_clock:
            self._warned_clock = True
            log.warning("the repository backend reports no modification times: cycles follow "
                        "this host's clock (safety is unaffected; skewed agents may disagree on "
                        "the current cycle)")
        return self.clocks.wall_now()
