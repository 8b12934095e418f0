"""Cron schedules -> queued jobs, and the job runner with its concurrency limits.

Concurrency: a global semaphore of `max_jobs`, and a semaphore of `max_jobs_per_node` per POLICY.
The node a LINSTOR backup reads from is only known once the engine resolves the resource inside the
job, so the per-node limit is applied per policy (a policy's jobs are typically the volumes of
one workload). With the default of 1, a policy's jobs never overlap. The repository's own locks
still arbitrate between jobs of different policies (a prune waits for no one: it fails with
"locked" when a backup holds the repository).

A scheduled backup is skipped (logged) if the policy already has a backup queued or running.
Schedules are evaluated in `[service] timezone` (default UTC).

A policy with `verify_coverage_days` gets a verify job whenever the coverage planner has work
due: checked every `jobs.COVERAGE_TICK_S` and right after each of its backups (verify-new),
unless a verify job of the policy is already queued or running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from drbdbackup.service import anchor, jobs
from drbdbackup.service.config import Policy, Settings
from drbdbackup.service.cron import parse_cron
from drbdbackup.service.jobs import JobContext, Outcome, execute
from drbdbackup.service.store import JobStore

log = logging.getLogger("drbdbackup.service")


class Stopping(Exception):
    """The service is shutting down and accepts no new jobs."""


class Clustered(Exception):
    """A LINSTOR backup in cluster mode: the agents' cycles run it, not the job queue."""


