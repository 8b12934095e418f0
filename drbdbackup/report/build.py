"""Assemble the compliance report's body (a JSON object) from what the ops layer read: the
audit entries, the chain's state, the generations and the policies. Pure: no I/O, `now` given."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from drbdbackup.errors import UnknownVolume
from drbdbackup.report import retention
from drbdbackup.report.controls import controls
from drbdbackup.report.days import window_days
from drbdbackup.report.evidence import collect
from drbdbackup.report.volume import Terms, Window, judge_volume

REPORT_FORMAT = 1
DEFAULT_RPO_S = 86400


@dataclass(frozen=True)
class PolicyTerms:
    """A service policy as the report judges by it."""

    name: str
    rpo_s: int | None = None
    coverage_days: int | None = None
    rules: retention.KeepRules | None = None
    volume_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chain:
    ok: bool
    head: str
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. what may be a crashed run


@dataclass(frozen=True)
class ReportInput:
    repository_id: str
    entries: list[dict[str, Any]]
    chain: Chain
    generations: list[dict[str, Any]]
    now: datetime
    since: date | None = None
    until: date | None = None
    policies: list[PolicyTerms] = field(default_factory=list)
    rpo_override_s: int | None = None
    volume_id: str | None = None
    unprotected: list[dict[str, str]] | None = None


def _terms(vid: str, gens: list[dict[str, Any]], inp: ReportInput) -> Terms:
    names = [str(g["policy"]) for g in gens if g.get("policy")]
    by_name = {p.name: p for p in inp.policies}
    pol = by_name.get(names[-1]) if names else None
    pol = pol or next((p for p in inp.policies if vid in p.volume_ids), None)
    if inp.rpo_override_s:
        rpo, src = inp.rpo_override_s, "--rpo"
    elif pol and pol.rpo_s:
        rpo, src = pol.rpo_s, f"policy {pol.name}"
    else:
        rpo, src = DEFAULT_RPO_S, "default (24h)"
    return Terms(pol.name if pol else (names[-1] if names else None), rpo, src,
                 pol.coverage_days if pol else None, pol.rules if pol else None)


def _window(inp: ReportInput) -> Window:
    first = min((e["time"][:10] for e in inp.entries if isinstance(e.get("time"), str)), default=None)
    since = inp.since or (date.fromisoformat(first) if first else inp.now.date())
    return Window(window_days(since, inp.until or inp.now.date()), inp.now)


def _counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    return counts


def build_body(inp: ReportInput) -> dict[str, Any]:
    """The report: summary per volume first, then per volume and day, prunes, controls."""
    w = _window(inp)
    ev = collect(inp.entries)
    gens_of: dict[str, list[dict[str, Any]]] = {}
    for g in inp.generations:
        gens_of.setdefault(g["volume_id"], []).append(g)
    vids = sorted(set(gens_of) | set(ev.volumes))
    if inp.volume_id is not None:
        if inp.volume_id not in vids:
            raise UnknownVolume(f"no volume {inp.volume_id} in the repository or its audit log")
        vids = [inp.volume_id]
    terms = {v: _terms(v, gens_of.get(v, []), inp) for v in vids}
    rules_of = {v: t.rules for v, t in terms.items()}
    prunes = [{**p, "volumes": retention.judge_prune(p["details"], rules_of)}
              for p in ev.prunes if not p["dry_run"]]
    volumes = []
    for v in vids:
        mine = [{"seq": p["seq"], "time": p["time"], **r} for p in prunes for r in p["volumes"]
                if r["volume_id"] == v]
        volumes.append(judge_volume(v, ev.of(v), gens_of.get(v, []), terms[v], mine, w))
    in_window = [e for e in inp.entries if w.days[0] <= str(e.get("time", ""))[:10] <= w.days[-1]]
    body: dict[str, Any] = {
        "report": "drbdbackup compliance report", "report_format": REPORT_FORMAT,
        "generated": inp.now.isoformat(), "repository_id": inp.repository_id,
        "since": w.days[0], "until": w.days[-1],
        "audit_chain_ok": inp.chain.ok, "audit_chain_error": inp.chain.error,
        "audit_chain_head": inp.chain.head, "audit_problems": inp.chain.problems,
        "audit_warnings": inp.chain.warnings,
        "event_counts": _counts(in_window),
        "summary": [{"volume_id": v["volume_id"], "policy": v["policy"], "labels": v["labels"],
                     **v["summary"]} for v in volumes],
        "open_problems": list(inp.chain.problems) + [f"{v['volume_id']}: {p}" for v in volumes
                                                     for p in v["summary"]["open_problems"]],
        "volumes": volumes,
        "prunes": [{k: p[k] for k in ("seq", "time", "volumes")} for p in prunes
                   if w.days[0] <= p["time"][:10] <= w.days[-1]],
        "unattributed_quarantines": ev.unattributed_quarantines,
        "controls": controls(volumes, inp.chain.ok),
        "verifications": [e for e in in_window if e["event"] == "verify"],
        "failures": [e for e in in_window if e["event"] == "failure"],
        "generations": inp.generations,
    }
    if inp.unprotected is not None:
        body["unprotected"] = inp.unprotected
    return body
