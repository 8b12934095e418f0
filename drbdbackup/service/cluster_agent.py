"""Cluster mode (`[cluster]` in the config): this service is the agent of one LINSTOR node.

Every agent runs the same config. Per LINSTOR policy and schedule slot (cycle k, on the
repository's clock) each agent looks at the policy's resources; for those it holds an UpToDate
diskful replica of, it ranks the eligible nodes and, after waiting rank x d, tries to claim the
(resource, k) pair through create-exclusive objects in the repository (`drbdbackup.cluster`).
The winner backs the resource up on its own node, with the snapshot named after its claim and a
fencing commit right before each generation record; a failure releases the claim at once so the
next node can take it. Agents never talk to each other directly; polling every h/2 makes
takeovers happen within L + h + rank x d. `[cluster] read_rate_mib` caps the node's reads.
The controller is asked for its inventory once per cycle (the policy's selection) and then only
while some key of the cycle is claimable (at most once per heartbeat interval), so an agent
makes a handful of LINSTOR API calls per cycle. A cycle that cannot be planned (controller or
repository away) is skipped with its reason, logged and recorded as a failed job once per
cycle, and planned again at the next poll. After each cycle the agent publishes its state to
the controller's key-value store (`cluster_report`; display only). A consistency-group policy
is one group key whose claimant only snapshots; members are read where they live (cluster_group).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from drbdbackup.cluster.agent import Clocks, ClusterSettings
from drbdbackup.cluster.claims import Step
from drbdbackup.cluster.coordinator import Claim, Coordinator
from drbdbackup.cluster.cycle import Schedule, current_cycle
from drbdbackup.cluster.errors import Fenced
from drbdbackup.cluster.names import ClusterKey, KeyKind
from drbdbackup.errors import EnvironmentFailure, RepositoryLocked, describe
from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.linstor.identity import resolve_node
from drbdbackup.linstor.inventory import Inventory, take_inventory
from drbdbackup.ops.backup import BackupOptions, BackupResult, ReadOptions
from drbdbackup.ops.backup_linstor import LinstorBackup, back_up_resources
from drbdbackup.ops.session import exclusive_lock_holder
from drbdbackup.ops.status import has_records_of
from drbdbackup.service import anchor
from drbdbackup.service.cluster_group import GroupRuns, MemberWork
from drbdbackup.service.cluster_guard import Retries, SnapshotGuard, job_result, snapshot_slot
from drbdbackup.service.cluster_plan import (
    Inventories,
    Work,
    candidates,
    policy_batches,
    schedule_of,
)
from drbdbackup.service.cluster_report import (
    TEST_CLOCK_OFFSET_ENV,
    AgentState,
    ApiCounter,
    Skips,
    clock_offset_for_tests,
    heartbeat_loop,
    publish,
    publish_loop,
)
from drbdbackup.service.config import Policy, Settings
from drbdbackup.service.jobs import JobContext
from drbdbackup.service.store import JobStore
from drbdbackup.service.throttle import NodeReadThrottle

log = logging.getLogger("drbdbackup.service")
T = TypeVar("T")
PRUNE_EVERY_BEATS = 50


class ClusterAgent:
    """Heartbeats, and per LINSTOR policy a loop that claims and backs up this node's share."""

    def __init__(self, settings: Settings, ctx: JobContext, store: JobStore) -> None:
        assert settings.cluster is not None
        self.settings = settings
        self.ctx = ctx
        self.store = store
        self.node = ""
        self.coordinator: Coordinator | None = None
        self._lock = threading.Lock()  # the coordinator is used from several worker threads
        self._tasks: list[asyncio.Task[None]] = []
        self._backups: set[asyncio.Task[None]] = set()  # awaited, never cancelled, on stop
        self._busy: set[ClusterKey] = set()
        self._slots = asyncio.Semaphore(settings.service.max_jobs_per_node)
        self.stopping = False
        self.fatal: str | None = None
        self.api_calls = ApiCounter()
        self.state = AgentState()
        self._inventories = Inventories(  # eligibility may lag by max(h, d): ranks wait d anyway
            self._take_inventory, max(settings.cluster.heartbeat_s, settings.cluster.rank_delay_s))
        self._plans: dict[str, tuple[int, list[tuple[ClusterKey, list[str], str]]]] = {}
        self._skips = Skips(store, self.state)
        self._guard = SnapshotGuard(self._coord, self._inventories,
                                    lambda vols, snap: has_records_of(ctx.repo, vols, snap),
                                    self._node_states, settings.linstor.cluster)
        self._observed_at = 0.0  # monotonic time of our last completed heartbeat round
        self._beat_error: str | None = None  # why the last heartbeat round failed
        c = settings.cluster
        self._retries = Retries(max(c.rank_delay_s, c.heartbeat_s), c.lease_s)
        self._locked: str | None = None  # a backup met a lock: look before claiming again
        self._groups = GroupRuns(self)
        self.read_throttle: NodeReadThrottle | None = None  # cross-node consistency groups: claimant and members

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        c = self.settings.cluster
        assert c is not None
        self.node = await asyncio.to_thread(self._resolve_node, c.node)
        if c.read_rate_mib:  # one byte rate for all of this node's jobs together
            self.read_throttle = NodeReadThrottle(c.read_rate_mib << 20, asyncio.get_running_loop())
        repo = await asyncio.to_thread(self.ctx.repo.open)
        cs = ClusterSettings(heartbeat_s=c.heartbeat_s, liveness_s=c.lease_s,
                             rank_step_s=c.rank_delay_s, keep_cycles=c.keep_cycles)
        offset = clock_offset_for_tests()
        if offset:
            log.warning("test-only clock offset %+.1f s (%s) in effect", offset,
                        TEST_CLOCK_OFFSET_ENV)
        self.coordinator = Coordinator(repo.backend, self.node, repo.id, cs,
                                       clocks=Clocks(wall_offset_s=offset))
        await asyncio.to_thread(self.coordinator.start)
        self._observed_at = time.monotonic()
        self.state.node, self.state.instance = self.node, self.coordinator.instance
        self._skips.node = self.node
        log.info("cluster agent of node %s (instance %s)", self.node, self.coordinator.instance)
        self._tasks.append(asyncio.create_task(heartbeat_loop(self, PRUNE_EVERY_BEATS),
                                              name="heartbeat"))
        self._tasks.append(asyncio.create_task(
            publish_loop(self.state, c.heartbeat_s, lambda: bool(self._backups), self._publish),
            name="publish"))
        for p in self.settings.policy:
            if p.selects_linstor and schedule_of(p, self.settings.service.timezone) is not None:
                self._tasks.append(asyncio.create_task(self._policy_loop(p), name=f"cycle-{p.name}"))

    async def stop(self) -> None:
        """No new claims; running backups finish (no half generation, no leaked snapshot)."""
        self.stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._backups, return_exceptions=True)

    def controller(self) -> ControllerSettings:
        """The service's controller settings, every call counted (`api_calls`)."""
        base = self.ctx.controller()
        return dataclasses.replace(base, before_call=self.api_calls.counting(base.before_call))

    def backup_options(self, p: Policy) -> BackupOptions:
        return BackupOptions.parse(
            p.tracker, verify_sample=p.verify_sample or None,
            read=ReadOptions(rate_bytes_s=self.settings.service.read_rate_mib << 20, progress=False,
                         pacer=self.read_throttle.pace if self.read_throttle else None))

    def _resolve_node(self, configured: str) -> str:
        with self.controller().connect() as ctl:
            return resolve_node(ctl.nodes(), configured)

    def _node_states(self) -> dict[str, bool]:
        with self.controller().connect() as ctl:
            return {n.name: n.online for n in ctl.nodes()}

    def _take_inventory(self) -> Inventory:
        with self.controller().connect() as ctl:
            return take_inventory(ctl)

    def _snapshot_slot(self) -> AbstractContextManager[object]:
        assert self.coordinator is not None and self.settings.cluster is not None
        return snapshot_slot(self.coordinator, self.settings.cluster.max_snapshot_creations)

    def _coord(self, fn: Callable[[Coordinator], T]) -> T:
        assert self.coordinator is not None
        with self._lock:
            return fn(self.coordinator)

    def _alive(self, node: str) -> bool:
        return self._coord(lambda c: c.alive(node))

    def _rank(self, key: ClusterKey, cycle: int, inv: Inventory, rscs: list[str]) -> int | None:
        """This node's rank for (key, cycle), or None when it is not eligible."""
        cands = candidates(inv, rscs, self._alive)
        return self._coord(lambda c: c.rank(key, cycle, cands)).rank_of(self.node)

    def _try_claim(self, w: Work, rank: int) -> Claim | None:
        members = tuple(w.resources) if w.key.kind is KeyKind.GROUP else ()
        return self._coord(lambda c: c.try_claim(w.key, w.cycle, rank, members))

    def _observing(self) -> bool:
        """Whether our view of the other agents is recent. After this process was stopped
        (SIGSTOP, a paused VM) every other agent looks dead until the next heartbeat round:
        judging then would take live agents' claims over (safe, but wasted work)."""
        c = self.settings.cluster
        assert c is not None
        return time.monotonic() - self._observed_at <= min(3 * c.heartbeat_s, c.lease_s / 2)

    def _claimable(self, key: ClusterKey, cycle: int) -> bool:
        return self._coord(lambda c: c.cycle_state(key, cycle)).step is Step.CLAIMABLE

    def _earlier_run(self, key: ClusterKey, previous: int | None) -> str | None:
        """The node of a live agent still holding the key's previous cycle (uncommitted):
        claiming this cycle now would run two backups of one volume at once and write their
        generations out of order. A dead holder blocks nothing; a run stuck for a whole cycle
        holds back one cycle at most (the one after it looks at a cycle nobody claimed)."""
        if previous is None:
            return None
        d = self._coord(lambda c: c.cycle_state(key, previous))
        return d.holder.node if d.step is Step.HELD and d.holder is not None else None

    # ---- loops --------------------------------------------------------------------------

    def _publish(self) -> None:
        assert self.coordinator is not None
        body = self.state.body(self.coordinator.clocks.iso_now())
        try:
            with self.controller().connect() as ctl:
                publish(ctl, self.node, body)
        except BaseException:
            self.state.dirty = True
            raise

    async def _policy_loop(self, policy: Policy) -> None:
        assert self.settings.cluster is not None
        poll = max(0.2, self.settings.cluster.heartbeat_s / 2)
        schedule = schedule_of(policy, self.settings.service.timezone)
        assert schedule is not None
        while not self.stopping:
            try:
                fetches = self._inventories.fetches
                work, members = await asyncio.to_thread(self._plan, policy, schedule)
                if self._inventories.fetches > fetches:  # the controller answered again
                    self._skips.cleared(policy.name)
                for w in work:
                    if w.key not in self._busy and not self.stopping:
                        self._busy.add(w.key)
                        self._spawn(self._run(w), f"backup-{w.key}")
                for mw in members:
                    if mw.token not in self._groups.busy and not self.stopping:
                        self._groups.busy.add(mw.token)
                        self._spawn(self._groups.run_member(mw), f"member-{mw}")
            except Exception as exc:  # noqa: BLE001 - an outage: skip, say why, retry at once
                cycle = await asyncio.to_thread(self._coord, lambda c: c.current_cycle(schedule))
                await self._skips.note(policy.name, cycle, exc)
            await asyncio.sleep(poll)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._backups.add(task)
        task.add_done_callback(self._backups.discard)

    # ---- one cycle ----------------------------------------------------------------------

    def _plan(self, policy: Policy, schedule: Schedule) -> tuple[list[Work], list[MemberWork]]:
        """The keys of `policy` this agent should claim now, and the members of open group
        attempts it may sub-claim (blocking)."""
        cycle = self._coord(lambda c: c.current_cycle(schedule))
        if cycle is None:
            return [], []
        if not self._observing():
            if self._beat_error:  # the repository is away: a skipped cycle, with its reason
                raise EnvironmentFailure(f"no heartbeat round: {self._beat_error}")
            return [], []
        self._note_cycle(cycle)
        every = self._batches(policy, cycle)
        previous = current_cycle(schedule, cycle - 1)
        members = self._groups.member_work(policy, [cycle] + ([previous] if previous else []),
                                           every)
        return self._claims(policy, cycle, previous, every), members

    def _claims(self, policy: Policy, cycle: int, previous: int | None,
                every: list[tuple[ClusterKey, list[str], str]]) -> list[Work]:
        batches = [b for b in every if b[0] not in self._busy and self._retries.ready(b[0], cycle)
                   and self._claimable(b[0], cycle) and self._earlier_run(b[0], previous) is None]
        if not batches:
            return []
        if self._locked is not None:  # claim nothing while a manual prune holds the repository
            held = self._coord(lambda c: exclusive_lock_holder(c.store.backend))
            if held:
                raise RepositoryLocked(held)
            self._locked = None
        inv = self._inventories.get()
        return [Work(policy, key, rscs, cycle, why, previous) for key, rscs, why in batches
                if self._rank(key, cycle, inv, rscs) is not None]

    def _note_cycle(self, cycle: int) -> None:
        if self.state.new_cycle(cycle, self.api_calls.take):
            self._retries.forget_before(cycle)
            calls = self.state.api_calls_last_cycle
            if calls is not None:
                log.info("cycle %d begins; %d LINSTOR API calls during the previous one",
                         cycle, calls)

    def _batches(self, policy: Policy, cycle: int) -> list[tuple[ClusterKey, list[str], str]]:
        """The policy's keys for `cycle`: selected once per cycle, on a fresh inventory."""
        cached = self._plans.get(policy.name)
        if cached is not None and cached[0] == cycle:
            return cached[1]
        batches = policy_batches(self._inventories.get(max_age_s=0), self.settings.policy, policy)
        self._plans[policy.name] = (cycle, batches)
        return batches

    async def _run(self, w: Work) -> None:
        """Claim first (rank order keeps a volume on its node: native maps stay valid), then
        wait for one of this node's job slots, back up, commit or release."""
        try:
            if self.stopping:
                return
            try:
                claim = await asyncio.to_thread(self._claim, w)
            except Exception as exc:  # noqa: BLE001 - nothing claimed; the planner retries
                log.warning("%s cycle %d: could not claim: %s", w.key, w.cycle, describe(exc)[1])
                return
            if claim is None:
                return
            job_id = await self.store.add(w.policy.name, "backup", f"{w.key} cycle {w.cycle}")
            # a group's claimant reads nothing: no job slot (its members need them)
            async with self._slots if w.key.kind is not KeyKind.GROUP else nullcontext():
                await self.store.mark_running(job_id)
                results: list[BackupResult] = []
                code, msg = 0, None
                try:
                    await asyncio.to_thread(self._back_up, w, claim, results)
                    self.state.outcome(str(w.key), w.cycle, None)
                except Exception as exc:  # noqa: BLE001 - recorded in the job, claim released
                    code, msg = await self._failed(w, claim, exc)
                await self.store.finish(job_id, ok=msg is None, exit_code=code, error=msg,
                                        result=job_result(w, claim, self.node, results))
            await anchor.observe_quietly(self.store, self.ctx.repo)  # as the scheduler does
        finally:
            self._busy.discard(w.key)

    async def _failed(self, w: Work, claim: Claim, exc: Exception) -> tuple[int, str]:
        """Release the claim (unless fenced off: then it is not ours to release), log."""
        code, msg = describe(exc)
        if isinstance(exc, Fenced):
            log.warning("%s cycle %d attempt %d on %s: late commit refused (fenced): %s; no "
                        "record written, snapshot %s removed", w.key, w.cycle, claim.attempt,
                        self.node, msg, claim.snapshot)
        else:
            try:
                await asyncio.to_thread(self._coord, lambda c: c.release(claim, msg))
            except Exception as rel:  # noqa: BLE001 - the holder then counts as dead after L
                log.warning("%s cycle %d: could not release: %s", w.key, w.cycle, describe(rel)[1])
            wait = self._retries.failed(w.key, w.cycle)
            if isinstance(exc, RepositoryLocked):
                self._locked = msg
            log.warning("%s cycle %d on %s failed: %s (not retried here for %.0f s)", w.key,
                        w.cycle, self.node, msg, wait)
        self.state.outcome(str(w.key), w.cycle, msg)
        return code, msg

    def _claim(self, w: Work) -> Claim | None:
        """Wait out this node's rank, then try to claim; None when another agent got it."""
        assert self.settings.cluster is not None
        deadline = time.monotonic() + self.settings.cluster.lease_s * 4
        pause = min(1.0, self.settings.cluster.heartbeat_s / 2)
        while not self.stopping and time.monotonic() < deadline:
            if not self._observing():
                threading.Event().wait(pause)
                continue
            if not self._claimable(w.key, w.cycle):
                return None
            if self._earlier_run(w.key, w.previous) is not None:
                threading.Event().wait(pause)
                continue
            rank = self._rank(w.key, w.cycle, self._inventories.get(), w.resources)
            if rank is None:
                return None
            claim = self._try_claim(w, rank)
            if claim is not None:
                return claim
            threading.Event().wait(pause)
        return None

    def _back_up(self, w: Work, claim: Claim, out: list[BackupResult]) -> None:
        """Back up the claimed resources on this node; the first record commits the cycle."""
        committed: list[bool] = []

        def fence(generation: str) -> None:
            if not committed:
                self._coord(lambda c: c.commit(claim, generation))
                committed.append(True)

        if w.key.kind is KeyKind.GROUP:  # members are read where they live (cluster_group)
            self._groups.claimant(w.resources, claim)
            return
        p = w.policy
        req = LinstorBackup(tuple(w.resources), self.controller(), node=self.node,
                            cluster=self.settings.linstor.cluster, policy=p.name,
                            selected_by=w.reason, label_properties=tuple(p.label_properties),
                            snapshot=claim.snapshot, fence=fence,
                            may_delete=lambda snap: self._guard.may_delete(w.key, w.resources, snap),
                            snapshot_slot=self._snapshot_slot)
        out.extend(back_up_resources(self.ctx.repo, req, self.backup_options(p)))
        if not committed:  # nothing to record (no volumes): still close the cycle
            self._coord(lambda c: c.commit(claim, None))
