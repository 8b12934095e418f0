"""The backup pipeline: read -> identify -> encode -> store, bounded, executing a `BackupPlan`.

Reads stay sequential and large (a ring of reused buffers), identification and encoding run in
worker threads, chunks are stored in order through a `ChunkSink`. Memory is bounded by the ring
and the window of outstanding chunks, never by the volume size.
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from drbdbackup.engine.sink import ChunkSink
from drbdbackup.engine.source import RingReader, Segment, plan_segments
from drbdbackup.progress import Progress
from drbdbackup.tracking.changemap import chunk_count, ranges_for_positions
from drbdbackup.tracking.plan import BackupPlan, after_spot_check

SPOT_CHECK_CHUNKS = 16


@dataclass(frozen=True)
class ReadOptions:
    """How to read: worker threads, a byte-rate cap (0 = none), progress, spot-check seed."""

    workers: int = max(2, os.cpu_count() or 2)
    rate_bytes_s: int = 0
    progress: bool | None = None
    spot_check_seed: int | None = None
    # called with each read's length before it is read; blocks to share a byte rate with other
    # readers (a cluster agent's node-wide cap, service/throttle.py)
    pacer: Callable[[int], None] | None = None


@dataclass(frozen=True)
class PipelineOutcome:
    """The generation's chunk list and what reading it cost. `plan` is the plan actually run
    (a native map that failed its spot check becomes a full read)."""

    ids: list[bytes]
    plan: BackupPlan
    read_bytes: int
    new_chunks: int
    zero_chunks: int
    stored_bytes: int
    root: str
    tree_height: int


class _Reader:
    """Identifies and encodes chunks in worker threads while the ring reader keeps reading."""

    def __init__(self, sink: ChunkSink, executor: ThreadPoolExecutor, rate: int,
                 pacer: Callable[[int], None] | None = None) -> None:
        self.sink = sink
        self.executor = executor
        self.rate = rate
        self.pacer = pacer
        self.new_chunks = 0
        self.zero_chunks = 0
        self.read_bytes = 0

    def _chunk(self, view: memoryview) -> tuple[bytes, object | None]:
        cid = self.sink.identify(view)
        if cid == self.sink.zero_id or not self.sink.wants(cid):
            return cid, None
        return cid, self.sink.encode(cid, view)

    def read(self, fd: int, ranges: list[tuple[int, int]], progress: Progress) -> dict[int, bytes]:
        """Read `ranges`; return {chunk position: id}."""
        ids: dict[int, bytes] = {}
        reader = RingReader(fd, plan_segments(ranges), rate_bytes_s=self.rate,
                            pacer=self.pacer)
        window: deque[tuple[Segment, list[Future]]] = deque()
        limit = max(1, len(reader.buffers) - 1)
        cs = self.sink.chunk_size
        try:
            for seg in reader:
                futures = [self.executor.submit(self._chunk, seg.data[o : o + cs])
                           for o in range(0, len(seg.data), cs)]
                window.append((seg, futures))
                while len(window) >= limit:
                    self._drain(reader, window.popleft(), ids, progress)
            while window:
                self._drain(reader, window.popleft(), ids, progress)
        finally:
            for _seg, futures in window:
                for f in futures:
                    f.cancel()
            reader.close()
        self.read_bytes += reader.read_bytes
        return ids

    def _drain(self, reader: RingReader, item: tuple[Segment, list[Future]],
               ids: dict[int, bytes], progress: Progress) -> None:
        seg, futures = item
        cs = self.sink.chunk_size
        first = seg.offset // cs
        for k, fut in enumerate(futures):
            cid, encoded = fut.result()
            ids[first + k] = cid
            if cid == self.sink.zero_id:
                self.zero_chunks += 1
            elif encoded is not None and self.sink.wants(cid):
                self.sink.put(cid, encoded, min(cs, len(seg.data) - k * cs))
                self.new_chunks += 1
        progress.advance(len(seg.data))
        reader.release(seg)


def run_pipeline(
    fd: int,
    size: int,
    plan: BackupPlan,
    parent_ids: list[bytes] | None,
    sink: ChunkSink,
    label: str,
    options: ReadOptions,
) -> PipelineOutcome:
    """Read what `plan` says from `fd`, store new chunks and the chunk list through `sink`.

    On any error the sink is aborted (nothing committed); on success it is committed.
    """
    cs = sink.chunk_size
    n = chunk_count(size, cs)
    native = plan.positions is not None
    progress = Progress(len(plan.positions or ()) * cs if native else size, label,
                        enabled=options.progress)
    try:
        with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="chunk") as ex:
            reader = _Reader(sink, ex, options.rate_bytes_s, options.pacer)
            if plan.positions is None:
                got = reader.read(fd, [(0, size)] if size else [], progress)
                ids = [got[i] for i in range(n)]
            else:
                if parent_ids is None or len(parent_ids) != n:
                    raise ValueError("a native map needs the parent's chunk list of the same size")
                changed = {p for p in plan.positions if p < n}
                unchanged = [p for p in range(n) if p not in changed]
                rnd = random.Random(options.spot_check_seed)
                spot = set(rnd.sample(unchanged, min(SPOT_CHECK_CHUNKS, len(unchanged))))
                got = reader.read(fd, ranges_for_positions(changed | spot, cs, size), progress)
                bad = sorted(p for p in spot if got[p] != parent_ids[p])
                plan = after_spot_check(plan, bad, len(spot))
                if bad:
                    rest = [p for p in range(n) if p not in got]
                    got.update(reader.read(fd, ranges_for_positions(rest, cs, size), progress))
                    ids = [got[i] for i in range(n)]
                else:
                    ids = [got.get(i, parent_ids[i]) for i in range(n)]
            root, height = sink.put_chunk_list(ids)
        progress.finish()
        stored = sink.commit()
    except BaseException:
        sink.abort()
        raise
    return PipelineOutcome(ids, plan, reader.read_bytes, reader.new_chunks, reader.zero_chunks,
                           stored, root, height)
