"""Cross-node consistency groups in the cluster agent (docs/format.md 16.3).

Claimant (the group key's claim; any node holding a member's replica): one
`snapshot_create_multi` named after its claim, each resource on its UpToDate replicas; then it
waits until every member is ready and creates the group commit naming each member's node and
generation. It gives up (the agent releases the claim) when a member has had no live holder for
L + h + 2d. Member owner (an agent with an UpToDate replica of a member): sub-claims the member
within the group attempt after rank x d among the member's eligible nodes (rank 0: the node
that stored it last time), reads it from the group snapshot on its node and, in the fence before
its first record, writes `ready`, gives its job slot back and waits for the group commit; an
abandoned attempt gets no record. A member owner that dies before `ready` is replaced by the
other replica's agent. One that dies after `ready` leaves an incomplete group (reported; never
a lineage base): the ready payload is empty, nobody writes a member's record for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from drbdbackup.cluster.claims import Step, failed_nodes
from drbdbackup.cluster.coordinator import Claim
from drbdbackup.cluster.errors import Fenced, GroupIncomplete
from drbdbackup.cluster.group_coord import (
    GroupAttempt,
    GroupCoordinator,
    MemberClaim,
    MemberOutcome,
)
from drbdbackup.cluster.groups import MemberStep, decide_member
from drbdbackup.cluster.names import ClusterKey, KeyKind
from drbdbackup.cluster.ranking import eligible_nodes, rank_nodes
from drbdbackup.errors import EnvironmentFailure, describe
from drbdbackup.ops.backup import BackupResult
from drbdbackup.ops.backup_linstor import LinstorBackup
from drbdbackup.ops.backup_member import (
    GroupSnapshot,
    MemberBackup,
    back_up_member,
    drop_group_snapshot,
    snapshot_group,
)
from drbdbackup.service import anchor
from drbdbackup.service.cluster_plan import candidates, up_to_date_nodes
from drbdbackup.service.config import Policy

if TYPE_CHECKING:
    from drbdbackup.service.cluster_agent import ClusterAgent

log = logging.getLogger("drbdbackup.service")
T = TypeVar("T")
Token = tuple[ClusterKey, int, int, str]  # group, cycle, attempt, member


@dataclass(frozen=True)
class MemberWork:
    policy: Policy
    attempt: GroupAttempt
    member: str
    reason: str

    @property
    def token(self) -> Token:
        a = self.attempt
        return (a.key, a.cycle, a.attempt, self.member)

    def __str__(self) -> str:
        return f"{self.attempt.key} member {self.member} cycle {self.attempt.cycle}"


def _sub_claim_once(w: MemberWork, rank: int, g: GroupCoordinator) -> MemberClaim | None:
    return g.try_member_claim(w.attempt, w.member, rank)


class _Slot:
    """One of the node's job slots, given back at most once, from any thread."""

    def __init__(self, sem: asyncio.Semaphore, loop: asyncio.AbstractEventLoop) -> None:
        self.sem, self.loop = sem, loop
        self._held = False
        self._lock = threading.Lock()

    async def take(self) -> None:
        await self.sem.acquire()
        self._held = True

    def give_back(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:  # a worker thread
            on_loop = False
        if on_loop:
            self.sem.release()
        else:
            self.loop.call_soon_threadsafe(self.sem.release)


class GroupRuns:
    """This agent's part in the cross-node consistency groups of its policies."""

    def __init__(self, agent: ClusterAgent) -> None:
        self.a = agent
        self.busy: set[Token] = set()
        self._over: set[tuple[ClusterKey, int]] = set()  # group cycles committed or pruned

    def _gc(self, fn: Callable[[GroupCoordinator], T]) -> T:
        return self.a._coord(lambda c: fn(GroupCoordinator(c)))  # noqa: SLF001

    def _pause(self) -> float:
        assert self.a.settings.cluster is not None
        return max(0.2, self.a.settings.cluster.heartbeat_s / 2)

    # ---- claimant -----------------------------------------------------------------------

    def claimant(self, resources: list[str], claim: Claim) -> None:
        """Snapshot every member at once, wait for every member's `ready`, commit the group."""
        inv = self.a._inventories.get(max_age_s=0)  # noqa: SLF001 - fresh disk states
        nodes = up_to_date_nodes(inv, resources)
        missing = sorted(r for r, n in nodes.items() if not n)
        if missing:
            raise EnvironmentFailure(f"no UpToDate replica on an ONLINE node: {', '.join(missing)}")
        snapshot_group(GroupSnapshot(nodes, claim.snapshot, self.a.controller(),
                                     self.a._snapshot_slot))  # noqa: SLF001
        log.info("%s cycle %d: snapshot %s taken on %s", claim.key, claim.cycle, claim.snapshot,
                 "; ".join(f"{r}: {','.join(n)}" for r, n in sorted(nodes.items())))
        try:
            self._await_members(claim)
        except BaseException as exc:  # the attempt is over: release it, then drop its snapshot
            why = describe(exc)[1]
            if not isinstance(exc, Fenced):
                self.a._coord(lambda c: c.release(claim, why))  # noqa: SLF001
            if self.a._guard.may_delete(claim.key, resources, claim.snapshot):  # noqa: SLF001
                drop_group_snapshot(self.a.controller(), resources, claim.snapshot)
            raise

    def _await_members(self, claim: Claim) -> None:
        c = self.a.settings.cluster
        assert c is not None
        limit = c.lease_s + c.heartbeat_s + 2 * c.rank_delay_s
        a = GroupAttempt(claim.key, claim.cycle, claim.attempt, claim.snapshot, claim.members,
                         claim.node)
        idle: dict[str, float] = {}
        while True:
            prog = self._gc(lambda g: g.progress(a))
            if prog.all_ready:
                rec = self._gc(lambda g: g.commit_group(claim))
                log.info("%s cycle %d: group committed (%s)", claim.key, claim.cycle,
                         ", ".join(f"{m.member} on {m.node}" for m in rec.members))
                return
            now = time.monotonic()
            is_dead = self.a._coord(lambda co: co.life.is_dead)  # noqa: SLF001
            for mv in prog.members:
                if mv.ready is None and decide_member(mv, True, is_dead).step is MemberStep.HELD:
                    idle.pop(mv.member, None)
                elif mv.ready is None:
                    idle.setdefault(mv.member, now)
            stuck = sorted(m for m, t in idle.items() if now - t > limit)
            if stuck:
                raise GroupIncomplete(f"{claim.key}: no agent stored member(s) {', '.join(stuck)} "
                                      f"within {limit:.0f} s")
            threading.Event().wait(self._pause())

    # ---- members ------------------------------------------------------------------------

    def member_work(self, policy: Policy, cycles: list[int],
                    batches: list[tuple[ClusterKey, list[str], str]]) -> list[MemberWork]:
        """Members of this policy's open group attempts that this node may sub-claim now."""
        out: list[MemberWork] = []
        for key, _rscs, why in batches:
            if key.kind is not KeyKind.GROUP:
                continue
            for k in cycles:
                a = self._open_attempt(key, k)
                if a is None:
                    continue
                for m in a.members:
                    if (key, k, a.attempt, m) not in self.busy and self._claimable(a, m):
                        out.append(MemberWork(policy, a, m, why))
        if not out:
            return out
        inv = self.a._inventories.get()  # noqa: SLF001
        return [w for w in out if any(c.node == self.a.node and c.eligible
                                      for c in candidates(inv, [w.member], self.a._alive))]  # noqa: SLF001

    def _open_attempt(self, key: ClusterKey, cycle: int) -> GroupAttempt | None:
        if (key, cycle) in self._over:
            return None
        step = self.a._coord(lambda c: c.cycle_state(key, cycle)).step  # noqa: SLF001
        if step in (Step.COMMITTED, Step.PRUNED):
            self._over.add((key, cycle))
            return None
        return self._gc(lambda g: g.attempt(key, cycle)) if step is Step.HELD else None

    def _claimable(self, a: GroupAttempt, member: str) -> bool:
        def look(g: GroupCoordinator) -> bool:
            view = g.store.member_view(a.key, a.cycle, a.attempt, member)
            return decide_member(view, g.live(a), g.life.is_dead).step is MemberStep.CLAIMABLE
        return self._gc(look)

    def _rank(self, w: MemberWork) -> int | None:
        """This node's rank for the member: its eligible nodes, the node that stored it in the
        group's newest commit first, nodes that failed it in this attempt last."""
        a = w.attempt
        inv = self.a._inventories.get()  # noqa: SLF001
        cands = candidates(inv, [w.member], self.a._alive)  # noqa: SLF001

        def previous_and_failed(g: GroupCoordinator) -> tuple[str | None, tuple[str, ...]]:
            done = g.store.committed_cycles(a.key)
            commit = g.store.read_commit(a.key, done[-1]) if done else None
            prev = next((m.node for m in commit.members if m.member == w.member), None) \
                if commit else None
            subs = g.store.member_view(a.key, a.cycle, a.attempt, w.member).subs
            return prev, failed_nodes(subs, g.life.is_dead)

        prev, failed = self._gc(previous_and_failed)
        order = rank_nodes(ClusterKey.resource(w.member), eligible_nodes(cands), prev, (), failed)
        return order.rank_of(self.a.node)

    def _sub_claim(self, w: MemberWork) -> MemberClaim | None:
        assert self.a.settings.cluster is not None
        deadline = time.monotonic() + self.a.settings.cluster.lease_s * 4
        while not self.a.stopping and time.monotonic() < deadline:
            if not self.a._observing():  # noqa: SLF001
                threading.Event().wait(self._pause())
                continue
            if not self._claimable(w.attempt, w.member):
                return None
            rank = self._rank(w)
            if rank is None:
                return None
            mc = self._gc(partial(_sub_claim_once, w, rank))
            if mc is not None:
                return mc
            threading.Event().wait(self._pause())
        return None

    async def run_member(self, w: MemberWork) -> None:
        """Sub-claim, back up on this node, release on failure; one job in the job store."""
        store = self.a.store
        try:
            mc = await asyncio.to_thread(self._sub_claim, w)
            if mc is None:
                return
            job_id = await store.add(w.policy.name, "backup", str(w))
            slot = _Slot(self.a._slots, asyncio.get_running_loop())  # noqa: SLF001
            await slot.take()
            try:
                await store.mark_running(job_id)
                results: list[BackupResult] = []
                try:
                    await asyncio.to_thread(self._back_up, w, mc, results, slot.give_back)
                except Exception as exc:  # noqa: BLE001 - recorded in the job, sub-claim released
                    code, msg = describe(exc)
                    if not isinstance(exc, Fenced):
                        await asyncio.to_thread(self._release, mc, msg)
                    log.warning("%s on %s: %s", w, self.a.node, msg)
                    self.a.state.outcome(f"{w.attempt.key}/{w.member}", w.attempt.cycle, msg)
                    await store.finish(job_id, ok=False, exit_code=code, error=msg,
                                       result=self._result(w, mc, results))
                    return
                self.a.state.outcome(f"{w.attempt.key}/{w.member}", w.attempt.cycle, None)
                await store.finish(job_id, ok=True, exit_code=0, error=None,
                                   result=self._result(w, mc, results))
            finally:
                slot.give_back()
            await anchor.observe_quietly(store, self.a.ctx.repo)  # as the scheduler does
        except Exception as exc:  # noqa: BLE001 - nothing claimed; the planner retries
            log.warning("%s: could not sub-claim: %s", w, describe(exc)[1])
        finally:
            self.busy.discard(w.token)

    def _release(self, mc: MemberClaim, why: str) -> None:
        try:
            self._gc(lambda g: g.release_member(mc, why))
        except Exception as exc:  # noqa: BLE001 - the holder then counts as dead after L
            log.warning("could not release member %s: %s", mc.member, describe(exc)[1])

    def _result(self, w: MemberWork, mc: MemberClaim, results: list[BackupResult]) -> dict[str, Any]:
        a = w.attempt
        return {"cluster": {"key": str(a.key), "member": w.member, "cycle": a.cycle,
                            "attempt": a.attempt, "sub": mc.sub, "node": self.a.node,
                            "snapshot": a.snapshot},
                "backups": [r.to_dict() for r in results]}

    def _back_up(self, w: MemberWork, mc: MemberClaim, out: list[BackupResult],
                 free_slot: Callable[[], None]) -> None:
        a, committed = w.attempt, list[bool]()

        def fence(generation: str) -> None:
            """The member's `ready`, then wait for the group commit (or its abandonment) without
            holding a job slot: other members on this node may be what the commit waits for."""
            if committed:
                return
            self._gc(lambda g: g.member_ready(mc, generation))
            free_slot()
            while True:
                outcome = self._gc(lambda g: g.member_outcome(mc))
                if outcome is MemberOutcome.COMMITTED:
                    committed.append(True)
                    return
                if outcome is MemberOutcome.ABANDONED:
                    raise Fenced(f"{a.key} cycle {a.cycle} attempt {a.attempt} was not "
                                 f"committed: member {w.member} gets no record")
                threading.Event().wait(self._pause())

        p, ag = w.policy, self.a
        base = LinstorBackup((w.member,), ag.controller(), node=ag.node,
                             cluster=ag.settings.linstor.cluster, policy=p.name,
                             selected_by=w.reason, label_properties=tuple(p.label_properties),
                             snapshot=a.snapshot, fence=fence,
                             may_delete=lambda s: ag._guard.may_delete(a.key, [w.member], s))  # noqa: SLF001
        req = MemberBackup(w.member, a.members, base, lambda: self._gc(lambda g: g.live(a)),
                           self._pause())
        out.extend(back_up_member(ag.ctx.repo, req, ag.backup_options(p)))
        if not committed:
            raise EnvironmentFailure(f"member {w.member} has no volume to store")
