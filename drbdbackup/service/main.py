"""`drbdbackup serve --config FILE`: run the service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys

from drbdbackup.errors import EXIT_OK, DrbdBackupError, describe
from drbdbackup.service.config import ClusterConfig, Settings, load_config
from drbdbackup.service.daemon import Service

PREFIX = "drbdbackup serve"


def _setup_logging() -> logging.Handler:
    """One line per event on stderr (the service's, the cluster agent's, and warnings of every
    lower layer); returns the handler so serve() can remove it."""
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter(f"%(asctime)s {PREFIX}: %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger("drbdbackup")
    root.addHandler(h)
    root.setLevel(logging.WARNING)
    for name in ("drbdbackup.service", "drbdbackup.cluster"):
        logging.getLogger(name).setLevel(logging.INFO)
    return h


async def run(settings: Settings) -> int:
    """Start the service, wait for a signal, shut down gracefully."""
    log = logging.getLogger("drbdbackup.service")
    svc = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before start: a signal during startup is graceful
        loop.add_signal_handler(sig, stop.set)
    try:
        await svc.start()
        await stop.wait()
        log.info("shutdown requested: no new jobs; waiting for running jobs")
        await svc.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return EXIT_OK


def serve(config_path: str, node: str | None = None) -> int:
    """Blocking entry point for the command line; returns the exit code. `node` overrides the
    config's `[cluster] node` (and turns cluster mode on with defaults when the table is absent)."""
    handler = _setup_logging()
    try:
        settings = load_config(config_path)
        if node:
            base = settings.cluster or ClusterConfig.model_validate({})
            settings.cluster = base.model_copy(update={"node": node})
        return asyncio.run(run(settings))
    except (DrbdBackupError, OSError) as exc:
        code, what = describe(exc)
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            what = "address already in use"
        print(f"{PREFIX}: error: {what}", file=sys.stderr)
        return code
    finally:
        logging.getLogger("drbdbackup").removeHandler(handler)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m drbdbackup.service.main CONFIG", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve(sys.argv[1]))
