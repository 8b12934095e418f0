"""The assembled service: store + scheduler + HTTP API, with start/stop."""

from __future__ import annotations

import asyncio
import logging
import os

import aiofiles
from aiohttp import web

from drbdbackup.errors import UsageError
from drbdbackup.service.api import build_app
from drbdbackup.service.cluster_agent import ClusterAgent
from drbdbackup.service.config import Settings, split_listen
from drbdbackup.service.jobs import JobContext
from drbdbackup.service.scheduler import Scheduler
from drbdbackup.service.store import JobStore
from drbdbackup.service.throttle import ApiThrottle

log = logging.getLogger("drbdbackup.service")


async def read_secret(path: str, what: str, *, required: bool = True) -> str:
    """The first line of a secret file, stripped; the value is never logged."""
    try:
        async with aiofiles.open(path, encoding="utf-8") as f:
            value = (await f.read()).strip()
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} file {path} is not UTF-8 text") from None
    if required and not value:
        raise UsageError(f"{what} file {path} is empty")
    return value


class Service:
    """`await start()` -> listening and scheduling; `await stop()` -> drained and closed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = JobStore(settings.service.state_db)
        self.scheduler: Scheduler | None = None
        self.runner: web.AppRunner | None = None
        self.agent: ClusterAgent | None = None
        self.port = 0

    async def start(self) -> None:
        s = self.settings
        token = await read_secret(s.service.token_file, "API token")
        password = None
        if s.repository.password_file:
            password = await read_secret(s.repository.password_file, "repository password", required=False)
        password = password or os.environ.get("DRBDBACKUP_PASSWORD") or None
        linstor_token = os.environ.get("DRBDBACKUP_LINSTOR_TOKEN") or None
        if s.linstor.token_file:
            linstor_token = await read_secret(s.linstor.token_file, "LINSTOR token")
        ctx = JobContext(s, password, linstor_token,
                         ApiThrottle(s.service.linstor_api_rate, asyncio.get_running_loop()))
        failed = await self.store.open()
        if failed:
            log.info("marked %d job(s) left running by a previous process as failed", failed)
        self.scheduler = Scheduler(s, self.store, ctx)
        self.runner = web.AppRunner(build_app(self.scheduler, self.store, token.encode()),
                                    access_log=None, handle_signals=False)
        await self.runner.setup()
        host, port = split_listen(s.service.listen)
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError:
            await self.runner.cleanup()
            await self.store.close()
            raise
        server = site._server  # noqa: SLF001 - the only way to learn an ephemeral port
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        await self.scheduler.start()
        if s.cluster is not None:
            self.agent = ClusterAgent(s, ctx, self.store)
            try:
                await self.agent.start()
            except BaseException:
                await self.stop()
                raise
        log.info("listening on http://%s:%d (%d policies, max_jobs %d)", host, self.port,
                 len(s.policy), s.service.max_jobs)

    async def stop(self) -> None:
        """Refuse new jobs, wait for running ones, then close the API and the store."""
        if self.agent is not None:
            await self.agent.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.store.close()
