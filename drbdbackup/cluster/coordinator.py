"""The per-agent coordinator the service calls (blocking; run it in worker threads).

Per cycle k and key: `rank()` -> wait via repeated `try_claim()` (it enforces rank x d itself)
-> snapshot named `claim.snapshot` -> back up -> `commit()` (the fence) -> write the record; on
any failure before the commit, `release()` at once. `heartbeat()` runs every h meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from drbdbackup.cluster import names as N
from drbdbackup.cluster.agent import AgentLife, Clocks, ClusterSettings
from drbdbackup.cluster.claims import (
    Decision,
    Disposition,
    Step,
    commit_refusal,
    decide,
    failed_nodes,
    prune_plan,
    snapshot_disposition,
)
from drbdbackup.cluster.cycle import Schedule, current_cycle
from drbdbackup.cluster.errors import BadClusterObject, Fenced
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.ranking import (
    Candidate,
    NodeLoad,
    RankGate,
    Ranking,
    eligible_nodes,
    rank_nodes,
)
from drbdbackup.cluster.schema import (
    ClaimRecord,
    CommitRecord,
    FloorRecord,
    MemberCommit,
    ReleaseRecord,
)
from drbdbackup.cluster.status import ClusterState, cluster_state
from drbdbackup.cluster.store import ClusterStore
from drbdbackup.repo.backend import Backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A claim this agent holds: attempt `attempt` of cycle `cycle` of `key`."""

    key: ClusterKey
    cycle: int
    attempt: int
    node: str
    instance: str
    snapshot: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyOwner:
    """The newest committed cycle of a key and the node that committed it."""

    key: ClusterKey
    cycle: int
    node: str


@dataclass(frozen=True)
class PrunedKey:
    key: ClusterKey
    floor: int
    removed_objects: int


