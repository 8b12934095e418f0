"""Retention (pure) and garbage collection of unreferenced packs (under the exclusive lock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drbdbackup.errors import IntegrityError, UsageError
from drbdbackup.repo.blob import BlobError, decode_blob, max_plain_length
from drbdbackup.repo.blobwriter import staging_cleanup
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.pack import PackEntry, pack_ids, pack_name
from drbdbackup.repo.records import GenerationRecord, record_name
from drbdbackup.repo.repository import Repository
from drbdbackup.repo.tree import walk_tree


def select_keep(
    created: list[tuple[str, datetime]], keep_last: int, keep_daily: int = 0, keep_weekly: int = 0
) -> set[str]:
    """Generations to keep among (generation id, created), restic-style bucket rules."""
    ordered = sorted(created, key=lambda g: (g[1], g[0]), reverse=True)
    keep = {g for g, _t in ordered[:keep_last]}
    for count, bucket in ((keep_daily, "%Y-%m-%d"), (keep_weekly, "%G-W%V")):
        seen: set[str] = set()
        for gen, ts in ordered:
            if len(seen) >= count:
                break
            b = ts.strftime(bucket)
            if b not in seen:
                seen.add(b)
                keep.add(gen)
    return keep


@dataclass
class PruneReport:
    """What prune removed (or would remove, with dry_run)."""

    dry_run: bool
    removed_generations: list[str] = field(default_factory=list)
    kept_generations: list[str] = field(default_factory=list)
    removed_packs: int = 0
    repacked_packs: int = 0
    removed_bytes: int = 0
    kept_packs: int = 0

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def run_prune(
    repo: Repository,
    keep_last: int,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    *,
    dry_run: bool = False,
) -> PruneReport:
    """Apply the keep rules to every volume; the caller holds the exclusive lock."""
    if keep_last < 1 and keep_daily < 1 and keep_weekly < 1:
        raise UsageError("prune needs at least one of --keep-last/--keep-daily/--keep-weekly >= 1")
    report = PruneReport(dry_run=dry_run)
    repo.load_index()
    _refuse_unreadable_index(repo)
    keep_records: list[GenerationRecord] = []
    for volume in repo.volumes():
        recs = [repo.read_record(volume, g) for g in repo.generation_ids(volume)]
        keep = select_keep(
            [(r.generation, datetime.fromisoformat(r.created)) for r in recs],
            keep_last,
            keep_daily,
            keep_weekly,
        )
        for r in recs:
            label = f"{volume}/{r.generation}"
            if r.generation in keep:
                keep_records.append(r)
                report.kept_generations.append(label)
            else:
                report.removed_generations.append(label)
    referenced = _referenced_blobs(repo, keep_records)
    plan = _plan_packs(repo, referenced)
    report.kept_packs = len(plan.keep)
    report.repacked_packs = len(plan.repack)
    doomed = sorted(plan.all_packs - set(plan.keep))
    report.removed_packs = len(doomed)
    report.removed_bytes = sum(repo.backend.size(pack_name(p)) for p in doomed)
    if dry_run:
        return report
    for label in report.removed_generations:
        volume, gen = label.split("/")
        repo.backend.delete(record_name(volume, gen))
    new_entries = dict(plan.keep)
    new_entries.update(_repack(repo, plan.repack))
    old_files = list(repo.index.files)
    new_files = set(repo.write_index_files(new_entries)) if new_entries else set()
    for name in old_files:
        if name not in new_files:
            repo.backend.delete(name)
    for p in doomed:
        repo.backend.delete(pack_name(p))
    staging_cleanup(repo.backend, older_than_s=0)  # the exclusive lock rules out writers
    return report


REPACK_UNUSED_FRACTION = 0.10


def _refuse_unreadable_index(repo: Repository) -> None:
    """Prune rewrites the index from what it read: an unreadable index file may hold the only
    reference to packs, which prune would then delete."""
    if repo.index.unreadable:
        raise IntegrityError(
            f"prune stopped: {repo.unreadable_note()}; it may hold the only reference to packs "
            "that prune would delete: run check, and move the file out of index/ only once every "
            "generation checks clean"
        )


@dataclass
class _PackPlan:
    all_packs: set[str]
    keep: dict[str, list[PackEntry]]
    repack: dict[str, list[PackEntry]]


def _plan_packs(repo: Repository, referenced: set[bytes]) -> _PackPlan:
    """Keep fully used packs (and quarantine evidence); repack mostly-used ones; drop the rest."""
    quarantined_packs = {p for _cid, p in repo.index.quarantined}
    entries: dict[str, list[PackEntry]] = {}
    for cid, locs in repo.index.locations.items():
        for loc in locs:
            entries.setdefault(loc.pack, []).append(
                PackEntry(loc.kind, cid, loc.offset, loc.length, loc.plain_length)
            )
    keep: dict[str, list[PackEntry]] = {}
    repack: dict[str, list[PackEntry]] = {}
    for pack, blobs in entries.items():
        live = [e for e in blobs if e.id in referenced and (e.id, pack) not in repo.index.quarantined]
        if pack in quarantined_packs:
            keep[pack] = blobs
        elif not live:
            continue
        elif sum(e.length for e in blobs if e not in live) <= REPACK_UNUSED_FRACTION * sum(
            e.length for e in blobs
        ):
            keep[pack] = blobs
        else:
            repack[pack] = live
    return _PackPlan(pack_ids(repo.backend), keep, repack)


def _repack(repo: Repository, repack: dict[str, list[PackEntry]]) -> dict[str, list[PackEntry]]:
    """Copy live blobs (verified first) of partly used packs into new packs."""
    writer = repo.writer()
    copied: set[bytes] = set()
    for pack, blobs in sorted(repack.items()):
        for e in sorted(blobs, key=lambda b: b.offset):
            if e.id in copied:
                continue
            stored = repo.backend.get_range(pack_name(pack), e.offset, e.length)
            try:
                limit = max_plain_length(e.kind, repo.chunk_size, repo.fanout)
                plain = decode_blob(stored, e.id, repo.enc_key, e.plain_length, limit=limit)
                if repo.hasher.id(plain) != e.id:
                    raise BlobError("content does not match id")
            except BlobError as exc:
                raise IntegrityError(
                    f"prune stopped: blob {e.id.hex()} in pack {pack} is damaged ({exc}); run drbdverify"
                ) from None
            writer.add(e.kind, e.id, stored, e.plain_length)
            copied.add(e.id)
    writer.commit_packs()
    return writer.written


def _referenced_blobs(repo: Repository, records: list[GenerationRecord]) -> set[bytes]:
    """Every chunk and tree node id the kept generations need."""
    out: set[bytes] = set()
    for rec in records:
        try:
            tree = walk_tree(bytes.fromhex(rec.root), rec.tree_height, repo.read_blob,
                             fanout=repo.fanout, chunk_count=rec.chunk_count)
            listed = 0
            for level, nid in tree:
                out.add(nid)
                if level == 0:
                    ids = repo.chunk_ids_of_leaf(nid)
                    listed += len(ids)
                    if listed > rec.chunk_count:  # a tree repeating subtrees (section 17)
                        raise IntegrityError(f"tree lists more than {rec.chunk_count} chunks")
                    out.update(ids)
        except (IntegrityError, ValueError) as exc:
            raise IntegrityError(
                f"prune stopped: generation {rec.volume_id}/{rec.generation} is damaged ({exc}); "
                "run check, then delete or repair it"
            ) from None
    out.discard(ZERO_ID)
    return out
