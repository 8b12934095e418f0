"""report/build.py + volume.py + evidence.py: a simulated audit log judged (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from drbdbackup.errors import UnknownVolume
from drbdbackup.report.build import Chain, PolicyTerms, ReportInput, build_body
from drbdbackup.report.retention import KeepRules

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
D0 = datetime(2026, 12, 1, tzinfo=UTC)


def gid(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S%fZ") + "-00000000"


class Log:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, t: datetime, event: str, **details: Any) -> None:
        self.entries.append({"seq": len(self.entries) + 1, "time": t.isoformat(), "event": event,
                             "prev": "0" * 64, "details": details})

    def backup(self, vol: str, t: datetime) -> str:
        g = gid(t)
        self.add(t, "backup", volume_id=vol, generation=g, mode="incremental", tracker="checksum",
                 tracker_reason="checksum diff", fallback_reason=None, size_bytes=1 << 20,
                 read_bytes=1 << 20, changed_bytes=4096, stored_bytes=2048)
        return g

    def verify(self, t: datetime, vol: str, g: str, verdict: str = "pass", sel: str = "full",
               compared: int = 0) -> None:
        self.add(t, "verify", tool="drbdverify", selection=sel, verdict=verdict, checks=[
            {"volume_id": vol, "generation": g, "verdict": verdict, "chunks_checked": 16,
             "chunks_total": 16, "chunks_failed": int(verdict == "fail"),
             "bytes_compared_with_source": compared}])


def history() -> tuple[Log, dict[str, str]]:
    log, g = Log(), {}
    for d in (0, 1, 3, 4):  # day 2 (2026-12-03) missed for db
        g[f"db{d}"] = log.backup("db", D0 + timedelta(days=d, hours=2))
    for d in range(5):
        g[f"vm{d}"] = log.backup("vm", D0 + timedelta(days=d, hours=3))
    log.verify(D0 + timedelta(days=4, hours=5), "db", g["db4"], "fail")
    log.entries.insert(-1, {**log.entries[-1], "event": "quarantine", "details": {"records": ["q1"]}})
    log.verify(D0 + timedelta(days=4, hours=7), "db", g["db4"])
    log.add(D0 + timedelta(days=5, hours=1), "restore", volume_id="db", generation=g["db4"], written_bytes=1)
    log.verify(D0 + timedelta(days=5, hours=2), "db", g["db4"], compared=1 << 20)
    log.add(D0 + timedelta(days=5, hours=3), "prune", dry_run=False,
            removed_generations=[f"db/{g['db0']}"],
            kept_generations=[f"db/{g[k]}" for k in ("db1", "db3", "db4")])
    return log, g


def gens(g: dict[str, str], vol: str, keys: list[str]) -> list[dict[str, Any]]:
    return [{"volume_id": vol, "generation": g[k], "created": (D0 + timedelta(days=int(k[-1]), hours=2)).isoformat(),
             "mode": "incremental", "tracker": "checksum", "size_bytes": 1 << 20, "status": "ok",
             "policy": "db" if vol == "db" else None, "labels": {}} for k in keys]


def body(**kw: Any) -> dict[str, Any]:
    log, g = history()
    rows = gens(g, "db", ["db1", "db3", "db4"]) + gens(g, "vm", [f"vm{d}" for d in range(5)])
    args: dict[str, Any] = {"repository_id": "r" * 64, "entries": log.entries,
                            "chain": Chain(True, "h" * 64), "generations": rows, "now": NOW,
                            "since": date(2026, 11, 30),
                            "policies": [PolicyTerms("db", 86400, 2, KeepRules(last=3))]}
    args.update(kw)
    return build_body(ReportInput(**args))


def days(b: dict[str, Any], vol: str) -> dict[str, str]:
    (v,) = [v for v in b["volumes"] if v["volume_id"] == vol]
    return {d["day"]: d["status"] for d in v["days"]}


def test_timeline_statuses() -> None:
    b = body()
    assert days(b, "db") == {"2026-11-30": "not-protected-yet", "2026-12-01": "ok", "2026-12-02": "ok",
                             "2026-12-03": "missed", "2026-12-04": "late", "2026-12-05": "ok",
                             "2026-12-06": "missed"}
    # vm: every day backed up; today (12:00) no backup yet but within 24h of 03:00 yesterday? no:
    # 2026-12-05 03:00 + 24h = 2026-12-06 03:00 < now: today is late and missed
    assert days(b, "vm")["2026-12-05"] == "ok" and days(b, "vm")["2026-12-06"] == "missed"
    s = {x["volume_id"]: x for x in b["summary"]}
    assert s["db"]["rpo"]["verdict"] == "fail" and s["db"]["rpo"]["source"] == "policy db"
    assert s["db"]["failing_days"] == ["2026-12-03", "2026-12-04", "2026-12-06"]
    assert s["vm"]["rpo"]["source"] == "default (24h)"
    assert s["db"]["covered_days"] == 4 and s["db"]["judged_days"] == 6
    miss = [d for v in b["volumes"] for d in v["days"] if d["status"] == "missed"]
    assert miss and all(d["colour"] == "#c62828" for d in miss)


def test_pending_today_is_not_a_pass() -> None:
    b = body(now=D0 + timedelta(days=5, hours=1))  # 01:00, vm's last backup 22h ago
    assert days(b, "vm")["2026-12-06"] == "pending"
    s = {x["volume_id"]: x for x in b["summary"]}
    assert s["vm"]["judged_days"] == 5  # pending days are not counted as covered or passing


def test_rpo_override_and_filter() -> None:
    b = body(rpo_override_s=7 * 86400, volume_id="db")
    assert [v["volume_id"] for v in b["volumes"]] == ["db"]
    assert b["summary"][0]["rpo"]["source"] == "--rpo"
    # a missed day fails even when the RPO is a week: a window with no backup never passes
    assert days(b, "db")["2026-12-03"] == "missed" and days(b, "db")["2026-12-04"] == "ok"
    with pytest.raises(UnknownVolume):
        body(volume_id="nope")


def test_healing_drill_quarantine_prune() -> None:
    b = body()
    (db,) = [v for v in b["volumes"] if v["volume_id"] == "db"]
    (heal,) = db["summary"]["healing"]
    assert heal["healed_at"] and heal["current_status"] == "ok"
    compared = [e for e in history()[0].entries
                if e["event"] == "verify" and e["details"]["checks"][0]["bytes_compared_with_source"]]
    assert db["summary"]["last_verified_restore"]["verified_by"] == compared[0]["seq"]
    day4 = {d["day"]: d for d in db["days"]}["2026-12-05"]
    assert day4["verification_failed"] and day4["quarantines"][0]["records"] == 1
    (prune,) = b["prunes"]
    assert prune["volumes"][0]["verdict"] == "compliant"
    assert db["summary"]["retention"]["verdict"] == "pass"
    assert db["summary"]["coverage"]["verdict"] == "fail"  # db1 and db3 never read completely
    probs = db["summary"]["open_problems"]
    assert any("RPO not met on 3 day(s)" in p for p in probs)
    assert not any("failed verification" in p for p in probs)  # healed
    assert [c["control"] for c in b["controls"]][:2] == ["SOC 2 A1.2", "SOC 2 A1.3"]


def test_unhealed_failure_and_audit_problems_are_open_problems() -> None:
    log, g = history()
    log.entries = [e for e in log.entries if not (e["event"] == "verify" and e["details"]["verdict"] == "pass")]
    b = body(entries=log.entries, chain=Chain(False, "h" * 64, "audit log chain broken at audit/000000000003",
                                              ["audit log chain broken at audit/000000000003"]))
    assert b["open_problems"][0].startswith("audit log chain broken")
    assert any("failed verification" in p and "no later check passed" in p for p in b["open_problems"])
    assert all(c["status"] == "attention" for c in b["controls"])


def test_an_incomplete_consistency_group_is_an_open_problem() -> None:
    log, g = history()
    rows = gens(g, "db", ["db1", "db3", "db4"]) + gens(g, "vm", [f"vm{d}" for d in range(5)])
    rows[1] |= {"snapshot": "drbdbackup-x-3", "group_members": ["db", "vm"],
                "group_incomplete": ["vm"]}  # as ops.reporting marks it (the list's rule)
    b = body(generations=rows)
    (db,) = [s for s in b["summary"] if s["volume_id"] == "db"]
    problems = [p for p in db["open_problems"] if "incomplete consistency group" in p]
    assert problems == [f"generation {g['db3']} belongs to an incomplete consistency group "
                        "(snapshot drbdbackup-x-3): no record of vm; it is never a lineage base"]
    assert any(p.startswith("db: generation") and "incomplete" in p for p in b["open_problems"])
    assert not [p for p in body()["open_problems"] if "incomplete consistency group" in p]
