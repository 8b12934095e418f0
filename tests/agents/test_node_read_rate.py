"""[cluster] read_rate_mib is per node: two backups running at once on one agent share one byte
rate (service/throttle.NodeReadThrottle on the event loop), in-process on a real repository."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from drbdbackup.ops.backup import BackupOptions, FileBackup, ReadOptions, back_up_file
from drbdbackup.ops.maintenance import InitRequest, init
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.service.throttle import NodeReadThrottle

MiB = 1 << 20
RATE = 8 * MiB  # the node's cap
SIZE = 16 * MiB  # per job: two jobs read 32 MiB, at least 3 s under the cap (one window free)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The agent's event loop, running in its own thread."""
    lp = asyncio.new_event_loop()
    t = threading.Thread(target=lp.run_forever, daemon=True)
    t.start()
    try:
        yield lp
    finally:
        lp.call_soon_threadsafe(lp.stop)
        t.join(timeout=10)
        lp.close()


def test_two_concurrent_jobs_on_one_node_stay_under_the_node_rate(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    ref = RepositoryRef.of(str(tmp_path / "repo"))
    init(ref, InitRequest(chunk_size=MiB))
    srcs = []
    for i in range(2):
        src = tmp_path / f"disk{i}.img"
        src.write_bytes(os.urandom(SIZE))
        srcs.append(src)
    throttle = NodeReadThrottle(RATE, loop)
    opts = BackupOptions.parse("full", read=ReadOptions(progress=False, pacer=throttle.pace))
    spans: list[tuple[float, float]] = []

    def job(i: int) -> int:
        t0 = time.monotonic()
        res = back_up_file(ref, FileBackup(str(srcs[i]), f"vol{i}"), opts)
        spans.append((t0, time.monotonic()))
        return res.read_bytes

    start = time.monotonic()
    with ThreadPoolExecutor(2) as ex:
        read = sum(ex.map(job, range(2)))
    elapsed = time.monotonic() - start
    assert read == 2 * SIZE and throttle.bytes == read
    # the throttle admits at most RATE per one-second window: 32 MiB take >= 3 s (a per-job cap
    # of the same rate would let both finish in about 1 s)
    assert elapsed >= (read - RATE) / RATE * 0.95, elapsed
    overlap = min(e for _s, e in spans) - max(s for s, _e in spans)
    assert overlap > elapsed / 3, (spans, elapsed)  # the two jobs really ran at once
    print(f"two jobs, node cap {RATE / MiB:.0f} MiB/s: {read / MiB:.0f} MiB in {elapsed:.2f} s "
          f"= {read / MiB / elapsed:.1f} MiB/s together")
