"""The SQLite job store: crash recovery and queued jobs surviving a restart."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from drbdbackup.service.config import load_config
from drbdbackup.service.daemon import Service
from drbdbackup.service.store import CRASHED, JobStore

from .conftest import Env, Running


async def test_crash_recovery_marks_running_failed(tmp_path: Path) -> None:
    db = str(tmp_path / "sub" / "jobs.sqlite")
    s1 = JobStore(db)
    assert await s1.open() == 0
    a = await s1.add("p", "backup", "files:v")
    b = await s1.add("p", "prune", "files:v")
    c = await s1.add("p", "verify", "files:v")
    await s1.mark_running(a)
    await s1.mark_running(c)
    await s1.finish(c, ok=True, exit_code=0, error=None, result={"x": 1})
    await s1.close()  # as if the process died with job a running

    s2 = JobStore(db)
    assert await s2.open() == 1
    ja, jb, jc = [await s2.get(i) for i in (a, b, c)]
    assert ja and ja["state"] == "failed" and ja["error"] == CRASHED and ja["finished"]
    assert jb and jb["state"] == "queued"
    assert jc and jc["state"] == "succeeded" and jc["result"] == {"x": 1}
    assert await s2.counts() == {"queued": 1, "running": 0, "succeeded": 1, "failed": 1}
    assert await s2.pending("p", "prune") and not await s2.pending("p", "backup")
    assert [j["id"] for j in await s2.list_jobs(limit=2)] == [c, b]
    await s2.close()


async def test_service_start_recovers_and_resumes_queued(env: Env) -> None:
    db = str(env.tmp / "state" / "jobs.sqlite")
    pre = JobStore(db)
    await pre.open()
    crashed = await pre.add("files1", "backup", "files:vol1")
    await pre.mark_running(crashed)
    queued = await pre.add("files2", "backup", "files:vol2")
    gone = await pre.add("removed-policy", "backup", "files:x")
    await pre.close()

    svc = Service(load_config(str(env.config)))
    await svc.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            j = await svc.store.get(queued)
            if j and j["state"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.05)
        jc, jq, jg = [await svc.store.get(i) for i in (crashed, queued, gone)]
        assert jc and jc["state"] == "failed" and jc["error"] == "service stopped while running"
        assert jq and jq["state"] == "succeeded", jq
        assert jg and jg["state"] == "failed" and "no longer configured" in jg["error"]
    finally:
        await svc.stop()
    rows = sqlite3.connect(db).execute("SELECT state FROM jobs ORDER BY id").fetchall()
    assert rows == [("failed",), ("succeeded",), ("failed",)]


async def test_status_counts(running: Running) -> None:
    await running.wait_job(await running.post_job("files2"))
    st = await running.get("/v1/status")
    assert st["jobs"]["succeeded"] == 1 and st["running"] == 0 and st["uptime_s"] >= 0
