"""LINSTOR API rate limiting shared by every job.

Jobs run the blocking operations in worker threads, each with its own `Controller`
(python-linstor is not thread-safe). A controller made by `throttled` takes one slot of the
service-wide `asyncio_throttle.Throttler` (owned by the event loop) before connecting and before
every API call (the Controller's `before_call` hook). Waits made by python-linstor inside one call
(e.g. its own polling) are not split further. Snapshot data reads are file I/O, not API calls.
"""

from __future__ import annotations

import asyncio

from asyncio_throttle import Throttler

from drbdbackup.linstor.client import Controller, ControllerSettings


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


def ThrottledController(throttle: ApiThrottle, controllers: str | None = None,  # noqa: N802
                        **kwargs: object) -> Controller:
    """A Controller whose connect and API calls each take a throttle slot first."""
    return ControllerSettings(controllers, before_call=throttle.wait_slot, **kwargs).connect()  # type: ignore[arg-type]
