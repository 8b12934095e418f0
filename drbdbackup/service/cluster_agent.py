"""Cluster mode (`[cluster]` in the config): this service is the agent of one LINSTOR node.

Every agent runs the same config. Per LINSTOR policy and schedule slot (cycle k, on the
repository's clock) each agent looks at the policy's resources; for those it holds an UpToDate
diskful replica of, it ranks the eligible nodes and, after waiting rank x d, tries to claim the
(resource, k) pair through create-exclusive objects in the repository (`drbdbackup.cluster`).
The winner backs the resource up on its own node, with the snapshot named after its claim and a
fencing commit right before each generation record; a failure releases the claim at once so the
next node can take it. Agents never talk to each other directly. Polling every half heartbeat
makes takeovers happen within L + h + rank x d while the controller and repository answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from drbdbackup.cluster.agent import ClusterSettings
from drbdbackup.cluster.claims import Disposition, Step
from drbdbackup.cluster.coordinator import Claim, Coordinator
from drbdbackup.cluster.cycle import CronSlots, PeriodicSlots, Schedule
from drbdbackup.cluster.errors import DuplicateAgent, Fenced
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.ranking import Candidate
from drbdbackup.cluster.slots import SnapshotSlots
from drbdbackup.errors import describe
from drbdbackup.linstor.identity import resolve_node
from drbdbackup.linstor.inventory import Inventory, take_inventory
from drbdbackup.linstor.placement import UP_TO_DATE
from drbdbackup.linstor.selection import select
from drbdbackup.ops.backup import BackupOptions, BackupResult, ReadOptions
from drbdbackup.ops.backup_linstor import LinstorBackup, back_up_resources
from drbdbackup.service.config import Policy, Settings
from drbdbackup.service.cron import parse_cron
from drbdbackup.service.jobs import JobContext
from drbdbackup.service.store import JobStore

log = logging.getLogger("drbdbackup.service")
T = TypeVar("T")
PRUNE_EVERY_BEATS = 50


def schedule_of(policy: Policy, tz: str) -> Schedule | None:
    """The policy's slots: `every_s` (seconds) or its cron `schedule` (in the service's zone)."""
    if policy.every_s:
        return PeriodicSlots(policy.every_s)
    if not policy.schedule:
        return None
    cron, zone = parse_cron(policy.schedule), ZoneInfo(tz)
    return CronSlots(lambda t: cron.next_after(t.astimezone(zone)))


def candidates(inv: Inventory, rscs: list[str], alive: Callable[[str], bool]) -> list[Candidate]:
    """Nodes holding a diskful replica of every volume of `rscs`, with their eligibility."""
    online = {n.name: n.online for n in inv.nodes}
    per_node: dict[str, list[bool]] = {}
    for rsc in rscs:
        for rep in inv.replicas.get(rsc, []):
            if not rep.diskless:
                per_node.setdefault(rep.node, []).append(rep.disk_state == UP_TO_DATE)
    return [Candidate(node, all(states), online.get(node, False), alive(node))
            for node, states in sorted(per_node.items())]


@dataclass
class _Work:
    """One key of one cycle, as the planner hands it to a backup."""

    policy: Policy
    key: ClusterKey
    resources: list[str]
    cycle: int
    reason: str


class ClusterAgent:
    """Heartbeats, and per LINSTOR policy a loop that claims and backs up this node's share."""

    def __init__(self, settings: Settings, ctx: JobContext, store: JobStore) -> None:
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
        self.skipped: dict[str, str] = {}  # policy -> why its current cycle is not being worked

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        c = self.settings.cluster
        assert c is not None
        self.node = await asyncio.to_thread(self._resolve_node, c.node)
        repo = await asyncio.to_thread(self.ctx.repo.open)
        cs = ClusterSettings(heartbeat_s=c.heartbeat_s, liveness_s=c.lease_s,
                             rank_step_s=c.rank_delay_s, keep_cycles=c.keep_cycles)
        self.coordinator = Coordinator(repo.backend, self.node, repo.id, cs)
        await asyncio.to_thread(self.coordinator.start)
        log.info("cluster agent of node %s (instance %s)", self.node, self.coordinator.instance)
        self._tasks.append(asyncio.create_task(self._heartbeats(), name="heartbeat"))
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

    def _resolve_node(self, configured: str) -> str:
        with self.ctx.controller().connect() as ctl:
            return resolve_node(ctl.nodes(), configured)

    def _snapshot_slot(self) -> AbstractContextManager[object]:
        """One of the cluster-wide snapshot-creation slots ([cluster] max_snapshot_creations)."""
        assert self.coordinator is not None and self.settings.cluster is not None
        c = self.coordinator
        slots = SnapshotSlots(c.store.backend, self.settings.cluster.max_snapshot_creations,
                              c.life.me, c.life.is_dead)
        return slots.hold()

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

    def _try_claim(self, w: _Work, rank: int) -> Claim | None:
        return self._coord(lambda c: c.try_claim(w.key, w.cycle, rank))

    def _claimable(self, key: ClusterKey, cycle: int) -> bool:
        return self._coord(lambda c: c.cycle_state(key, cycle)).step is Step.CLAIMABLE

    # ---- loops --------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        assert self.settings.cluster is not None
        h = self.settings.cluster.heartbeat_s
        beats = 0
        while not self.stopping:
            beats += 1
            try:
                await asyncio.to_thread(self._coord, lambda c: c.heartbeat())
                if beats % PRUNE_EVERY_BEATS == 0:  # old cycles' objects; any agent may
                    await asyncio.to_thread(self._coord, lambda c: c.prune())
            except DuplicateAgent as exc:
                self.fatal = str(exc)
                log.error("%s: this agent stops claiming", exc)
                self.stopping = True
                return
            except Exception as exc:  # noqa: BLE001 - the repository may be away; keep trying
                log.warning("heartbeat failed: %s", describe(exc)[1])
            await asyncio.sleep(h)

    async def _policy_loop(self, policy: Policy) -> None:
        assert self.settings.cluster is not None
        poll = max(0.2, self.settings.cluster.heartbeat_s / 2)
        schedule = schedule_of(policy, self.settings.service.timezone)
        assert schedule is not None
        while not self.stopping:
            try:
                work = await asyncio.to_thread(self._plan, policy, schedule)
                self.skipped.pop(policy.name, None)
                for w in work:
                    if w.key not in self._busy and not self.stopping:
                        self._busy.add(w.key)
                        task = asyncio.create_task(self._run(w), name=f"backup-{w.key}")
                        self._backups.add(task)
                        task.add_done_callback(self._backups.discard)
            except Exception as exc:  # noqa: BLE001 - an outage: skip, say why, retry at once
                why = describe(exc)[1]
                if self.skipped.get(policy.name) != why:
                    log.warning("policy %s: cycle skipped: %s", policy.name, why)
                self.skipped[policy.name] = why
            await asyncio.sleep(poll)

    # ---- one cycle ----------------------------------------------------------------------

    def _plan(self, policy: Policy, schedule: Schedule) -> list[_Work]:
        """The keys of `policy` this agent should claim now (blocking)."""
        cycle = self._coord(lambda c: c.current_cycle(schedule))
        if cycle is None:
            return []
        with self.ctx.controller().connect() as ctl:
            inv = take_inventory(ctl)
        rules = [p.selection_rule() for p in self.settings.policy if p.selects_linstor]
        chosen = select(inv.resources, rules, set(inv.groups)).chosen.get(policy.name, [])
        why = {c.resource: c.reason for c in chosen}
        names = sorted(why)
        batches = ([(ClusterKey.group(policy.name), names)] if policy.consistency_group and names
                   else [(ClusterKey.resource(r), [r]) for r in names])
        out = []
        for key, rscs in batches:
            if not self._claimable(key, cycle) or self._rank(key, cycle, inv, rscs) is None:
                continue
            out.append(_Work(policy, key, rscs, cycle, "; ".join(dict.fromkeys(why[r] for r in rscs))))
        return out

    async def _run(self, w: _Work) -> None:
        """Claim first (rank order keeps a volume on its node: native maps stay valid), then
        wait for one of this node's job slots, back up, commit or release."""
        try:
            if self.stopping:
                return
            claim = await asyncio.to_thread(self._claim, w)
            if claim is None:
                return
            job_id = await self.store.add(w.policy.name, "backup", f"{w.key} cycle {w.cycle}")
            async with self._slots:
                await self.store.mark_running(job_id)
                results: list[BackupResult] = []
                try:
                    await asyncio.to_thread(self._back_up, w, claim, results)
                except Exception as exc:  # noqa: BLE001 - recorded in the job, claim released
                    code, msg = describe(exc)
                    if not isinstance(exc, Fenced):
                        await asyncio.to_thread(self._coord, lambda c: c.release(claim, msg))
                    log.warning("%s cycle %d on %s failed: %s", w.key, w.cycle, self.node, msg)
                    await self.store.finish(job_id, ok=False, exit_code=code, error=msg,
                                            result=self._result(w, claim, results))
                    return
                await self.store.finish(job_id, ok=True, exit_code=0, error=None,
                                        result=self._result(w, claim, results))
        finally:
            self._busy.discard(w.key)

    def _claim(self, w: _Work) -> Claim | None:
        """Wait out this node's rank, then try to claim; None when another agent got it."""
        assert self.settings.cluster is not None
        deadline = time.monotonic() + self.settings.cluster.lease_s * 4
        while not self.stopping and time.monotonic() < deadline:
            if not self._claimable(w.key, w.cycle):
                return None
            with self.ctx.controller().connect() as ctl:
                inv = take_inventory(ctl)
            rank = self._rank(w.key, w.cycle, inv, w.resources)
            if rank is None:
                return None
            claim = self._try_claim(w, rank)
            if claim is not None:
                return claim
            threading.Event().wait(min(1.0, self.settings.cluster.heartbeat_s / 2))
        return None

    def _back_up(self, w: _Work, claim: Claim, out: list[BackupResult]) -> None:
        """Back up the claimed resources on this node; the first record commits the cycle."""
        committed: list[bool] = []

        def fence(generation: str) -> None:
            if not committed:
                self._coord(lambda c: c.commit(claim, generation))
                committed.append(True)

        def may_delete(snapshot: str) -> bool:
            key = w.key
            d = self._coord(lambda c: c.snapshot_disposition(key, snapshot))
            return d is Disposition.DELETE

        p = w.policy
        opts = BackupOptions.parse(
            p.tracker, verify_sample=p.verify_sample or None,
            read=ReadOptions(rate_bytes_s=self.settings.service.read_rate_mib << 20, progress=False))
        req = LinstorBackup(tuple(w.resources), self.ctx.controller(), node=self.node,
                            cluster=self.settings.linstor.cluster, policy=p.name,
                            selected_by=w.reason, label_properties=tuple(p.label_properties),
                            snapshot=claim.snapshot, fence=fence, may_delete=may_delete,
                            snapshot_slot=self._snapshot_slot)
        out.extend(back_up_resources(self.ctx.repo, req, opts))
        if not committed:  # nothing to record (no volumes): still close the cycle
            self._coord(lambda c: c.commit(claim, None))

    def _result(self, w: _Work, claim: Claim, results: list[BackupResult]) -> dict[str, Any]:
        return {"cluster": {"key": str(w.key), "cycle": w.cycle, "attempt": claim.attempt,
                            "node": self.node, "snapshot": claim.snapshot},
                "backups": [r.to_dict() for r in results]}
