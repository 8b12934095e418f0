"""The control families auditors map backup evidence to, and where this report shows it."""

from __future__ import annotations

from typing import Any

CONTROLS: list[tuple[str, str, str]] = [
    ("SOC 2 A1.2", "backup processes and recovery infrastructure are in place and monitored",
     "per volume and day: generations with mode, tracker and bytes; failed backups; RPO verdict"),
    ("SOC 2 A1.3", "recovery plan procedures are tested",
     "restore drills (a restore whose bytes drbdverify compared with the source), last verified "
     "restore per volume"),
    ("ISO 27001 A.8.13", "backup copies are taken and tested regularly per the agreed policy",
     "RPO per policy, retention judged against keep_* rules, verification coverage against "
     "verify_coverage_days"),
    ("DORA Art. 11", "ICT business continuity: backups allow recovery within set objectives",
     "RPO verdict per volume and day, failing days in red, restore drills"),
    ("DORA Art. 12", "backup policies, restoration and recovery procedures, integrity checks",
     "verification evidence (chunks read, bytes compared, verdict), quarantine and healing, the "
     "hash-chained audit log and its head pinned in the signed report"),
]


def controls(volumes: list[dict[str, Any]], chain_ok: bool) -> list[dict[str, Any]]:
    """Each control with the evidence it rests on and whether that evidence shows problems."""
    failing = [v["volume_id"] for v in volumes if v["summary"]["open_problems"]]
    return [{"control": c, "objective": obj, "evidence": where,
             "status": "attention" if failing or not chain_ok else "supported",
             "volumes_with_open_problems": failing}
            for c, obj, where in CONTROLS]
