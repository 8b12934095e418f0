"""Building hostile bytes for the reader-bounds tests (issue 20), and measuring a child's cost."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[2]
HUGE = 4_000_000_000


@functools.cache
def zero_frame(size: int = HUGE) -> bytes:
    """One zstd frame of `size` zero bytes with its content size in the header (~122 KB for 4e9)."""
    c = zstandard.ZstdCompressor(level=1).compressobj(size=size)
    block = bytes(1 << 24)
    parts = [c.compress(block) for _ in range(size // len(block))]
    parts.append(c.compress(bytes(size % len(block))))
    parts.append(c.flush())
    return b"".join(parts)


def nested_arrays(depth: int = 200_000) -> bytes:
    """`depth` nested JSON arrays: json.loads raises RecursionError on it."""
    return b"[" * depth + b"]" * depth


@dataclass
class Measured:
    rc: int
    out: str
    err: str
    max_rss_mib: float
    seconds: float


def run_measured(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> Measured:
    """Run `python ARGS` as a child; exit code, output, peak RSS of that child (wait4), wall time."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, env=full_env,
                                cwd=str(ROOT))
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read().decode(), err.read().decode(),
                        usage.ru_maxrss / 1024, seconds)
