"""A cluster view for `status` and `GET /v1/cluster`: agents as this observer sees them, and
per key its newest cycle, who holds or committed it. Read-only."""

from __future__ import annotations

from dataclasses import dataclass

from drbdbackup.cluster.agent import AgentLife
from drbdbackup.cluster.claims import Step, decide
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.store import ClusterStore


@dataclass(frozen=True)
class AgentView:
    node: str
    instance: str | None
    seq: int
    last_heartbeat: str  # the agent's own display time (never compared)
    unchanged_for_s: float  # on this observer's monotonic clock
    alive: bool


@dataclass(frozen=True)
class KeyView:
    key: ClusterKey
    cycle: int
    state: str  # committed | held | claimable | pruned
    attempt: int | None
    node: str | None  # the committer, or the holder of the newest attempt
    holder_alive: bool | None
    generation: str | None
    released_attempts: int
    last_committed_cycle: int | None
    last_committed_node: str | None


@dataclass(frozen=True)
class AlarmView:
    """Two live agents were seen under one node name (both stopped)."""

    node: str
    instances: tuple[str, ...]
    message: str
    time: str


@dataclass(frozen=True)
class ClusterState:
    node: str
    instance: str
    store_time: float
    agents: tuple[AgentView, ...]
    keys: tuple[KeyView, ...]
    alarms: tuple[AlarmView, ...] = ()


def cluster_state(store: ClusterStore, life: AgentLife) -> ClusterState:
    """Observe heartbeats once more, then summarize every key's newest cycle."""
    beats = {hb.node: hb for hb in life.observe()}
    agents = tuple(
        AgentView(a.node, a.instance, a.seq, beats[a.node].time if a.node in beats else "",
                  round(a.unchanged_for, 3), life.alive(a.node))
        for a in life.agents()
    )
    keys = []
    for key in store.all_keys():
        entries = store.claim_entries(key)
        committed = store.committed_cycles(key)
        cycles = {e.cycle for e in entries} | set(committed)
        if not cycles:
            continue
        cycle = max(cycles)
        view = store.cycle_view(key, cycle)
        d = decide(view, life.is_dead)
        last_rec = store.read_commit(key, committed[-1]) if committed else None
        generation = None
        node = d.holder.node if d.holder else None
        alive = None if d.holder is None else not life.is_dead(d.holder)
        if d.step is Step.COMMITTED:
            rec = store.read_commit(key, cycle)
            generation = rec.generation if rec else None
        keys.append(KeyView(
            key, cycle, d.step.value, d.attempt, node, alive, generation,
            sum(1 for a in view.attempts if a.released),
            last_rec.cycle if last_rec else None, last_rec.node if last_rec else None))
    alarms = tuple(AlarmView(a.node, a.instances, a.message, a.time) for a in store.alarms())
    return ClusterState(life.node, life.instance, life.store_now(), agents, tuple(keys), alarms)