class Scheduler:
    """Owns the job tasks. Call `start()`, `submit()`, then `stop()`."""

    def __init__(self, settings: Settings, store: JobStore, ctx: JobContext) -> None:
        self.settings = settings
        self.store = store
        self.ctx = ctx
        self.global_sem = asyncio.Semaphore(settings.service.max_jobs)
        self.policy_sems = {p.name: asyncio.Semaphore(settings.service.max_jobs_per_node)
                            for p in settings.policy}
        self.tz = ZoneInfo(settings.service.timezone)
        self.stopping = False
        self.running: set[int] = set()
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._cron_tasks: list[asyncio.Task[None]] = []

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume jobs queued before a restart and start one cron loop per scheduled policy."""
        for job in await self.store.list_jobs(state="queued", limit=1_000_000, oldest_first=True):
            policy = self.settings.policy_named(job["policy"])
            if policy is None:
                await self.store.finish(job["id"], ok=False, exit_code=2, result=None,
                                        error=f"policy {job['policy']} is no longer configured")
                continue
            self._spawn(job["id"], policy, job["kind"])
        for p in self.settings.policy:
            if p.schedule and not self.clustered(p):
                self._cron_tasks.append(asyncio.create_task(self._cron_loop(p), name=f"cron-{p.name}"))
            if p.verify_coverage_days:
                self._cron_tasks.append(asyncio.create_task(self._coverage_loop(p), name=f"coverage-{p.name}"))

    async def stop(self) -> None:
        """Stop accepting jobs, drop not-yet-started ones (they stay queued for the next start),
        and wait for running jobs to finish: they hold repository locks and LINSTOR snapshots."""
        self.stopping = True
        for t in self._cron_tasks:
            t.cancel()
        for job_id, task in list(self.tasks.items()):
            if job_id not in self.running:
                task.cancel()
        if self.running:
            log.info("shutdown: waiting for %d running job(s)", len(self.running))
        await asyncio.gather(*self._cron_tasks, *self.tasks.values(), return_exceptions=True)

    # ---- jobs -------------------------------------------------------------------------------

    def clustered(self, policy: Policy) -> bool:
        """In cluster mode, LINSTOR backups are claimed per cycle by the agents, not queued."""
        return self.settings.cluster is not None and policy.selects_linstor

    async def submit(self, policy: Policy, kind: str) -> int:
        """Queue a job; returns its id. Raises Stopping during shutdown, Clustered for a backup
        that the cluster agents claim on their schedule."""
        if self.stopping:
            raise Stopping("the service is shutting down")
        if kind == "backup" and self.clustered(policy):
            raise Clustered(f"policy {policy.name} is backed up by the cluster agents on its "
                            "schedule (one agent per cycle claims each resource)")
        job_id = await self.store.add(policy.name, kind, policy.target())
        self._spawn(job_id, policy, kind)
        return job_id

    def _spawn(self, job_id: int, policy: Policy, kind: str) -> None:
        task = asyncio.create_task(self._run(job_id, policy, kind), name=f"job-{job_id}")
        self.tasks[job_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(job_id, None))

    async def _run(self, job_id: int, policy: Policy, kind: str) -> None:
        async with self.policy_sems[policy.name], self.global_sem:  # policy first: never hold a global slot idle
            if self.stopping:
                return  # stays queued; picked up again on the next start
            self.running.add(job_id)  # from here on the task is never cancelled
            try:
                await self.store.mark_running(job_id)
                log.info("job %d started: %s %s (%s)", job_id, kind, policy.name, policy.target())
                t0 = time.monotonic()
                try:
                    out = await execute(self.ctx, policy, kind)
                except Exception as exc:  # noqa: BLE001 - execute should not raise; be safe
                    out = Outcome(False, 3, f"internal error: {type(exc).__name__}: {exc}")
                await self.store.finish(job_id, ok=out.ok, exit_code=out.exit_code,
                                        error=out.error, result=out.result)
                await anchor.observe_quietly(self.store, self.ctx.repo)
                if kind == "backup" and out.ok and policy.verify_coverage_days:
                    task = asyncio.create_task(self._coverage_now(policy), name=f"verify-new-{job_id}")
                    self._cron_tasks.append(task)  # stop() waits for it
                    task.add_done_callback(self._cron_tasks.remove)
                log.info("job %d %s: %s %s in %.1fs (exit %d)%s", job_id,
                         "succeeded" if out.ok else "failed", kind, policy.name,
                         time.monotonic() - t0, out.exit_code, f": {out.error}" if out.error else "")
            finally:
                self.running.discard(job_id)

    # ---- coverage verification --------------------------------------------------------------

    async def _coverage_now(self, policy: Policy) -> None:
        """Queue a verify job if the planner has work due and none is queued or running."""
        if self.stopping or await self.store.pending(policy.name, "verify"):
            return
        try:
            due = await asyncio.to_thread(jobs.coverage_due, self.ctx, policy)
        except Exception as exc:  # noqa: BLE001 - planning again on the next tick
            log.warning("policy %s: cannot plan verification: %s", policy.name, exc)
            return
        if due:
            try:
                await self.submit(policy, "verify")
            except Stopping:
                return

    async def _coverage_loop(self, policy: Policy) -> None:
        while not self.stopping:
            await self._coverage_now(policy)
            await asyncio.sleep(jobs.COVERAGE_TICK_S)

    # ---- schedules --------------------------------------------------------------------------

    def next_run(self, policy: Policy, after: datetime | None = None) -> datetime | None:
        if not policy.schedule:
            return None
        return parse_cron(policy.schedule).next_after(after or datetime.now(self.tz))

    async def _cron_loop(self, policy: Policy) -> None:
        while not self.stopping:
            fire = self.next_run(policy)
            if fire is None:
                log.info("policy %s: schedule %r never fires again", policy.name, policy.schedule)
                return
            while (delay := (fire - datetime.now(self.tz)).total_seconds()) > 0:
                await asyncio.sleep(min(delay, 60.0))  # re-check: clock jumps, suspend
                if self.stopping:
                    return
            if await self.store.pending(policy.name, "backup"):
                log.info("policy %s: scheduled backup skipped, one is already queued or running",
                         policy.name)
                continue
            try:
                await self.submit(policy, "backup")
            except Stopping:
                return
