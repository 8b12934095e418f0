#!/usr/bin/env python3
"""Run one drbdbackup command and report CPU per thread and where the main thread waits.

usage: python bench/threads.py backup --repo R --file IMG --volume-id V --json

Nothing in drbdbackup/ is changed: PackWriter._write and Future.result are wrapped at run time
to time the main thread's pack writes, pack hashing and waits for workers; /proc/self/task is
sampled every 0.2 s for per-thread user/sys time.  Output goes to stderr; the command's own
output is untouched.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import threading
import time
from concurrent.futures import Future

TCK = os.sysconf("SC_CLK_TCK")
_last: dict[int, tuple[float, float]] = {}
_names: dict[int, str] = {}
_acc = {"write": 0.0, "hash": 0.0, "wait": 0.0, "writes": 0, "bytes": 0}
_t0 = time.perf_counter()


def _sample() -> None:
    for t in threading.enumerate():
        if t.native_id:
            _names[t.native_id] = t.name
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            _last[int(tid)] = (int(fields[11]) / TCK, int(fields[12]) / TCK)
        except OSError:
            pass


def _monitor() -> None:
    while True:
        _sample()
        time.sleep(0.2)


def _patch() -> None:
    from drbdbackup.repo import pack

    def _write(self, data):  # same behaviour as PackWriter._write, timed
        t0 = time.perf_counter()
        self._f.write(data)
        t1 = time.perf_counter()
        self._hash.update(data)
        _acc["write"] += t1 - t0
        _acc["hash"] += time.perf_counter() - t1
        _acc["writes"] += 1
        _acc["bytes"] += len(data)
        self.offset += len(data)

    pack.PackWriter._write = _write
    original = Future.result
    main = threading.main_thread()

    def result(self, timeout=None):
        if threading.current_thread() is not main:
            return original(self, timeout)
        t0 = time.perf_counter()
        try:
            return original(self, timeout)
        finally:
            _acc["wait"] += time.perf_counter() - t0

    Future.result = result


def _report() -> None:
    _sample()
    wall = time.perf_counter() - _t0
    agg: dict[str, list[float]] = {}
    for tid, (u, s) in _last.items():
        name = _names.get(tid, "?")
        for prefix in ("chunk", "restore"):
            if name.startswith(prefix):
                name = f"{prefix}-workers"
        a = agg.setdefault(name, [0.0, 0.0, 0])
        a[0] += u
        a[1] += s
        a[2] += 1
    err = sys.stderr
    print(f"wall {wall:.2f} s", file=err)
    for name, (u, s, k) in sorted(agg.items(), key=lambda x: -(x[1][0] + x[1][1])):
        busy = (u + s) / wall / k * 100
        print(
            f"  {name:<20} x{k}: user {u:6.2f} s  sys {s:6.2f} s  busy {busy:5.1f}% each", file=err
        )
    print(
        f"  main thread: pack f.write {_acc['write']:.2f} s, pack hash {_acc['hash']:.2f} s "
        f"({_acc['writes']} writes, {_acc['bytes'] / (1 << 20):.0f} MiB), "
        f"waiting on workers (Future.result) {_acc['wait']:.2f} s",
        file=err,
    )


def main() -> None:
    threading.Thread(target=_monitor, daemon=True, name="bench-monitor").start()
    _patch()
    atexit.register(_report)
    sys.argv = ["drbdbackup", *sys.argv[1:]]
    runpy.run_module("drbdbackup", run_name="__main__")


if __name__ == "__main__":
    main()
