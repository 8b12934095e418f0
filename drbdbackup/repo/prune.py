"""Retention (pure) and garbage collection of unreferenced packs (under the exclusive lock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drbdbackup.errors import IntegrityError, UsageError
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.locks import Lock
from drbdbackup.repo.pack import PackEntry, pack_name
from drbdbackup.repo.records import GenerationRecord, record_name
from drbdbackup.repo.repository import Repository, staging_cleanup
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
    if keep_last < 1 and keep_daily < 1 and keep_weekly < 1:
        raise UsageError("prune needs at least one of --keep-last/--keep-daily/--keep-weekly >= 1")
    report = PruneReport(dry_run=dry_run)
    with Lock(repo.backend, exclusive=True, operation="prune"):
        repo.load_index()
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
        quarantined_packs = {p for _cid, p in repo.index.quarantined}
        keep_packs: dict[str, list[PackEntry]] = {}
        for cid, locs in repo.index.locations.items():
            for loc in locs:
                if cid in referenced or loc.pack in quarantined_packs:
                    keep_packs.setdefault(loc.pack, [])
        for cid, locs in repo.index.locations.items():
            for loc in locs:
                if loc.pack in keep_packs:
                    keep_packs[loc.pack].append(
                        PackEntry(loc.kind, cid, loc.offset, loc.length, loc.plain_length)
                    )
        all_packs = {n.rsplit("/", 1)[-1] for n in repo.backend.list("packs/")}
        doomed = sorted(all_packs - set(keep_packs))
        report.kept_packs = len(keep_packs)
        report.removed_packs = len(doomed)
        report.removed_bytes = sum(repo.backend.size(pack_name(p)) for p in doomed)
        if dry_run:
            return report
        for label in report.removed_generations:
            volume, gen = label.split("/")
            repo.backend.delete(record_name(volume, gen))
        old_files = list(repo.index.files)
        new_file = repo.write_index_file(keep_packs) if keep_packs else None
        for name in old_files:
            if name != new_file:
                repo.backend.delete(name)
        for p in doomed:
            repo.backend.delete(pack_name(p))
        staging_cleanup(repo.backend)
        repo.audit("prune", report.to_dict())
    return report


def _referenced_blobs(repo: Repository, records: list[GenerationRecord]) -> set[bytes]:
    """Every chunk and tree node id the kept generations need."""
    out: set[bytes] = set()
    for rec in records:
        try:
            for level, nid in walk_tree(bytes.fromhex(rec.root), rec.tree_height, repo.read_blob):
                out.add(nid)
                if level == 0:
                    out.update(repo.chunk_ids_of_leaf(nid))
        except (IntegrityError, ValueError) as exc:
            raise IntegrityError(
                f"prune stopped: generation {rec.volume_id}/{rec.generation} is damaged ({exc}); "
                "run check, then delete or repair it"
            ) from None
    out.discard(ZERO_ID)
    return out
