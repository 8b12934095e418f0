"""Tamper evidence (format.md section 12.1): the audit chain, the ties between generation
records and audit entries, and an external anchor.

`tie_findings` is pure (tested exhaustively); `gather` reads what it needs from a repository:
every entry (the chain walk), and for every record object the SHA-256 of its stored bytes and,
when it opens, the audit head it pins (`audit_prev`)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from drbdbackup.errors import IntegrityError, ObjectNotFound
from drbdbackup.repo import audit
from drbdbackup.repo.audit import GENESIS, Head, Walked

__all__ = ["GENESIS", "Evidence", "Head", "RecordFact", "gather", "tie_findings"]
from drbdbackup.repo.capped import read_capped
from drbdbackup.repo.records import JsonObjectError, record_name
from drbdbackup.repo.repository import Repository

Key = tuple[str, str]  # (volume id, generation id)


@dataclass(frozen=True)
class RecordFact:
    """What the ties need of one record object: its stored bytes' hash and its pin."""

    sha256: str
    pin: Head | None  # None: no audit_prev (older writer) or the record does not open


@dataclass
class Evidence:
    """Errors mean the repository disagrees with its own history; warnings may be a crash."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    head: Head = Head(0, GENESIS)
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> hash of every entry read
    unreadable: list[str] = field(default_factory=list)  # records that do not open (check
    # reports them itself, per generation; the report adds them to its problems)

    def contains(self, digest: str) -> bool:
        """Is an entry with this hash (an external anchor) in the chain?"""
        return digest.lower() in self.hashes.values()


def _entry(seq: int) -> str:
    return audit.entry_name(seq)


def _ties(chain: list[Walked]) -> tuple[dict[Key, tuple[int, str]], dict[str, int],
                                       dict[str, list[int]]]:
    """From the entries: record -> (seq, sha256) of the backup entry naming it; "vol/gen" ->
    seq of the last prune entry listing it in `removed` (an intent or a final entry: section
    13); volume -> seqs of its backup entries."""
    named: dict[Key, tuple[int, str]] = {}
    removed: dict[str, int] = {}
    backups: dict[str, list[int]] = defaultdict(list)
    for w in chain:
        e = w.entry
        if e is None:
            continue
        rec = e.get("record")
        if e["event"] == "backup" and rec is not None:
            named.setdefault((rec["volume_id"], rec["generation"]), (w.seq, rec["sha256"]))
            backups[rec["volume_id"]].append(w.seq)
        if e["event"] == "prune":
            for label in e.get("removed") or ():
                removed[label] = w.seq
    return named, removed, backups


def _named_records(named: dict[Key, tuple[int, str]], removed: dict[str, int],
                   records: dict[Key, RecordFact]) -> list[str]:
    """Every record a backup entry names exists with the bytes it names, or is missing and a
    later prune entry (intent or final) lists it; one listed and still there (a prune that
    stopped after its intent) is no finding."""
    out = []
    for key, (seq, digest) in sorted(named.items(), key=lambda kv: kv[1][0]):
        name, fact = record_name(*key), records.get(key)
        if fact is None:
            if removed.get(f"{key[0]}/{key[1]}", -1) < seq:
                out.append(f"generation record {name} is missing: {_entry(seq)} names it and "
                           f"no prune entry lists it (deleted)")
        elif fact.sha256 != digest:
            out.append(f"generation record {name} differs from the bytes {_entry(seq)} names "
                       f"(rolled back or rewritten)")
    return out


def _pins(records: dict[Key, RecordFact], hashes: dict[int, str], last: int) -> list[str]:
    """Every record's pinned head is in the chain with the hash it pins."""
    out = []
    for key, fact in sorted(records.items()):
        pin, name = fact.pin, record_name(*key)
        if pin is None or (pin.seq == 0 and pin.hash == GENESIS):
            continue
        if pin.seq > last:
            out.append(f"generation record {name} pins {_entry(pin.seq)}, beyond the log's end "
                       f"({_entry(last) if last else 'empty'}): the log was truncated")
        elif pin.seq not in hashes:
            out.append(f"generation record {name} pins {_entry(pin.seq)}, which is missing")
        elif hashes[pin.seq] != pin.hash:
            out.append(f"generation record {name} pins {_entry(pin.seq)} with another hash: "
                       f"the log was rewritten or re-chained")
    return out


