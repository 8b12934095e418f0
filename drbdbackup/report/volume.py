"""Pure per-volume judgement: the day timeline, the RPO verdict, healing, retention and open
problems of one volume over the report window. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drbdbackup.report import coverage, retention
from drbdbackup.report.days import Gap, day_bounds, day_of, overlaps, parse_time, rpo_gaps
from drbdbackup.report.evidence import VolumeEvidence

COLOURS = {"ok": "#2e7d32", "late": "#ef6c00", "missed": "#c62828", "pending": "#9e9e9e",
           "not-protected-yet": "#e0e0e0", "future": "#f5f5f5"}
FAILING = ("missed", "late")


@dataclass(frozen=True)
class Terms:
    """What the volume is judged against."""

    policy: str | None
    rpo_s: int
    rpo_source: str  # "--rpo", "policy <name>", "default (24h)"
    coverage_days: int | None
    rules: retention.KeepRules | None


@dataclass(frozen=True)
class Window:
    days: list[str]
    now: datetime

    @property
    def start(self) -> datetime:
        return day_bounds(self.days[0])[0]

    @property
    def end(self) -> datetime:
        return min(day_bounds(self.days[-1])[1], self.now)


def _times(rows: list[dict[str, Any]]) -> list[datetime]:
    return [t for r in rows if (t := parse_time(r["time"])) is not None]


def _status(day: str, has_backup: bool, gaps: list[Gap], first: datetime | None, w: Window) -> str:
    lo, hi = day_bounds(day)
    if lo >= w.now:
        return "future"
    if first is None or hi <= first:
        return "not-protected-yet"
    late = any(overlaps(g, lo, min(hi, w.now)) for g in gaps)
    if has_backup:
        return "late" if late else "ok"
    return "missed" if hi <= w.now or late else "pending"


def timeline(ev: VolumeEvidence, judged_prunes: list[dict[str, Any]], gaps: list[Gap],
             w: Window) -> list[dict[str, Any]]:
    """One row per day: what happened and the day's status (and its colour)."""
    times = _times(ev.backups)
    first = min(times) if times else None
    kinds = {"backups": ev.backups, "failed_backups": ev.failures, "verifications": ev.checks,
             "restores": ev.restores, "quarantines": ev.quarantines, "prunes": judged_prunes}
    by_day: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for kind, items in kinds.items():
        for i in items:
            by_day.setdefault((kind, i["time"][:10]), []).append(i)
    rows = []
    for day in w.days:
        row: dict[str, Any] = {k: by_day.get((k, day), []) for k in kinds}
        status = _status(day, bool(row["backups"]), gaps, first, w)
        row.update(day=day, status=status, colour=COLOURS[status],
                   verification_failed=any(c["verdict"] == "fail" for c in row["verifications"]))
        rows.append(row)
    return rows


def healing(ev: VolumeEvidence, current: dict[str, str]) -> list[dict[str, Any]]:
    """Every failing check: healed when a later check of that generation passed."""
    out = []
    for c in ev.checks:
        if c["verdict"] != "fail":
            continue
        later = [x for x in ev.checks if x["generation"] == c["generation"] and x["time"] > c["time"]
                 and x["verdict"] == "pass"]
        out.append({"generation": c["generation"], "failed_at": c["time"], "seq": c["seq"],
                    "chunks_failed": c["chunks_failed"],
                    "healed_at": later[0]["time"] if later else None,
                    "current_status": current.get(c["generation"], "pruned")})
    return out


