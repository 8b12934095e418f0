"""Tamper evidence for the front ends and the report (format.md section 12.1): what the
repository's own history says about itself, and whether an external anchor is still in it."""

from __future__ import annotations

from dataclasses import dataclass, field

from drbdbackup.ops.session import RepositoryRef, operation
from drbdbackup.repo import evidence


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
    """Check the audit chain and its ties to the generation records (no lock: read only).
    With `anchor` (a head recorded elsewhere: a signed report, the service's state), its
    absence from the chain is a problem too (the repository was rolled back or rewritten)."""
    with operation(ref, "audit") as s:
        ev = evidence.gather(s.repo)
    problems = list(ev.errors)
    found = None
    if anchor is not None:
        found = ev.contains(anchor)
        if not found:
            problems.append(f"audit head {anchor} recorded elsewhere is not in the chain (ends at "
                            f"audit/{ev.head.seq:012d}): the log was rolled back or rewritten")
    return AuditFindings(problems, list(ev.warnings), ev.head.hash, ev.head.seq, found)
