"""Pure sorting of audit entries into per-volume evidence: backups, failed backups,
verification checks, restores (and restore drills: a restore followed by a passing drbdverify
check of the same generation that compared bytes with the restored copy), quarantines and
prunes. No I/O: the caller reads the chain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drbdbackup.report.days import parse_time

BACKUP_FIELDS = ("generation", "mode", "tracker", "tracker_reason", "fallback_reason", "map_validity",
                 "size_bytes", "read_bytes", "changed_bytes", "stored_bytes", "duration_s", "node")


@dataclass
class VolumeEvidence:
    """Everything the audit log says about one volume, oldest first."""

    backups: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    restores: list[dict[str, Any]] = field(default_factory=list)
    quarantines: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Evidence:
    volumes: dict[str, VolumeEvidence] = field(default_factory=dict)
    prunes: list[dict[str, Any]] = field(default_factory=list)
    unattributed_quarantines: list[dict[str, Any]] = field(default_factory=list)

    def of(self, vol: str) -> VolumeEvidence:
        return self.volumes.setdefault(vol, VolumeEvidence())


def _base(entry: dict[str, Any], ts: datetime) -> dict[str, Any]:
    return {"seq": entry.get("seq"), "time": ts.isoformat()}


def _confidence(sel: str, checked: int, total: int) -> str:
    if total <= 0:
        return "nothing to read"
    if checked >= total:
        return f"every chunk read ({checked} of {total})"
    p = checked / total
    return (f"{sel}: {checked} of {total} chunks read; a single bad chunk escapes with "
            f"probability {1 - p:.3f}, ten with {(1 - p) ** 10:.3g}")


def _check_rows(entry: dict[str, Any], ts: datetime) -> list[dict[str, Any]]:
    d = entry.get("details") or {}
    sel = str(d.get("selection", ""))
    rows = []
    for c in d.get("checks") or []:
        if not isinstance(c, dict) or not isinstance(c.get("volume_id"), str):
            continue
        checked, total = int(c.get("chunks_checked") or 0), int(c.get("chunks_total") or 0)
        rows.append({**_base(entry, ts), "tool": d.get("tool"), "generation": c.get("generation"),
                     "selection": sel, "verdict": c.get("verdict"), "chunks_checked": checked,
                     "chunks_total": total, "chunks_failed": int(c.get("chunks_failed") or 0),
                     "bytes_compared_with_source": int(c.get("bytes_compared_with_source") or 0),
                     "confidence": _confidence(sel, checked, total), "volume_id": c["volume_id"]})
    return rows


def _drill(ev: VolumeEvidence, check: dict[str, Any]) -> None:
    """Mark the restore this passing source comparison proves (same generation, before it)."""
    if check["verdict"] != "pass" or check["bytes_compared_with_source"] <= 0:
        return
    for r in reversed(ev.restores):
        if r["generation"] == check["generation"] and r["time"] <= check["time"]:
            r.setdefault("verified_by", check["seq"])
            return


def collect(entries: list[dict[str, Any]]) -> Evidence:
    """Sort the (chain-checked) entries; entries whose time does not parse are skipped."""
    out, pending_q = Evidence(), []
    for e in entries:
        ts, d, ev = parse_time(e.get("time")), e.get("details") or {}, e.get("event")
        if ts is None or not isinstance(d, dict):
            continue
        vol = d.get("volume_id") if isinstance(d.get("volume_id"), str) else None
        if ev == "backup" and vol:
            out.of(vol).backups.append({**_base(e, ts), **{k: d.get(k) for k in BACKUP_FIELDS},
                                        "verification": d.get("verification")})
        elif ev == "failure" and vol:
            out.of(vol).failures.append({**_base(e, ts), "command": d.get("command"),
                                         "error": d.get("error"), "message": d.get("message")})
        elif ev == "restore" and vol:
            out.of(vol).restores.append({**_base(e, ts), "generation": d.get("generation"),
                                         "written_bytes": d.get("written_bytes"),
                                         "drill": bool(d.get("drill"))})
        elif ev == "quarantine":
            pending_q.append({**_base(e, ts), "records": len(d.get("records") or [])})
        elif ev == "verify":
            rows = _check_rows(e, ts)
            for row in rows:
                out.of(row["volume_id"]).checks.append(row)
                _drill(out.of(row["volume_id"]), row)
            failed = sorted({r["volume_id"] for r in rows if r["verdict"] == "fail"})
            for q in pending_q:
                for v in failed:
                    out.of(v).quarantines.append(q)
                if not failed:
                    out.unattributed_quarantines.append(q)
            pending_q = []
        elif ev == "prune" and d.get("phase") != "intent":  # judged by its final entry
            out.prunes.append({**_base(e, ts), "dry_run": bool(d.get("dry_run")), "details": d})
    out.unattributed_quarantines.extend(pending_q)
    return out