class Coordinator:
    """Claims, fencing commits and releases for one agent (node + instance). Thread-safe."""

    def __init__(self, backend: Backend, node: str, repository_id: str,
                 settings: ClusterSettings | None = None, clocks: Clocks | None = None,
                 instance: str | None = None) -> None:
        self.store = ClusterStore(backend)
        self.settings = settings or ClusterSettings()
        self.clocks = clocks or Clocks()
        life_kw = {"instance": instance} if instance else {}
        self.life = AgentLife(self.store, node, self.settings, self.clocks, **life_kw)
        self.repository_id = repository_id
        self.gate = RankGate(self.settings.rank_step_s)
        self._gate_lock = threading.Lock()
        self._owners: tuple[float, tuple[KeyOwner, ...]] | None = None

    @property
    def node(self) -> str:
        return self.life.node

    @property
    def instance(self) -> str:
        return self.life.instance

    # --- presence --------------------------------------------------------------------

    def start(self) -> None:
        """Refuse a backend without exclusive create, then write the first heartbeat."""
        self.store.check_exclusive_create()
        self.heartbeat()

    def heartbeat(self) -> None:
        """Call every `settings.heartbeat_s`. Raises DuplicateAgent (stop the service)."""
        self.life.heartbeat()

    def dead_agents(self) -> tuple[str, ...]:
        return self.life.dead_agents()

    def alive(self, node: str) -> bool:
        return self.life.alive(node)

    def store_now(self) -> float:
        return self.life.store_now()

    def state(self) -> ClusterState:
        """The cluster view (agents, and per key its newest cycle)."""
        return cluster_state(self.store, self.life)

    def current_cycle(self, schedule: Schedule) -> int | None:
        """k of the schedule slot current on the store's clock."""
        return current_cycle(schedule, self.store_now())

    # --- ranking ---------------------------------------------------------------------

    def owners(self, max_age_s: float | None = None) -> tuple[KeyOwner, ...]:
        """Each key's newest commit (cached for up to one heartbeat interval)."""
        age = self.settings.heartbeat_s if max_age_s is None else max_age_s
        now = self.clocks.monotonic()
        if self._owners is not None and now - self._owners[0] < age:
            return self._owners[1]
        out = []
        for key, cycle in self.store.latest_commits():
            try:
                rec = self.store.read_commit(key, cycle)
            except BadClusterObject:
                continue
            if rec is not None:
                out.append(KeyOwner(key, rec.cycle, rec.node))
        self._owners = (now, tuple(out))
        return self._owners[1]

    def previous_node(self, key: ClusterKey) -> str | None:
        return next((o.node for o in self.owners() if o.key == key), None)

    def rank(self, key: ClusterKey, cycle: int, candidates: Iterable[Candidate]) -> Ranking:
        """Rank eligible nodes; pass candidates with `agent_alive=self.alive(node)`."""
        owners = self.owners()
        loads: dict[str, int] = {}
        for o in owners:
            if o.key != key:
                loads[o.node] = loads.get(o.node, 0) + 1
        view = self.store.cycle_view(key, cycle, with_floor=False)
        return rank_nodes(key, eligible_nodes(candidates), self.previous_node(key),
                          [NodeLoad(n, v) for n, v in loads.items()],
                          failed_nodes(view.attempts, self.life.is_dead))

    # --- claims ----------------------------------------------------------------------

    def cycle_state(self, key: ClusterKey, cycle: int) -> Decision:
        """COMMITTED / PRUNED (cycle over), HELD (by `holder`), or CLAIMABLE."""
        return decide(self.store.cycle_view(key, cycle), self.life.is_dead)

    def try_claim(self, key: ClusterKey, cycle: int, rank: int,
                  members: tuple[str, ...] = ()) -> Claim | None:
        """Claim (key, cycle) if it is claimable and this agent has waited rank x d since it
        first saw it claimable; None otherwise (call again after a while). Returns the claim
        this agent already holds, if any. `members`: a consistency group's member names."""
        self.life.check_running()
        view = self.store.cycle_view(key, cycle)
        d = decide(view, self.life.is_dead)
        if d.step is Step.HELD and d.holder == self.life.me and d.attempt is not None:
            rec = self.store.read_claim(key, cycle, d.attempt)
            return self._claim(rec) if rec else None
        if d.step is not Step.CLAIMABLE or d.attempt is None:
            return None
        if not self.gate_open(("claim", key, cycle, d.attempt), rank):
            return None
        if self._later_commit(key, cycle) is not None:  # too late: would be older than newest
            return None
        rec = ClaimRecord(key, cycle, d.attempt, self.instance, self.node,
                          N.snapshot_name(self.repository_id, cycle, d.attempt),
                          self.clocks.iso_now(), tuple(members))
        if not self.store.create_claim(rec):
            log.debug("claim %s %d.%d lost the race", key, cycle, d.attempt)
            return None
        why = "" if d.holder is None else f" (after {d.holder.node})"
        log.info("claimed %s cycle %d attempt %d%s", key, cycle, d.attempt, why)
        return self._claim(rec)

    def gate_open(self, token: Hashable, rank: int) -> bool:
        """Whether rank x d has passed since this agent first saw `token` claimable."""
        with self._gate_lock:
            return self.gate.open(token, rank, self.clocks.monotonic())

    @staticmethod
    def _claim(rec: ClaimRecord) -> Claim:
        return Claim(rec.key, rec.cycle, rec.attempt, rec.node, rec.instance, rec.snapshot,
                     rec.members)

    def commit(self, claim: Claim, generation: str | None,
               members: tuple[MemberCommit, ...] = ()) -> CommitRecord:
        """The fence: create `commits/<key>/<k>` before writing the generation record.

        Raises Fenced when this claim may not commit (committed by another attempt, taken over,
        released, or pruned): then write no record and delete the snapshot.
        """
        self.life.check_running()
        view = self.store.cycle_view(claim.key, claim.cycle)
        reason = commit_refusal(view, claim.attempt)
        if reason:
            raise Fenced(f"{claim.key}: {reason}")
        rec = CommitRecord(claim.key, claim.cycle, claim.attempt, self.instance, self.node,
                           claim.snapshot, generation, self.clocks.iso_now(), members)
        if not self.store.create_commit(rec):
            other = self.store.read_commit(claim.key, claim.cycle)
            who = f"{other.node} (attempt {other.attempt})" if other else "another agent"
            raise Fenced(f"{claim.key}: cycle {claim.cycle} was already committed by {who}")
        floor = self.store.floor(claim.key)
        if floor is not None and claim.cycle < floor:
            self.store.delete_commit(claim.key, claim.cycle)
            raise Fenced(f"{claim.key}: cycle {claim.cycle} was pruned (floor {floor})")
        later = self._later_commit(claim.key, claim.cycle)
        if later is not None:  # a later cycle committed meanwhile: ours would be the older one
            self.store.delete_commit(claim.key, claim.cycle)
            why = f"cycle {claim.cycle} comes too late: cycle {later} is committed already"
            self.release(claim, why)  # the attempt is over (a group's members abandon it)
            raise Fenced(f"{claim.key}: {why}")
        self._owners = None
        log.info("committed %s cycle %d attempt %d", claim.key, claim.cycle, claim.attempt)
        return rec

    def _later_commit(self, key: ClusterKey, cycle: int) -> int | None:
        done = self.store.committed_cycles(key)
        return done[-1] if done and done[-1] > cycle else None

    def release(self, claim: Claim, reason: str) -> None:
        """Give the claim up at once (another agent may take attempt n + 1)."""
        self.store.release(claim.key, claim.cycle, claim.attempt,
                           ReleaseRecord(self.instance, self.node, reason, self.clocks.iso_now()))
        log.info("released %s cycle %d attempt %d: %s", claim.key, claim.cycle, claim.attempt,
                 reason)

    # --- snapshots and prune ---------------------------------------------------------

    def snapshot_disposition(self, key: ClusterKey, snapshot: str) -> Disposition | None:
        """What may be done with a `drbdbackup-*` snapshot of `key` (None: not our naming)."""
        tag = N.parse_snapshot(snapshot)
        if tag is None:
            return None
        done = self.store.committed_cycles(key)
        view = self.store.cycle_view(key, tag.cycle, with_floor=False)
        return snapshot_disposition(tag, snapshot, self.repository_id, view,
                                    done[-1] if done else None, self.life.is_dead)

    def prune(self, keep: int | None = None) -> tuple[PrunedKey, ...]:
        """Remove the objects of old cycles: keep the newest `keep`, the newest committed one
        and any held by a live agent. Writes the floor first, so no late commit below it."""
        keep = keep or self.settings.keep_cycles
        out = []
        for key in self.store.all_keys():
            entries = self.store.claim_entries(key)
            committed = self.store.committed_cycles(key)
            cycles = {e.cycle for e in entries} | set(committed)
            plan = prune_plan(cycles, committed, keep)
            if not plan.remove:
                continue
            active = [c for c in plan.remove if decide(self.store.cycle_view(
                key, c, with_floor=False), self.life.is_dead).step is Step.HELD]
            old_floor = self.store.floor(key)
            plan = prune_plan(cycles, committed, keep, min(active) if active else None, old_floor)
            if not plan.remove:
                continue
            floor = plan.floor if plan.floor is not None else min(set(cycles) - set(plan.remove))
            if plan.floor is not None:
                self.store.write_floor(key, FloorRecord(plan.floor, self.node,
                                                        self.clocks.iso_now()))
            count = self.store.remove_cycles(key, set(plan.remove), floor)
            out.append(PrunedKey(key, floor, count))
        return tuple(out)
