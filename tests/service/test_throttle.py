"""LINSTOR API throttling: worker threads wait for slots taken on the event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from drbdbackup.service.throttle import ApiThrottle, ThrottledController

from .conftest import Running


async def test_slots_from_threads_are_rate_limited() -> None:
    th = ApiThrottle(10, asyncio.get_running_loop())
    t0 = time.monotonic()
    await asyncio.gather(*(asyncio.to_thread(th.wait_slot) for _ in range(15)))
    assert time.monotonic() - t0 >= 0.9 and th.calls == 15


async def test_controller_calls_take_a_slot_each() -> None:
    th = ApiThrottle(1000, asyncio.get_running_loop())
    ctl = ThrottledController(th, "linstor://127.0.0.1:1")

    def calls() -> list[Any]:
        return [ctl._call("x", lambda i=i: i) for i in range(3)]  # noqa: SLF001

    assert await asyncio.to_thread(calls) == [0, 1, 2]
    assert th.calls == 3


async def test_post_during_shutdown_is_503(running: Running) -> None:
    assert running.svc.scheduler is not None
    running.svc.scheduler.stopping = True
    async with running.http.post(f"{running.url}/v1/jobs", json={"policy": "files1"},
                                 headers=running.auth()) as r:
        assert r.status == 503
    assert (await running.get("/v1/status"))["stopping"] is True
