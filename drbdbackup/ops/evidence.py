"""Tamper evidence for the front ends and the report (format.md section 12.1): what the
repository's own history says about itself, and whether an external anchor is still in it."""

from __future__ import annotations

from dataclasses import dataclass, field

from drbdbackup.errors import ObjectNotFound
from drbdbackup.ops.session import RepositoryRef, operation
from drbdbackup.repo import audit, evidence
from drbdbackup.repo.backend import Backend


@dataclass(frozen=True)
class AuditFindings:
    """`problems`: the repository disagrees with its history, each naming the first object
    that disagrees; `warnings`: what may be a crashed run; `head`: hex hash of the newest
    audit entry (`head_seq` its seq; 64 zeros and 0 for an empty log)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    head: str = evidence.GENESIS
    head_seq: int = 0
    anchor_found: bool | None = None  # with an anchor: is that entry still in the chain?


def audit_findings(ref: RepositoryRef, anchor: str | None = None) -> AuditFindings:
    """Check the audit chain and its ties to the generation records, and name every record
    that does not open (no lock: read only).
    With `anchor` (a head recorded elsewhere: a signed report, the service's state), its
    absence from the chain is a problem too (the repository was rolled back or rewritten)."""
    with operation(ref, "audit") as s:
        ev = evidence.gather(s.repo)
    problems = ev.unreadable + ev.errors
    found = None
    if anchor is not None:
        found = ev.contains(anchor)
        if not found:
            problems.append(f"audit head {anchor} recorded elsewhere is not in the chain (ends at "
                            f"audit/{ev.head.seq:012d}): the log was rolled back or rewritten")
    return AuditFindings(problems, list(ev.warnings), ev.head.hash, ev.head.seq, found)


@dataclass(frozen=True)
class HeadCheck:
    """The current head, and whether an anchor `(seq, hash)` is still the entry at `seq`."""

    head: str
    head_seq: int
    anchor_found: bool | None


def check_head(ref: RepositoryRef, seq: int | None = None, digest: str | None = None) -> HeadCheck:
    """Cheap (two reads): the service's check after each job. The full rules are
    `audit_findings`."""
    with operation(ref, "audit") as s:
        now = audit.head(s.repo.backend)
        found = None
        if seq is not None and digest is not None:
            found = seq == 0 or _hash_at(s.repo.backend, seq) == digest
    return HeadCheck(now.hash, now.seq, found)


def _hash_at(backend: Backend, seq: int) -> str | None:
    try:
        return audit.entry_hash(backend, audit.entry_name(seq))
    except ObjectNotFound:
        return None
