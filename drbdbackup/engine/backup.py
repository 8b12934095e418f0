"""The backup pipeline: plan -> read -> hash -> compress/seal -> pack -> index -> record."""

from __future__ import annotations

import os
import random
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from drbdbackup.engine.progress import Progress
from drbdbackup.engine.source import RingReader, Segment, open_source, plan_segments
from drbdbackup.engine.tuning import tune_allocator
from drbdbackup.errors import DrbdBackupError, IntegrityError, UsageError
from drbdbackup.repo.blob import KIND_DATA, KIND_TREE, encode_blob
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.locks import Lock
from drbdbackup.repo.records import (
    GenerationRecord,
    check_volume_id,
    iso,
    new_generation_id,
    now,
)
from drbdbackup.repo.repository import BlobWriter, Repository
from drbdbackup.repo.tree import build_tree
from drbdbackup.tracking.changemap import (
    changed_bytes,
    changed_positions,
    chunk_count,
    ranges_for_positions,
)
from drbdbackup.tracking.validity import Lineage, judge

TRACKERS = ("auto", "checksum", "reflink", "thin-delta", "full")
SPOT_CHECK_CHUNKS = 16


@dataclass
class NativeMap:
    """A change map from the storage (reflink extents, thin_delta): chunk positions that changed."""

    tracker: str
    positions: set[int]


@dataclass
class BackupRequest:
    """What to back up and how."""

    source_path: str
    volume_id: str
    tracker: str = "auto"
    source_info: dict = field(default_factory=dict)
    size_limit: int | None = None
    native_map: NativeMap | None = None
    lineage: dict = field(default_factory=dict)
    progress: bool | None = None
    workers: int = max(2, os.cpu_count() or 2)
    spot_check_seed: int | None = None
    read_rate_bytes_s: int = 0  # 0 = unlimited
    native_skipped_reason: str | None = None  # why a native map was deliberately not used
    defer_audit: bool = False  # the caller appends the audit entry (e.g. with a verification verdict)


@dataclass
class BackupResult:
    """The `backup --json` object (DESIGN section 9)."""

    volume_id: str
    generation: str
    parent: str | None
    mode: str
    tracker: str
    map_validity: str
    fallback_reason: str | None
    size_bytes: int
    read_bytes: int
    changed_bytes: int
    stored_bytes: int
    new_chunks: int
    zero_chunks: int
    chunk_count: int
    duration_s: float
    root: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, rec: GenerationRecord) -> BackupResult:
        """The result is the record's summary plus its stats."""
        return cls(
            volume_id=rec.volume_id,
            generation=rec.generation,
            parent=rec.parent,
            mode=rec.mode,
            tracker=rec.tracker,
            map_validity=rec.map_validity,
            fallback_reason=rec.fallback_reason,
            size_bytes=rec.size_bytes,
            chunk_count=rec.chunk_count,
            root=rec.root,
            **rec.stats,
        )


class _Pipeline:
    """Hashes and encodes chunks in worker threads while the ring reader keeps reading."""

    def __init__(self, repo: Repository, writer: BlobWriter, executor: ThreadPoolExecutor) -> None:
        self.repo = repo
        self.writer = writer
        self.executor = executor
        self.chunk_size = repo.chunk_size
        self.new_chunks = 0
        self.zero_chunks = 0
        self.read_rate = 0

    def _chunk(self, view: memoryview) -> tuple[bytes, bytes | None]:
        hasher = self.repo.hasher
        cid = hasher.id(view)
        if cid == hasher.zero_id(len(view)):
            return ZERO_ID, None
        if not self.writer.needs(cid):
            return cid, None
        return cid, encode_blob(view, cid, self.repo.enc_key)

    def run(self, fd: int, ranges: list[tuple[int, int]], progress: Progress) -> tuple[dict[int, bytes], int]:
        """Read `ranges`; return ({position: id}, bytes read)."""
        ids: dict[int, bytes] = {}
        reader = RingReader(fd, plan_segments(ranges), rate_bytes_s=self.read_rate)
        window: deque[tuple[Segment, list[Future]]] = deque()
        limit = max(1, len(reader.buffers) - 1)
        try:
            for seg in reader:
                futures = [
                    self.executor.submit(self._chunk, seg.data[o : o + self.chunk_size])
                    for o in range(0, len(seg.data), self.chunk_size)
                ]
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
        return ids, reader.read_bytes

    def _drain(
        self,
        reader: RingReader,
        item: tuple[Segment, list[Future]],
        ids: dict[int, bytes],
        progress: Progress,
    ) -> None:
        seg, futures = item
        first = seg.offset // self.chunk_size
        for k, fut in enumerate(futures):
            cid, stored = fut.result()
            ids[first + k] = cid
            if cid == ZERO_ID:
                self.zero_chunks += 1
            elif stored is not None and self.writer.needs(cid):
                plain_len = min(self.chunk_size, len(seg.data) - k * self.chunk_size)
                self.writer.add(KIND_DATA, cid, stored, plain_len)
                self.new_chunks += 1
        progress.advance(len(seg.data))
        reader.release(seg)


def _parent(repo: Repository, volume_id: str) -> tuple[GenerationRecord | None, list[bytes] | None, bool]:
    gens = repo.generation_ids(volume_id)
    if not gens:
        return None, None, True
    try:
        rec = repo.read_record(volume_id, gens[-1])
        return rec, repo.chunk_ids(rec), True
    except IntegrityError:
        try:
            return repo.read_record(volume_id, gens[-1]), None, False
        except IntegrityError:
            return None, None, False


