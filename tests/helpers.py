"""Test helpers: run the CLI as a user would, make images, compare files."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None, check: bool = True, timeout: float = 600):
    """Run `python -m drbdbackup ARGS`; return the CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "drbdbackup", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO_ROOT,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"drbdbackup {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc


def cli_json(*args: str, env: dict | None = None) -> dict:
    return json.loads(run_cli(*args, "--json", env=env).stdout)


def make_mixed_image(path: Path, size_mib: int, seed: int = 7) -> None:
    """Random, zero and text-like MiB regions (kind = i % 4), as ../shared/bench/peers.sh."""
    rnd = random.Random(seed)
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
    text = b" ".join(rnd.choice(words) for _ in range(400000))
    blk = 1 << 20
    with open(path, "wb") as f:
        for i in range(size_mib):
            kind = i % 4
            if kind == 0:
                f.write(rnd.randbytes(blk))
            elif kind == 1:
                f.write(bytes(blk))
            else:
                o = rnd.randrange(len(text) - blk)
                f.write(text[o : o + blk])


def scatter_writes(path: Path, fraction: float, block: int = 65536, seed: int = 11) -> list[tuple[int, int]]:
    """Rewrite `fraction` of the file's `block`-sized blocks at random; return touched ranges."""
    size = path.stat().st_size
    rnd = random.Random(seed)
    nblocks = size // block
    picks = rnd.sample(range(nblocks), max(1, int(nblocks * fraction)))
    fd = os.open(path, os.O_RDWR)
    try:
        for b in picks:
            os.pwrite(fd, rnd.randbytes(block), b * block)
        os.fsync(fd)
    finally:
        os.close(fd)
    return [(b * block, block) for b in sorted(picks)]


def files_equal(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0
