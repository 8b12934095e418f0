#!/usr/bin/env python3
"""CPU cost of each step of the backup pipeline on the bench image, one thread, data in RAM.

usage: python bench/components.py IMAGE [--mib 512]

Reads the first --mib MiB of IMAGE (make one with bench/run.py --keep, or any image from the
same generator) and reports CPU seconds (thread_time, so other load on the machine inflates them
less than wall time) per GiB of image for: chunk ids (BLAKE3, one thread), zstd-1 on text and on
random chunks, the raw-blob copies encode_blob makes, the pack hash, and page-cache writes.
Run it beside bench/run.py to see which part of the CPU budget a change would move.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import blake3
import zstandard

CS = 1 << 20


def timed(fn) -> tuple[float, int, object]:
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0 = time.thread_time()
    out = fn()
    cpu = time.thread_time() - c0
    return cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image")
    ap.add_argument("--mib", type=int, default=512)
    args = ap.parse_args()
    with open(args.image, "rb") as f:
        data = f.read(args.mib * CS)
    view = memoryview(data)
    chunks = [view[i : i + CS] for i in range(0, len(data), CS)]
    gib = len(data) / (1 << 30)
    zero_id = blake3.blake3(bytes(CS)).digest()
    comp = zstandard.ZstdCompressor(level=1, write_content_size=True)

    rows: list[tuple[str, float, int, int]] = []

    def add(name: str, fn, n_chunks: int) -> object:
        cpu, faults, out = timed(fn)
        rows.append((name, cpu, faults, n_chunks))
        return out

    ids = add(
        "BLAKE3 chunk ids (all chunks)",
        lambda: [blake3.blake3(c).digest() for c in chunks],
        len(chunks),
    )
    nonzero = [c for c, i in zip(chunks, ids, strict=True) if i != zero_id]
    texty, randomish = [], []
    for c in nonzero:
        (texty if len(comp.compress(c[: 64 << 10])) < (62 << 10) else randomish).append(c)
    add("zstd-1 compressible chunks", lambda: [comp.compress(c) for c in texty], len(texty))
    add(
        "zstd-1 incompressible chunks",
        lambda: [comp.compress(c) for c in randomish],
        len(randomish),
    )
    add(
        "raw blob: bytes([0]) + bytes(view)",
        lambda: [bytes([0]) + bytes(c) for c in randomish],
        len(randomish),
    )
    add(
        "raw blob: b'\\0' + view (one copy)", lambda: [b"\0" + c for c in randomish], len(randomish)
    )
    outs = [comp.compress(c) for c in texty]
    stored = [b"\1" + o for o in outs] + [b"\0" + c for c in randomish]

    def pack_hash() -> bytes:
        h = blake3.blake3()
        for s in stored:
            h.update(s)
        return h.digest()

    add("pack BLAKE3 over stored bytes", pack_hash, len(stored))
    fd, path = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.image)))
    try:
        with os.fdopen(fd, "wb") as f:
            add("pack write into the page cache", lambda: [f.write(s) for s in stored], len(stored))
    finally:
        os.unlink(path)

    stored_mib = sum(len(s) for s in stored) / CS
    print(
        f"{args.mib} MiB read: {len(chunks)} chunks, {len(chunks) - len(nonzero)} zero, "
        f"{len(texty)} compressible, {len(randomish)} incompressible; stored {stored_mib:.0f} MiB"
    )
    print(f"{'step':<40} {'CPU s/GiB img':>14} {'MiB/s-cpu':>10} {'faults/chunk':>13}")
    total = 0.0
    for name, cpu, faults, n in rows:
        if "one copy" not in name:
            total += cpu
        rate = n / cpu if cpu > 0 else float("inf")
        print(f"{name:<40} {cpu / gib:14.2f} {rate:10.0f} {faults / max(1, n):13.0f}")
    print(f"{'sum (current pipeline, excl. read)':<40} {total / gib:14.2f}")


if __name__ == "__main__":
    main()
