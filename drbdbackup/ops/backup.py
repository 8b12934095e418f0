"""Back up one volume into a generation: parent, plan, pipeline, record, audit, verification.

`back_up_file` is the whole operation for a file or block device; `ops.backup_linstor` wraps
the same per-volume step (`store_generation`) with LINSTOR snapshots.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from drbdbackup.engine.pipeline import (  # ReadOptions: re-exported for front ends
    PipelineOutcome,
    ReadOptions,
    run_pipeline,
)
from drbdbackup.engine.source import open_source
from drbdbackup.engine.tuning import tune_allocator
from drbdbackup.errors import DrbdBackupError, IntegrityError, UsageError
from drbdbackup.linstor.lineage import LinstorFacts
from drbdbackup.ops.session import LockMode, RepositoryRef, Session, operation
from drbdbackup.ops.verification import VerifyRequest, run_verifier, verdict_summary
from drbdbackup.repo import audit
from drbdbackup.repo.records import (
    GenerationRecord,
    check_volume_id,
    iso,
    new_generation_id,
    now,
    record_name,
)
from drbdbackup.repo.repository import Repository
from drbdbackup.repo.sink import RepositorySink
from drbdbackup.tracking.changemap import changed_bytes, changed_positions, chunk_count
from drbdbackup.tracking.plan import (
    NativeOffer,
    Tracker,
    TrackerUnavailable,
    parse_tracker,
    plan_backup,
)
from drbdbackup.tracking.validity import Lineage


@dataclass(frozen=True)
class BackupOptions:
    """How every volume of one backup operation is read and checked."""

    tracker: Tracker = Tracker.AUTO
    verify_sample: float | None = None  # run the verifier on this sample rate afterwards
    read: ReadOptions = ReadOptions()
    checksum_every: int = 14  # LINSTOR: every N-th generation reads everything (0 = never)

    @classmethod
    def parse(cls, tracker: str, **kwargs: Any) -> BackupOptions:
        try:
            return cls(tracker=parse_tracker(tracker), **kwargs)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class BackupResult:
    """The `backup --json` object (DESIGN section 9)."""

    volume_id: str
    generation: str
    parent: str | None
    mode: str
    tracker: str
    tracker_reason: str
    map_validity: str
    fallback_reason: str | None
    node: str | None
    size_bytes: int
    read_bytes: int
    changed_bytes: int
    stored_bytes: int
    new_chunks: int
    zero_chunks: int
    chunk_count: int
    duration_s: float
    root: str
    verification: dict[str, Any] | None = None
    record_sha256: str = ""  # SHA-256 of the record's stored bytes (its audit entry names it)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["verification"] is None:
            del d["verification"]
        return d

    @property
    def verified_ok(self) -> bool:
        return self.verification is None or bool(self.verification.get("ok"))

    def audit_details(self) -> dict[str, Any]:
        """The backup audit entry (no secrets, no paths beyond the volume id)."""
        d = {k: v for k, v in self.to_dict().items()
             if k not in ("root", "verification", "record_sha256")}
        if self.verification is not None:
            d["verification"] = verdict_summary(self.verification)
        return d


@dataclass(frozen=True)
class Parent:
    """The volume's latest generation as the next one sees it: its record and chunk list, or
    what is left of it (`intact` False: the record or its tree does not read)."""

    record: GenerationRecord | None
    ids: list[bytes] | None
    intact: bool

    @classmethod
    def read(cls, repo: Repository, volume_id: str) -> Parent:
        gens = repo.generation_ids(volume_id)
        if not gens:
            return cls(None, None, True)
        try:
            rec = repo.read_record(volume_id, gens[-1])
        except IntegrityError:
            return cls(None, None, False)
        try:
            return cls(rec, repo.chunk_ids(rec), True)
        except IntegrityError:
            return cls(rec, None, False)

    def lineage(self, size: int, chunk_size: int, facts: LinstorFacts | None = None) -> Lineage:
        """The lineage facts the plan judges: the parent's, and LINSTOR's when there are any."""
        rec = self.record
        more: dict[str, Any] = {}
        if facts is not None:
            more = {
                "replica_up_to_date": facts.replica_up_to_date,
                "resource_uuid_matches": facts.resource_uuid_matches,
                "volume_uuid_matches": facts.volume_uuid_matches,
                "same_placement": facts.same_placement,
                "placement_change": facts.placement_change,
                "parent_snapshot_exists": facts.parent_snapshot_exists,
                "parent_snapshot_uuid_matches": facts.parent_snapshot_uuid_matches,
            }
        return Lineage(
            parent_exists=rec is not None or not self.intact,
            parent_intact=self.intact and (rec is None or self.ids is not None),
            size_now=size,
            size_parent=rec.size_bytes if rec else 0,
            chunk_size_now=chunk_size,
            chunk_size_parent=rec.chunk_size if rec else 0,
            **more,
        )


@dataclass(frozen=True)
class RecordContext:
    """What a generation record says about why and for whom it was made (format 2 fields)."""

    policy: str | None = None
    selected_by: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    linstor: dict[str, Any] | None = None
    group_members: list[str] | None = None


@dataclass
class VolumeJob:
    """One volume to store: where to read it, and what is known about its history."""

    path: str
    volume_id: str
    source_info: dict[str, Any]
    size_limit: int | None = None
    offer: NativeOffer | None = None  # None: the source has no native tracking at all
    facts: LinstorFacts | None = None  # what LINSTOR says about the parent's snapshot
    periodic_streak: int = 0
    parent: Parent | None = None
    fence: Callable[[str], None] | None = None  # called with the generation id right before
    # the record is written; raises to refuse it (a cluster agent's fencing commit)
    context: RecordContext = field(default_factory=RecordContext)


def store_generation(s: Session, job: VolumeJob, opts: BackupOptions) -> BackupResult:
    """Read the volume as planned and write its generation record (the caller audits)."""
    repo = s.repo
    start = time.monotonic()
    check_volume_id(job.volume_id)
    repo.ensure_current_format()
    fd, dev_size, _is_block = open_source(job.path)
    try:
        size = min(dev_size, job.size_limit) if job.size_limit is not None else dev_size
        parent = job.parent or Parent.read(repo, job.volume_id)
        lineage = parent.lineage(size, repo.chunk_size, job.facts)
        try:
            plan = plan_backup(opts.tracker, lineage, job.offer,
                               periodic_streak=job.periodic_streak,
                               checksum_every=opts.checksum_every)
        except TrackerUnavailable as exc:
            raise UsageError(str(exc)) from None
        out = run_pipeline(fd, size, plan, parent.ids, RepositorySink(repo),
                           f"backup {job.volume_id}", opts.read)
    finally:
        os.close(fd)
    rec = _record(repo, job, parent, size, out, round(time.monotonic() - start, 3))
    if job.fence is not None:
        job.fence(rec.generation)
    digest = _write_tied(s, rec, parent)
    return BackupResult(
        volume_id=rec.volume_id, generation=rec.generation, parent=rec.parent, mode=rec.mode,
        tracker=rec.tracker, tracker_reason=out.plan.tracker_reason, map_validity=rec.map_validity,
        fallback_reason=rec.fallback_reason, node=job.source_info.get("node"),
        size_bytes=rec.size_bytes, chunk_count=rec.chunk_count, root=rec.root, **rec.stats,
        record_sha256=digest,
    )


def _stored_sha256(repo: Repository, rec: GenerationRecord) -> str:
    return hashlib.sha256(repo.backend.get(record_name(rec.volume_id, rec.generation))).hexdigest()


def _write_tied(s: Session, rec: GenerationRecord, parent: Parent) -> str:
    """Write the record tied to the audit log (format.md section 13): first the entry a crashed
    run left out for the parent record, then the record pinning the current head; returns the
    SHA-256 of the stored record, which its audit entry names."""
    repo, prev = s.repo, parent.record
    if prev is not None and prev.audit_prev is not None and not audit.names_record(
        repo.backend, prev.audit_prev["seq"], prev.volume_id, prev.generation
    ):
        s.late_entry({"volume_id": prev.volume_id, "generation": prev.generation,
                      "sha256": _stored_sha256(repo, prev)},
                     "the run that wrote this record stopped before its audit entry")
    rec.audit_prev = audit.head(repo.backend).to_dict()
    repo.write_record(rec)
    return _stored_sha256(repo, rec)


def _record(repo: Repository, job: VolumeJob, parent: Parent, size: int, out: PipelineOutcome,
            duration_s: float) -> GenerationRecord:
    """The generation record for what the pipeline stored (format.md section 9)."""
    plan = out.plan
    n = chunk_count(size, repo.chunk_size)
    comparable = parent.ids if parent.ids and len(parent.ids) == n else None
    created = now()
    return GenerationRecord(
        repository_id=repo.id,
        volume_id=job.volume_id,
        generation=new_generation_id(created),
        created=iso(created),
        parent=parent.record.generation if (parent.record and plan.mode == "incremental") else None,
        mode=plan.mode.value,
        tracker=plan.tracker.value,
        map_validity=plan.map_validity,
        fallback_reason=plan.fallback_reason,
        size_bytes=size,
        chunk_size=repo.chunk_size,
        chunk_count=n,
        root=out.root,
        tree_height=out.tree_height,
        source=job.source_info,
        stats={
            "read_bytes": out.read_bytes,
            "changed_bytes": changed_bytes(changed_positions(comparable, out.ids), size,
                                           repo.chunk_size),
            "stored_bytes": out.stored_bytes,
            "new_chunks": out.new_chunks,
            "zero_chunks": out.zero_chunks,
            "duration_s": duration_s,
        },
        tracker_reason=plan.tracker_reason,
        policy=job.context.policy,
        selected_by=job.context.selected_by,
        labels=dict(job.context.labels),
        linstor=job.context.linstor,
        group_members=job.context.group_members,
    )


def finish_generation(s: Session, ref: RepositoryRef, result: BackupResult,
                      opts: BackupOptions) -> BackupResult:
    """Verify (when asked) and write the generation's one audit entry."""
    if opts.verify_sample:
        verdict = run_verifier(ref, VerifyRequest(result.volume_id, result.generation,
                                                  opts.verify_sample))
        result = replace(result, verification=verdict)
    record = {"volume_id": result.volume_id, "generation": result.generation,
              "sha256": result.record_sha256}
    try:
        s.succeeded("backup", result.audit_details(), record=record)
    except DrbdBackupError as exc:
        raise type(exc)(
            f"generation {result.generation} of {result.volume_id} is stored, but its audit "
            f"entry could not be written: {exc}"
        ) from None
    return result


@dataclass(frozen=True)
class FileBackup:
    """A regular file or block device, stored under `volume_id`."""

    path: str
    volume_id: str
    policy: str | None = None  # the service policy it is made for (recorded; prune per policy)


def back_up_file(ref: RepositoryRef, req: FileBackup, opts: BackupOptions) -> BackupResult:
    """The whole `backup --file` operation."""
    check_volume_id(req.volume_id)
    tune_allocator()
    with operation(ref, "backup", lock=LockMode.SHARED,
                   audit_failure={"volume_id": req.volume_id, "resources": None}) as s:
        s.repo.load_index()
        job = VolumeJob(req.path, req.volume_id,
                        {"kind": "file", "path": os.path.abspath(req.path)},
                        context=RecordContext(policy=req.policy))
        return finish_generation(s, ref, store_generation(s, job, opts), opts)