def _problems(gens: list[dict[str, Any]], heal: list[dict[str, Any]], ev: VolumeEvidence,
              days: list[dict[str, Any]], cov: dict[str, Any], ret: list[dict[str, Any]],
              lost: list[str]) -> list[str]:
    out = [f"generation {g['generation']} is {g['status']}: {g.get('problem') or ''}".rstrip(": ")
           for g in gens if g["status"] != "ok"]
    out += [f"generation {g['generation']} belongs to an incomplete consistency group (snapshot "
            f"{g.get('snapshot')}): no record of {', '.join(g['group_incomplete'])}; it is never "
            "a lineage base" for g in gens if g.get("group_incomplete")]
    out += [f"generation {h['generation']} failed verification at {h['failed_at']} and no later "
            "check passed" for h in heal if h["healed_at"] is None and h["current_status"] != "pruned"]
    last_ok = max((b["time"] for b in ev.backups), default="")
    out += [f"backup failed at {f['time']} ({f['error']}): {f['message']}"
            for f in ev.failures if f["time"] > last_ok and f["command"] == "backup"]
    bad = [d["day"] for d in days if d["status"] in FAILING]
    if bad:
        out.append(f"RPO not met on {len(bad)} day(s): {', '.join(bad)}")
    if cov["verdict"] == "fail":
        out.append(f"oldest unverified chunk is {cov['oldest_unverified_age_days']} days old "
                   f"(target {cov['target_days']})")
    out += [f"prune at {p['time']} removed generations its rules keep: "
            f"{', '.join(p['required_but_removed'])}" for p in ret if p["verdict"] == "violation"]
    if lost:
        out.append(f"generations the keep rules require are gone: {', '.join(lost)}")
    return out


def judge_volume(vid: str, ev: VolumeEvidence, gens: list[dict[str, Any]], terms: Terms,
                 prunes: list[dict[str, Any]], w: Window) -> dict[str, Any]:
    """The volume's summary and day rows."""
    times = _times(ev.backups)
    before = max((t for t in times if t < w.start), default=None)
    gaps = rpo_gaps(times, w.start, w.end, terms.rpo_s, before) if times else []
    days = timeline(ev, prunes, gaps, w)
    retained = [(g["generation"], t) for g in gens if (t := parse_time(g.get("created")))]
    checks = [coverage.Check(t, vid, c["generation"], c["selection"], c["verdict"],
                             c["chunks_checked"], c["chunks_total"])
              for c in ev.checks if (t := parse_time(c["time"]))]
    cov = coverage.volume_coverage(retained, checks, w.now, terms.coverage_days)
    heal = healing(ev, {g["generation"]: g["status"] for g in gens})
    history = [(b["generation"], t) for b in ev.backups
               if isinstance(b["generation"], str) and (t := parse_time(b["time"]))]
    lost = retention.under_retained(retained, history, terms.rules) if terms.rules and terms.rules.any else []
    ok_gens = [g for g in gens if g["status"] == "ok"]
    drills = [r for r in ev.restores if r.get("verified_by") or r.get("drill")]
    counted = [d for d in days if d["status"] in ("ok", *FAILING)]
    failing = [d["day"] for d in days if d["status"] in FAILING]
    summary = {
        "covered_days": sum(1 for d in days if d["backups"]), "judged_days": len(counted),
        "failing_days": failing,
        "rpo": {"seconds": terms.rpo_s, "source": terms.rpo_source,
                "verdict": "fail" if failing else "pass" if counted else "no-data",
                "longest_gap_s": max((g.seconds for g in gaps), default=0.0)},
        "last_good_generation": ok_gens[-1]["generation"] if ok_gens else None,
        "last_verified_restore": drills[-1] if drills else None,
        "coverage": cov,
        "retention": {"rules": terms.rules.to_dict() if terms.rules else None,
                      "verdict": ("not-judged" if not (terms.rules and terms.rules.any) else
                                  "fail" if lost or any(p["verdict"] == "violation" for p in prunes)
                                  else "pass"),
                      "required_but_missing": lost},
        "healing": heal,
    }
    summary["open_problems"] = _problems(gens, heal, ev, days, cov, prunes, lost)
    return {"volume_id": vid, "policy": terms.policy, "labels": (gens[-1].get("labels") if gens else None) or {},
            "summary": summary, "days": days, "generations": gens,
            "day_of_first_backup": day_of(min(times)) if times else None}
