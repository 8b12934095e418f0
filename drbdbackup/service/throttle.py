"""LINSTOR API rate limiting shared by every job.

Jobs run the blocking engine in worker threads, each with its own `Controller` (python-linstor is
not thread-safe). `ThrottledController` takes one slot of the service-wide
`asyncio_throttle.Throttler` (owned by the event loop) before connecting and before EVERY
controller API call the engine makes through `Controller._call` — that is every call the engine
issues (version, lists, snapshot create/delete, resource calls). Waits made by python-linstor
inside one call (e.g. its own polling) are not split further. Snapshot data reads are file I/O,
not API calls, and are not throttled here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asyncio_throttle import Throttler

from drbdbackup.linstor.client import Controller


class ApiThrottle:
    """A Throttler usable from worker threads (the slot is taken on the event loop)."""

    def __init__(self, calls_per_second: int, loop: asyncio.AbstractEventLoop) -> None:
        self.throttler = Throttler(rate_limit=calls_per_second, period=1.0)
        self.loop = loop
        self.calls = 0

    async def _take(self) -> None:
        await self.throttler.acquire()
        self.calls += 1

    def wait_slot(self) -> None:
        """Block the calling worker thread until a slot is free (never call on the loop)."""
        asyncio.run_coroutine_threadsafe(self._take(), self.loop).result()


class ThrottledController(Controller):
    """A Controller whose connect and API calls each take a throttle slot first."""

    def __init__(self, throttle: ApiThrottle, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._throttle = throttle

    def __enter__(self) -> ThrottledController:
        self._throttle.wait_slot()
        super().__enter__()
        return self

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._throttle.wait_slot()
        return super()._call(what, fn, *args, **kwargs)
