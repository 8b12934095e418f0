"""Building hostile bytes for the reader-bounds tests (issue 20), and measuring a child's cost."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
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


# The measured command is forked by this small launcher, never by the test process itself: a
# fork copies the parent's RSS high-water mark (ru_maxrss survives exec), so a child of a large
# pytest process would report pytest's peak instead of its own.
_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.close(int(sys.argv[1]))
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_pid, status, usage = os.wait4(pid, 0)
os.write(int(sys.argv[1]), f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}".encode())
"""


def run_measured(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> Measured:
    """Run `python ARGS` as a child; exit code, output, its own peak RSS (wait4), wall time."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        report_r, report_w = os.pipe()
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(report_w), *args], stdout=out,
                                stderr=err, env=full_env, cwd=str(ROOT), pass_fds=(report_w,),
                                start_new_session=True)
        os.close(report_w)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        seconds = time.monotonic() - start
        with os.fdopen(report_r, "rb") as rep:
            maxrss_kib, rc = (int(x) for x in rep.read().decode().split())
        out.seek(0)
        err.seek(0)
        return Measured(rc, out.read().decode(), err.read().decode(), maxrss_kib / 1024, seconds)