def run_backup(repo: Repository, req: BackupRequest) -> BackupResult:
    """Back up one volume; the generation record is written last."""
    check_volume_id(req.volume_id)
    if req.tracker not in TRACKERS:
        raise UsageError(f"unknown tracker {req.tracker!r}: use one of {', '.join(TRACKERS)}")
    tune_allocator()
    start = time.monotonic()
    with Lock(repo.backend, exclusive=False, operation="backup"):
        repo.load_index()
        fd, dev_size, _is_block = open_source(req.source_path)
        try:
            return _backup_locked(repo, req, fd, dev_size, start)
        finally:
            os.close(fd)


def _backup_locked(
    repo: Repository, req: BackupRequest, fd: int, dev_size: int, start: float
) -> BackupResult:
    size = min(dev_size, req.size_limit) if req.size_limit is not None else dev_size
    cs = repo.chunk_size
    n = chunk_count(size, cs)
    parent, parent_ids, intact = _parent(repo, req.volume_id)
    facts = Lineage(
        parent_exists=parent is not None or not intact,
        parent_intact=intact and parent_ids is not None if parent is not None else intact,
        size_now=size,
        size_parent=parent.size_bytes if parent else 0,
        chunk_size_now=cs,
        chunk_size_parent=parent.chunk_size if parent else 0,
        forced_full=req.tracker == "full",
        forced_full_reason="full backup requested (--tracker full)",
        **req.lineage,
    )
    verdict = judge(facts)
    native = req.native_map if verdict.usable else None
    if req.tracker in ("reflink", "thin-delta") and req.native_map is None and verdict.usable:
        raise UsageError(f"tracker {req.tracker} is not available for this source")
    fallback_reason = None if verdict.code in ("no-parent", "forced-full", "valid") else verdict.reason
    if verdict.usable and native is None and req.native_skipped_reason:
        fallback_reason = req.native_skipped_reason
    if verdict.usable:
        mode, tracker = "incremental", (native.tracker if native else "checksum")
    else:
        mode, tracker = "full", "full"

    progress_total = size if native is None else len(native.positions) * cs
    progress = Progress(progress_total, f"backup {req.volume_id}", enabled=req.progress)
    writer = repo.writer()
    writer.start_background()
    ids: list[bytes]
    try:
        with ThreadPoolExecutor(max_workers=req.workers, thread_name_prefix="chunk") as ex:
            pipe = _Pipeline(repo, writer, ex)
            pipe.read_rate = req.read_rate_bytes_s
            if native is None:
                got, read_bytes = pipe.run(fd, [(0, size)] if size else [], progress)
                ids = [got[i] for i in range(n)]
            else:
                assert parent_ids is not None
                changed = {p for p in native.positions if p < n}
                rnd = random.Random(req.spot_check_seed)
                unchanged = [p for p in range(n) if p not in changed]
                spot = set(rnd.sample(unchanged, min(SPOT_CHECK_CHUNKS, len(unchanged))))
                got, read_bytes = pipe.run(fd, ranges_for_positions(changed | spot, cs, size), progress)
                bad = sorted(p for p in spot if got[p] != parent_ids[p])
                if bad:
                    fallback_reason = (
                        f"{native.tracker} map failed its spot check: chunk {bad[0]} changed but the "
                        f"map called it unchanged ({len(bad)} of {len(spot)} sampled); full read"
                    )
                    mode, tracker = "full", "full"
                    rest = [p for p in range(n) if p not in got]
                    more, more_bytes = pipe.run(fd, ranges_for_positions(rest, cs, size), progress)
                    got.update(more)
                    read_bytes += more_bytes
                    ids = [got[i] for i in range(n)]
                else:
                    ids = [got.get(i, parent_ids[i]) for i in range(n)]
            root, height, nodes = build_tree(ids, repo.fanout, repo.hasher.id)
            for nid, data in nodes:
                if writer.needs(nid):
                    writer.add(KIND_TREE, nid, encode_blob(data, nid, repo.enc_key), len(data))
        progress.finish()
        writer.commit()
    except BaseException:
        writer.abort()
        raise

    diff = changed_positions(parent_ids if parent_ids and len(parent_ids) == n else None, ids)
    created = now()
    rec = GenerationRecord(
        repository_id=repo.id,
        volume_id=req.volume_id,
        generation=new_generation_id(created),
        created=iso(created),
        parent=parent.generation if (parent and mode == "incremental") else None,
        mode=mode,
        tracker=tracker,
        map_validity=verdict.code,
        fallback_reason=fallback_reason,
        size_bytes=size,
        chunk_size=cs,
        chunk_count=n,
        root=root.hex(),
        tree_height=height,
        source=req.source_info or {"kind": "file", "path": os.path.abspath(req.source_path)},
        stats={
            "read_bytes": read_bytes,
            "changed_bytes": changed_bytes(diff, size, cs),
            "stored_bytes": writer.stored_bytes,
            "new_chunks": pipe.new_chunks,
            "zero_chunks": pipe.zero_chunks,
            "duration_s": round(time.monotonic() - start, 3),
        },
    )
    result = BackupResult.from_record(rec)
    repo.write_record(rec)
    if not req.defer_audit:
        try:
            repo.audit("backup", audit_details(result))
        except DrbdBackupError as exc:
            raise type(exc)(
                f"generation {rec.generation} of {req.volume_id} is stored, but its audit entry "
                f"could not be written: {exc}"
            ) from None
    return result


def audit_details(result: BackupResult, verification: dict | None = None) -> dict:
    """The backup audit entry's details (no secrets, no paths beyond the volume id)."""
    details = {k: v for k, v in result.to_dict().items() if k != "root"}
    if verification is not None:
        details["verification"] = {
            k: verification.get(k)
            for k in ("ok", "verdict", "chunks_checked", "chunks_failed", "exit_code", "sample")
        }
    return details
