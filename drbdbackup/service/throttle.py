"""Rates shared by every job: LINSTOR API calls (`ApiThrottle`) and, for a cluster agent, the
node's snapshot reads (`NodeReadThrottle`).

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


READ_UNIT = 64 << 10  # the node read rate is metered in 64 KiB units


class NodeReadThrottle:
    """A byte rate shared by every job of one agent ([cluster] read_rate_mib: per node, not per
    job). Each read takes ceil(length / 64 KiB) slots of one `asyncio_throttle.Throttler` on the
    event loop, so any one-second window admits at most the rate (plus one read in progress)."""

    def __init__(self, bytes_per_s: int, loop: asyncio.AbstractEventLoop) -> None:
        self.units_per_s = max(1, bytes_per_s // READ_UNIT)
        self.throttler = Throttler(rate_limit=self.units_per_s, period=1.0)
        self.loop = loop
        self.bytes = 0  # admitted so far (all jobs)

    async def _take(self, units: int, length: int) -> None:
        for _ in range(units):
            await self.throttler.acquire()
        self.bytes += length

    def pace(self, length: int) -> None:
        """Block the calling reader thread until `length` more bytes fit the node's rate."""
        units = max(1, -(-length // READ_UNIT))
        asyncio.run_coroutine_threadsafe(self._take(units, length), self.loop).result()
