"""Tamper evidence (section 12.1): the ties between audit entries and generation records, and
an external anchor (``--audit-head``). Written from the format document only."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import defaultdict
from dataclasses import dataclass

from .audit import AAD_AUDIT, GENESIS, Chain
from .format import FormatError, audit_name, generation_name
from .jsonobj import load_json_object
from .keys import SealError
from .limits import JSON_MAX_BYTES, SEAL_OVERHEAD
from .repository import Repository
from .results import NOTE, Finding
from .store import ObjectMissing, get_capped

KIND = "audit-tie"


@dataclass(frozen=True)
class RecordTie:
    """One record object: SHA-256 of its stored bytes, and its ``audit_prev`` when it opens."""

    volume_id: str
    generation: str
    sha256: str
    pin: tuple[int, str] | None
    problem: str | None = None  # why the record does not open


def _pin_of(repo: Repository, vol: str, gen: str) -> tuple[tuple[int, str] | None, str | None]:
    """(the record's audit_prev, None) or (None, why the record does not open)."""
    try:
        raw = repo.read_record(vol, gen).raw.get("audit_prev")
    except SealError:
        return None, "generation record does not open (GCM tag mismatch)"
    except (FormatError, ObjectMissing) as e:
        return None, f"generation record is invalid: {e}"
    if not isinstance(raw, dict):
        return None, None
    seq, digest = raw.get("seq"), raw.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(digest, str):
        return None, None
    return (seq, digest), None


def record_ties(repo: Repository) -> list[RecordTie]:
    """Every record object of the repository (one that does not read still has a hash)."""
    out = []
    cap = JSON_MAX_BYTES["generation record"] + SEAL_OVERHEAD
    for vol, gens in repo.generations().items():
        for gen in gens:
            name = generation_name(vol, gen)
            try:
                stored = get_capped(repo.store, name, cap)
            except ObjectMissing:
                continue
            except FormatError as e:  # beyond the limit: its hash cannot match a writer's record
                out.append(RecordTie(vol, gen, "", None, f"generation record is invalid: {e}"))
                continue
            pin, problem = _pin_of(repo, vol, gen)
            out.append(RecordTie(vol, gen, hashlib.sha256(stored).hexdigest(), pin, problem))
    return out


def unreadable_findings(ties: list[RecordTie], checked: set[tuple[str, str]]) -> list[Finding]:
    """Records that do not open, beyond the generations this run checks (those are findings of
    their checks already): a record that does not open is always a finding."""
    return [_f(t.problem, generation_name(t.volume_id, t.generation), t.volume_id, t.generation)
            for t in ties if t.problem and (t.volume_id, t.generation) not in checked]


def _named(chain: Chain) -> tuple[dict[tuple[str, str], tuple[int, str]], dict[str, int],
                                   dict[str, list[int]]]:
    """record -> (seq, sha256) of the first backup entry naming it; "vol/gen" -> seq of the last
    prune entry listing it in ``removed`` (its intent or its final entry, section 13); volume ->
    seqs of its backup entries."""
    named: dict[tuple[str, str], tuple[int, str]] = {}
    removed: dict[str, int] = {}
    backups: dict[str, list[int]] = defaultdict(list)
    for seq in sorted(chain.entries):
        e = chain.entries[seq]
        if e is None:
            continue
        rec = e.get("record")
        if e["event"] == "backup" and isinstance(rec, dict):
            named.setdefault((rec["volume_id"], rec["generation"]), (seq, rec["sha256"]))
            backups[rec["volume_id"]].append(seq)
        if e["event"] == "prune":
            for label in e.get("removed") or []:
                removed[label] = seq
    return named, removed, backups


def _f(msg: str, obj: str, vol: str | None = None, gen: str | None = None,
       severity: str = "fail") -> Finding:
    return Finding(KIND, msg, obj, vol, gen, severity=severity)


def tie_findings(chain: Chain, ties: list[RecordTie]) -> list[Finding]:
    """Rules E2-E4 of section 12.1 (E1, the chain itself, is ``chain.findings``). A record a
    prune entry lists that is still there is no finding (that prune stopped after its intent,
    section 13), as long as its bytes match its entry."""
    out: list[Finding] = []
    named, removed, backups = _named(chain)
    by_key = {(t.volume_id, t.generation): t for t in ties}
    for (vol, gen), (seq, digest) in sorted(named.items(), key=lambda kv: kv[1][0]):
        t, name = by_key.get((vol, gen)), generation_name(vol, gen)
        if t is None and removed.get(f"{vol}/{gen}", 0) <= seq:  # E3: deleted
            out.append(_f(f"record missing: {audit_name(seq)} names it and no prune entry "
                          f"lists it", name, vol, gen))
        elif t is not None and t.sha256 != digest:
            out.append(_f(f"record bytes differ from the SHA-256 {audit_name(seq)} names "
                          f"(rolled back or rewritten)", name, vol, gen))
    last = chain.last
    for t in ties:
        name = generation_name(t.volume_id, t.generation)
        if t.pin is None or t.pin == (0, GENESIS):
            continue
        seq, digest = t.pin
        if seq > last:
            msg = f"pins {audit_name(seq)} beyond the log's last entry {last}: log truncated"
        elif seq not in chain.hashes:
            msg = f"pins {audit_name(seq)}, which is missing"
        elif chain.hashes[seq] != digest:
            msg = f"pins {audit_name(seq)} whose hash differs: log rewritten or re-chained"
        else:
            continue
        out.append(_f(msg, name, t.volume_id, t.generation))
    out.extend(_unnamed(ties, named, backups))
    return out


def _unnamed(ties: list[RecordTie], named: dict[tuple[str, str], tuple[int, str]],
             backups: dict[str, list[int]]) -> list[Finding]:
    """E4: records no backup entry names."""
    out: list[Finding] = []
    newest: dict[str, str] = {}
    for t in ties:
        newest[t.volume_id] = max(newest.get(t.volume_id, t.generation), t.generation)
    for t in ties:
        vol, gen = t.volume_id, t.generation
        if (vol, gen) in named:
            continue
        name = generation_name(vol, gen)
        if t.pin is None:  # a record of an older writer is no finding
            if any(o.volume_id == vol and o.generation < gen and o.pin for o in ties):
                out.append(_f("no audit entry names this record and it pins no audit head, "
                              "unlike older records of its volume (forged or rewritten)", name, vol, gen))
        elif gen == newest[vol] and not any(s > t.pin[0] for s in backups[vol]):
            out.append(_f("no audit entry names this record: a run stopped between its record "
                          "and its entry, or the newest entries were removed", name, vol, gen, NOTE))
        else:
            out.append(_f("no audit entry names this record (entry deleted or rewritten)",
                          name, vol, gen))
    return out


def seal_findings(chain: Chain, repo: Repository) -> list[Finding]:
    """Encrypted repositories: sealed details must open with the key."""
    if not repo.crypto.encrypted:
        return []
    out: list[Finding] = []
    for seq in sorted(chain.entries):
        e = chain.entries[seq]
        if e is None or "sealed" not in e:
            continue
        try:
            plain = repo.crypto.open(base64.b64decode(e["sealed"], validate=True), AAD_AUDIT)
            load_json_object(plain, "audit entry")
        except (SealError, binascii.Error, ValueError, FormatError):
            out.append(_f("sealed details do not open with the repository's key (forged or "
                          "damaged)", audit_name(seq)))
    return out


def anchor_finding(chain: Chain, head: str) -> Finding | None:
    """``--audit-head``: a head recorded elsewhere must be the hash of an entry in the chain."""
    if head.lower() in chain.hashes.values():
        return None
    return Finding("audit-anchor", f"audit head {head} is not in the chain (it ends at "
                   f"{audit_name(chain.last)}): the repository was rolled back or its log "
                   f"rewritten", audit_name(chain.last))
