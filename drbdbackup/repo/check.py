"""`check`: structural (and with read_data, content) consistency of a repository."""

from __future__ import annotations

from dataclasses import dataclass, field

from drbdbackup.errors import IntegrityError, ObjectNotFound
from drbdbackup.repo import evidence
from drbdbackup.repo.blob import BlobError, decode_blob, max_plain_length
from drbdbackup.repo.crypto import ZERO_ID, plain_hash
from drbdbackup.repo.pack import (
    TRAILER,
    PackFormatError,
    pack_ids,
    pack_name,
    parse_toc,
    split_pack,
    toc_bounds,
)
from drbdbackup.repo.repository import Repository


@dataclass
class CheckReport:
    """Errors make the check fail; notes are informational (e.g. unreferenced packs)."""

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    packs: int = 0
    generations: int = 0
    damaged_generations: list[str] = field(default_factory=list)
    audit_head: dict = field(default_factory=dict)  # {"seq", "hash"} of the newest entry

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "notes": self.notes,
            "packs_checked": self.packs,
            "generations_checked": self.generations,
            "damaged_generations": self.damaged_generations,
            "audit_head": self.audit_head,
        }


def _toc_via_trailer(repo: Repository, name: str, size: int) -> list:
    """Read only a pack's trailer and TOC (the structure check without reading the data)."""
    trailer = repo.backend.get_range(name, max(0, size - TRAILER.size), TRAILER.size)
    toc_start, toc_len = toc_bounds(trailer, size)
    return parse_toc(repo.backend.get_range(name, toc_start, toc_len), repo.enc_key,
                     toc_start=toc_start, chunk_size=repo.chunk_size, fanout=repo.fanout)


def run_check(repo: Repository, *, read_data: bool = False) -> CheckReport:
    """Every finding is named and the check goes on: the audit chain and its ties to the
    records (format.md section 12.1), each index file, each pack, each generation."""
    rep = CheckReport()
    ev = evidence.gather(repo)
    rep.errors.extend(ev.errors)
    rep.notes.extend(ev.warnings)
    rep.audit_head = ev.head.to_dict()
    repo.load_index()
    rep.errors.extend(repo.index.unreadable[name] for name in sorted(repo.index.unreadable))
    bad_copies = _check_packs(repo, rep, read_data)
    unusable = repo.index.quarantined | bad_copies  # the index itself is not changed by a check
    for volume in repo.volumes():
        for gen in repo.generation_ids(volume):
            rep.generations += 1
            try:
                rec = repo.read_record(volume, gen)
                ids = repo.chunk_ids(rec)
                missing = _unavailable(repo, ids, unusable)
                if missing:
                    raise IntegrityError(
                        f"{len(missing)} chunk(s) unavailable, first at byte offset "
                        f"{missing[0] * rec.chunk_size}"
                    )
            except IntegrityError as exc:
                rep.errors.append(f"generation {volume}/{gen}: {exc}")
                rep.damaged_generations.append(f"{volume}/{gen}")
    return rep


def _unavailable(repo: Repository, ids: list[bytes], unusable: set[tuple[bytes, str]]) -> list[int]:
    """Positions of chunks with no copy outside `unusable` (zero chunks are always available)."""
    out = []
    for pos, cid in enumerate(ids):
        if cid == ZERO_ID:
            continue
        if not any((cid, loc.pack) not in unusable for loc in repo.index.locations.get(cid, ())):
            out.append(pos)
    return out


def _check_packs(repo: Repository, rep: CheckReport, read_data: bool) -> set[tuple[bytes, str]]:
    """Check every pack the index names; return the (blob, pack) copies found bad."""
    all_packs = pack_ids(repo.backend)
    indexed = repo.index.packs()
    why = ("an unreadable index file may list it; prune keeps it until that file is dealt with"
           if repo.index.unreadable else "an interrupted run left it; the next prune removes it")
    for pack_id in sorted(all_packs - indexed):
        rep.notes.append(f"pack {pack_id} is not referenced by any readable index ({why})")
    bad_copies: set[tuple[bytes, str]] = set()
    for pack_id in sorted(indexed):
        _check_pack(repo, rep, pack_id, read_data, bad_copies)
    return bad_copies


def _check_pack(repo: Repository, rep: CheckReport, pack_id: str, read_data: bool,
                bad_copies: set[tuple[bytes, str]]) -> None:
    """One pack: present, named by its hash (with read_data), TOC covers the index, blobs decode."""
    rep.packs += 1
    name = pack_name(pack_id)
    expected = {
        (cid, loc.offset, loc.length)
        for cid, locs in repo.index.locations.items()
        for loc in locs
        if loc.pack == pack_id
    }
    quarantined_here = all((cid, pack_id) in repo.index.quarantined for cid, _o, _l in expected)
    try:
        if read_data:
            data = repo.backend.get(name)
            if plain_hash(data).hex() != pack_id:
                if not quarantined_here:
                    raise PackFormatError("content does not match its name")
                rep.notes.append(f"pack {pack_id} is damaged and quarantined (kept as evidence)")
                return
            entries = split_pack(data, repo.enc_key, chunk_size=repo.chunk_size,
                                 fanout=repo.fanout)
        else:
            entries = _toc_via_trailer(repo, name, repo.backend.size(name))
    except ObjectNotFound:
        rep.errors.append(f"pack {pack_id} is missing")
        bad_copies.update((cid, pack_id) for cid, _o, _l in expected)
        return
    except PackFormatError as exc:
        (rep.notes if quarantined_here else rep.errors).append(f"pack {pack_id} is damaged: {exc}")
        bad_copies.update((cid, pack_id) for cid, _o, _l in expected)
        return
    in_toc = {(e.id, e.offset, e.length) for e in entries}
    if not expected <= in_toc:
        rep.errors.append(f"pack {pack_id}: index lists blobs its table of contents does not")
    if read_data:
        for e in entries:
            try:
                limit = max_plain_length(e.kind, repo.chunk_size, repo.fanout)
                plain = decode_blob(data[e.offset : e.offset + e.length], e.id, repo.enc_key,
                                    e.plain_length, limit=limit)
                if repo.hasher.id(plain) != e.id:
                    raise BlobError("content does not match id")
            except BlobError as exc:
                where = f"pack {pack_id}: blob {e.id.hex()} at offset {e.offset}: {exc}"
                if (e.id, pack_id) in repo.index.quarantined:
                    rep.notes.append(f"{where} (quarantined; other copies are used)")
                else:
                    rep.errors.append(where)
                bad_copies.add((e.id, pack_id))
