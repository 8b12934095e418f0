"""Cron loops enqueue backups; a fire is skipped while the policy has a backup pending."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from drbdbackup.service import scheduler as scheduler_mod
from drbdbackup.service.config import Policy, load_config
from drbdbackup.service.daemon import Service
from drbdbackup.service.jobs import Outcome
from drbdbackup.service.scheduler import Scheduler

from .conftest import Env, write_config

POLICY = """
[[policy]]
name = "often"
files = [{ path = "data1.img", volume_id = "vol1" }]
schedule = "* * * * *"

[[policy]]
name = "manual"
files = [{ path = "data2.img", volume_id = "vol2" }]
"""


async def test_cron_loop_fires_a_real_backup(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Scheduler, "next_run", _soon([]))
    svc = Service(load_config(str(write_config(env.tmp, policies=POLICY))))
    await svc.start()
    try:
        for _ in range(200):
            if await svc.store.list_jobs(state="succeeded"):
                break
            await asyncio.sleep(0.05)
        (job, *_rest) = await svc.store.list_jobs(state="succeeded", oldest_first=True)
        assert job["policy"] == "often" and job["kind"] == "backup"
        assert job["result"]["backups"][0]["volume_id"] == "vol1"
    finally:
        await svc.stop()


async def test_fires_are_skipped_while_a_backup_is_pending(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    fires: list[datetime] = []

    async def slow(ctx: object, policy: Policy, kind: str) -> Outcome:
        await asyncio.sleep(0.6)
        return Outcome(True, 0, None, {})

    monkeypatch.setattr(Scheduler, "next_run", _soon(fires))
    monkeypatch.setattr(scheduler_mod, "execute", slow)
    svc = Service(load_config(str(write_config(env.tmp, policies=POLICY))))
    await svc.start()
    try:
        await asyncio.sleep(1.5)
        jobs = await svc.store.list_jobs(limit=100)
    finally:
        await svc.stop()
    assert len(fires) >= 8  # ~every 0.1 s
    assert 2 <= len(jobs) <= 3  # one backup at a time: the other fires were skipped
    assert len([j for j in jobs if j["state"] in ("queued", "running")]) <= 1


def _soon(fires: list[datetime]) -> Callable[..., datetime | None]:
    def soon(self: Scheduler, policy: Policy, after: datetime | None = None) -> datetime | None:
        if not policy.schedule:
            return None
        t = datetime.now(self.tz) + timedelta(seconds=0.1)
        fires.append(t)
        return t

    return soon


def test_next_run_uses_the_configured_zone(env: Env) -> None:
    cfg = write_config(env.tmp, extra_service='timezone = "Europe/Berlin"', policies=POLICY)
    s = load_config(str(cfg))
    sched = Scheduler.__new__(Scheduler)
    from zoneinfo import ZoneInfo

    sched.tz = ZoneInfo("Europe/Berlin")
    after = datetime(2026, 11, 25, 13, 0, 30, tzinfo=sched.tz)
    assert sched.next_run(s.policy[0], after) == datetime(2026, 11, 25, 13, 1, tzinfo=sched.tz)
    assert sched.next_run(s.policy[1], after) is None
