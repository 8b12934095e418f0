"""Retention per scope (the rules themselves: repo/retention.py) and garbage collection of
unreferenced packs (under the exclusive lock).

Order (format.md section 13): plan everything, let the caller append the intent entry, then
repack (a damaged blob stops the prune before anything is deleted), delete records, rewrite the
index, delete packs; the caller appends the final entry."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from drbdbackup.errors import IntegrityError, UnknownVolume, UsageError
from drbdbackup.repo import testpause
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.blob import BlobError, decode_blob, max_plain_length
from drbdbackup.repo.blobwriter import staging_cleanup
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.pack import PackEntry, pack_ids, pack_name
from drbdbackup.repo.records import GenerationRecord, record_name
from drbdbackup.repo.repository import Repository
from drbdbackup.repo.retention import KeepRules, decide
from drbdbackup.repo.tree import walk_tree


def select_keep(
    created: list[tuple[str, datetime]], keep_last: int, keep_daily: int = 0, keep_weekly: int = 0
) -> set[str]:
    """Generations to keep among (generation id, created) (see repo/retention.py)."""
    rules = KeepRules(last=keep_last, daily=keep_daily, weekly=keep_weekly)
    return set(decide(created, rules).kept)


@dataclass(frozen=True)
class PruneScope:
    """Keep rules and the generations they apply to: those of `policy` (the record's `policy`
    field; None: every generation) and of `volume_id` (None: every volume)."""

    rules: KeepRules
    policy: str | None = None
    volume_id: str | None = None

    def applies_to(self, rec: GenerationRecord) -> bool:
        return ((self.policy is None or rec.policy == self.policy)
                and (self.volume_id is None or rec.volume_id == self.volume_id))

    def to_dict(self) -> dict:
        return {"policy": self.policy, "volume_id": self.volume_id, "rules": self.rules.to_dict()}


@dataclass
class PruneReport:
    """What prune removed (or would remove, with dry_run), and why: `kept_because` names the
    rules that kept each generation a scope covered, `removed_because` why each removed one went
    (the scopes are in `scopes`); `kept_generations` lists every generation that remains;
    `policies` the policy each generation (kept or removed) was recorded for, if any (the
    report judges a policy's retention on the generations of that policy, as a scope selects)."""

    dry_run: bool
    removed_generations: list[str] = field(default_factory=list)
    kept_generations: list[str] = field(default_factory=list)
    removed_packs: int = 0
    repacked_packs: int = 0
    removed_bytes: int = 0
    kept_packs: int = 0
    scopes: list[dict] = field(default_factory=list)
    kept_because: dict[str, list[str]] = field(default_factory=dict)
    removed_because: dict[str, str] = field(default_factory=dict)
    outside_scope: int = 0
    policies: dict[str, str] = field(default_factory=dict)

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
    """Apply one set of keep rules to every generation (see `prune_scopes`)."""
    rules = KeepRules(last=keep_last, daily=keep_daily, weekly=keep_weekly)
    return prune_scopes(repo, [PruneScope(rules)], dry_run=dry_run)


def _created(rec: GenerationRecord) -> datetime:
    try:
        return datetime.fromisoformat(rec.created)
    except (TypeError, ValueError):
        raise IntegrityError(f"prune stopped: generation {rec.volume_id}/{rec.generation} has an "
                             f"unreadable created time {str(rec.created)[:40]!r}") from None


def select_generations(records: list[GenerationRecord], scopes: list[PruneScope], report: PruneReport
                       ) -> list[GenerationRecord]:
    """Apply every scope's rules per volume to the records it covers (pure); fill the report's
    kept/removed lists and reasons; return the records to keep. A generation some scope keeps is
    kept; one no scope covers is kept untouched."""
    report.scopes = [s.to_dict() for s in scopes]
    doomed: dict[str, str] = {}
    for scope in scopes:
        by_volume: dict[str, list[GenerationRecord]] = {}
        for r in records:
            if scope.applies_to(r):
                by_volume.setdefault(r.volume_id, []).append(r)
        where = ", ".join(f"{k} {v}" for k, v in (("policy", scope.policy),
                                                   ("volume", scope.volume_id)) if v)
        rules = ", ".join(f"{k} {v}" for k, v in scope.rules.to_dict().items())
        for volume, recs in by_volume.items():
            decision = decide([(r.generation, _created(r)) for r in recs], scope.rules)
            for gen, why in decision.kept.items():
                report.kept_because.setdefault(f"{volume}/{gen}", []).extend(why)
            for gen in decision.removed:
                doomed[f"{volume}/{gen}"] = (f"no keep rule ({rules}) of scope "
                                             f"{where or 'all generations'} keeps it")
    keep: list[GenerationRecord] = []
    for r in records:
        label = f"{r.volume_id}/{r.generation}"
        if isinstance(r.policy, str):
            report.policies[label] = r.policy
        if label in doomed and label not in report.kept_because:
            report.removed_generations.append(label)
            report.removed_because[label] = doomed[label]
        else:
            keep.append(r)
            report.kept_generations.append(label)
            report.outside_scope += label not in report.kept_because
    return keep


def require_rules(scopes: list[PruneScope]) -> None:
    """Refuse scopes without a keep rule (prune would remove every generation they cover)."""
    if not scopes or not all(s.rules.any for s in scopes):
        raise UsageError("prune needs at least one keep rule: --keep-last, --keep-within, "
                         "--keep-hourly, --keep-daily, --keep-weekly, --keep-monthly or --keep-yearly")


def prune_scopes(repo: Repository, scopes: list[PruneScope], *, dry_run: bool = False,
                 intent: Callable[[PruneReport], None] | None = None) -> PruneReport:
    """Select per scope, then remove unreferenced data once; the caller holds the exclusive lock.
    `intent` is called with the finished plan before the first deletion, when records are to be
    deleted (the caller appends the intent audit entry there: format.md section 13)."""
    require_rules(scopes)
    report = PruneReport(dry_run=dry_run)
    repo.load_index()
    _refuse_unreadable_index(repo)
    volumes = repo.volumes()
    unknown = sorted({s.volume_id for s in scopes if s.volume_id and s.volume_id not in volumes})
    if unknown:
        raise UnknownVolume(f"no generations for volume {unknown[0]}")
    records = [repo.read_record(v, g) for v in volumes for g in repo.generation_ids(v)]
    keep_records = select_generations(records, scopes, report)
    referenced = _referenced_blobs(repo, keep_records)
    plan = _plan_packs(repo, referenced)
    report.kept_packs = len(plan.keep)
    report.repacked_packs = len(plan.repack)
    doomed = sorted(plan.all_packs - set(plan.keep))
    report.removed_packs = len(doomed)
    report.removed_bytes = sum(repo.backend.size(pack_name(p)) for p in doomed)
    if dry_run:
        return report
    if intent is not None and report.removed_generations:
        intent(report)
    _apply(repo, report, plan, doomed)
    return report


PAUSE_ENV = "DRBDBACKUP_TEST_PRUNE_PAUSE"  # test only (tests/hostile/test_prune_crash.py)
PAUSE_S = 30.0


class _Deleter:
    """Deletes objects in prune's order; counts them for the test-only pause hook."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.count = 0
        raw = os.environ.get(PAUSE_ENV, "")  # the one place the hook is read
        self.pause_at = int(raw) if raw.isdigit() else None
        self._pause()

    def __call__(self, name: str) -> None:
        self.backend.delete(name)
        self.count += 1
        self._pause()

    def _pause(self) -> None:
        """Test only: with DRBDBACKUP_TEST_PRUNE_PAUSE=K, after the K-th deletion (0: after the
        intent entry, before any) say so on stderr and sleep, so that a test can SIGKILL the
        process at that point; after PAUSE_S the prune goes on."""
        if self.count == self.pause_at:
            testpause.pause(f"test pause after {self.count} deletion(s)", PAUSE_S)


def _apply(repo: Repository, report: PruneReport, plan: _PackPlan, doomed: list[str]) -> None:
    """Repack, delete the records, write the new index, delete superseded index files and
    packs."""
    new_entries = dict(plan.keep)
    new_entries.update(_repack(repo, plan.repack))  # may stop the prune: nothing deleted yet
    delete = _Deleter(repo.backend)
    for label in report.removed_generations:
        volume, gen = label.split("/")
        delete(record_name(volume, gen))
    old_files = list(repo.index.files)
    new_files = set(repo.write_index_files(new_entries)) if new_entries else set()
    for name in old_files:
        if name not in new_files:
            delete(name)
    for p in doomed:
        delete(pack_name(p))
    staging_cleanup(repo.backend, older_than_s=0)  # the exclusive lock rules out writers


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