def _orphans(records: dict[Key, RecordFact], named: dict[Key, tuple[int, str]],
             backups: dict[str, list[int]], ev: Evidence) -> None:
    """Records no backup entry names: the newest of a volume with nothing of its volume after
    the head it pins is a crashed run (warning); any other is an error."""
    newest: dict[str, str] = {}
    for vol, gen in records:
        newest[vol] = max(gen, newest.get(vol, gen))
    untied = 0
    for (vol, gen), fact in sorted(records.items()):
        if (vol, gen) in named:
            continue
        name = record_name(vol, gen)
        if fact.pin is None:
            if any(k[0] == vol and k[1] < gen and f.pin is not None for k, f in records.items()):
                ev.errors.append(f"generation record {name} has no audit entry and pins no audit "
                                 f"head, unlike older records of its volume (forged or rewritten)")
            else:
                untied += 1
        elif gen == newest[vol] and not any(s > fact.pin.seq for s in backups[vol]):
            ev.warnings.append(f"generation record {name} has no audit entry: a run stopped "
                               f"between its record and its entry, or the log's newest entries "
                               f"were removed (an external anchor tells)")
        else:
            ev.errors.append(f"generation record {name} has no audit entry (deleted or rewritten)")
    if untied:
        ev.warnings.append(f"{untied} generation record(s) predate audit ties (no audit_prev, "
                           f"no entry names them)")


def tie_findings(chain: list[Walked], records: dict[Key, RecordFact]) -> Evidence:
    """The rules of format.md section 12.1 over a walked chain and the record objects."""
    ev = Evidence()
    ev.errors.extend(w.problem for w in chain if w.problem is not None)
    ev.hashes = {w.seq: w.hash for w in chain}
    last = max(ev.hashes, default=0)
    ev.head = Head(last, ev.hashes[last]) if last else Head(0, GENESIS)
    named, removed, backups = _ties(chain)
    ev.errors.extend(_named_records(named, removed, records))
    ev.errors.extend(_pins(records, ev.hashes, last))
    _orphans(records, named, backups, ev)
    return ev


def _fact(repo: Repository, vol: str, gen: str, unreadable: list[str]) -> RecordFact | None:
    """The record's tie facts; one that does not open is added to `unreadable`."""
    name = record_name(vol, gen)
    try:
        raw = read_capped(repo.backend, name, "generation record", sealed=repo.enc_key is not None)
    except ObjectNotFound:
        return None
    except JsonObjectError as exc:
        unreadable.append(f"generation record {name} is damaged: {exc}")
        return RecordFact(audit.entry_hash(repo.backend, name), None)
    try:
        pin = repo.read_record(vol, gen).audit_prev
    except IntegrityError as exc:
        unreadable.append(str(exc))
        pin = None
    head = Head(pin["seq"], pin["hash"]) if pin else None
    return RecordFact(hashlib.sha256(raw).hexdigest(), head)


def _seal_findings(chain: list[Walked], enc_key: bytes) -> tuple[list[str], list[str]]:
    """Encrypted repositories: sealed details open (else forged); plain ones are noted."""
    errors, plain = [], []
    for w in chain:
        if w.entry is None:
            continue
        if "sealed" in w.entry:
            if audit.open_details(w.entry, enc_key) is None:
                errors.append(f"audit entry {w.name}: its sealed details do not open with the "
                              f"repository's key (forged or damaged)")
        elif w.entry["event"] != "init":
            plain.append(w.name)
    notes = [f"{len(plain)} audit entr(ies) hold plain details in an encrypted repository, "
             f"first {plain[0]} (older writer, or forged)"] if plain else []
    return errors, notes


def gather(repo: Repository) -> Evidence:
    """Read the chain and every record object; apply the rules."""
    chain = list(audit.walk(repo.backend))
    records: dict[Key, RecordFact] = {}
    unreadable: list[str] = []
    for vol in repo.volumes():
        for gen in repo.generation_ids(vol):
            fact = _fact(repo, vol, gen, unreadable)
            if fact is not None:
                records[(vol, gen)] = fact
    ev = tie_findings(chain, records)
    ev.unreadable = unreadable
    if repo.enc_key is not None:
        errors, notes = _seal_findings(chain, repo.enc_key)
        ev.errors.extend(errors)
        ev.warnings.extend(notes)
    return ev
