"""Prometheus text exposition (format 0.0.4), computed from the job store on each scrape.

Counters (`*_total`) are sums over every finished job in the store, so they survive restarts.
"""

from __future__ import annotations

from typing import Any

from drbdbackup.service.store import KINDS, STATES


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, **labels: str) -> None:
        lab = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(labels.items()))
        self.lines.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")


def _cluster(o: _Out, view: dict[str, Any]) -> None:
    """Gauges from the cluster view (`GET /v1/cluster`)."""
    o.family("drbdbackup_last_good_age_seconds", "gauge",
             "Age of the newest good generation of a volume, from the repository")
    for v in view.get("volumes", []):
        if v.get("age_s") is not None:
            o.sample("drbdbackup_last_good_age_seconds", v["age_s"], volume_id=v["volume_id"],
                     node=v.get("node") or "")
    o.family("drbdbackup_agent_heartbeat_age_seconds", "gauge",
             "Age of an agent's last heartbeat, by the repository's clock")
    for a in view.get("agents", []):
        if a.get("heartbeat_age_s") is not None:
            o.sample("drbdbackup_agent_heartbeat_age_seconds", a["heartbeat_age_s"], node=a["node"])
    o.family("drbdbackup_incomplete_groups", "gauge", "Consistency-group generations missing a member")
    o.sample("drbdbackup_incomplete_groups", len(view.get("incomplete_groups", [])))
    if "unprotected" in view:
        o.family("drbdbackup_unprotected_resources", "gauge",
                 "LINSTOR resources that no policy protects (or that are excluded)")
        o.sample("drbdbackup_unprotected_resources", len(view["unprotected"]))


class _Totals:
    """What the finished jobs add up to (for `render`)."""

    def __init__(self) -> None:
        self.last_success: dict[str, float] = {}
        self.change_ratio: dict[str, float] = {}
        self.behind: dict[str, bool] = {}
        self.read = self.stored = self.fallbacks = self.verify_failures = 0
        self.dur_sum = dict.fromkeys(KINDS, 0.0)
        self.dur_count = dict.fromkeys(KINDS, 0)

    def add(self, job: dict[str, Any]) -> None:
        if job.get("started") and job.get("finished"):
            self.dur_sum[job["kind"]] += job["finished"] - job["started"]
            self.dur_count[job["kind"]] += 1
        res = job.get("result") or {}
        for b in res.get("backups") or []:
            self.read += int(b.get("read_bytes") or 0)
            self.stored += int(b.get("stored_bytes") or 0)
            self.fallbacks += 1 if b.get("fallback_reason") else 0
            size = b.get("size_bytes") or 0
            self.change_ratio[b["volume_id"]] = (b.get("changed_bytes") or 0) / size if size else 0.0
            v = b.get("verification")
            if v is not None and not v.get("ok"):
                self.verify_failures += 1
            else:
                self.last_success[b["volume_id"]] = float(job["finished"])
        for v in res.get("verifications") or []:
            self.verify_failures += 0 if v.get("ok") else 1
        if job["kind"] == "verify" and "behind" in res:  # a coverage policy's planned run
            self.behind[job["policy"]] = bool(res["behind"])


def render(finished: list[dict[str, Any]], counts: dict[str, int],
           view: dict[str, Any] | None = None, anchor: dict[str, Any] | None = None) -> str:
    """`finished`: every finished job, oldest first (JobStore.finished_jobs); `view`: the
    cluster view, when it could be computed; `anchor`: JobStore.anchor() (audit head seen)."""
    t = _Totals()
    for job in finished:
        t.add(job)
    o = _Out()
    o.family("drbdbackup_last_success_timestamp_seconds", "gauge",
             "Unix time of the last successful backup of a volume")
    for vol, ts in sorted(t.last_success.items()):
        o.sample("drbdbackup_last_success_timestamp_seconds", ts, volume_id=vol)
    o.family("drbdbackup_bytes_read_total", "counter", "Bytes read from sources by backups")
    o.sample("drbdbackup_bytes_read_total", t.read)
    o.family("drbdbackup_bytes_stored_total", "counter", "Bytes newly stored in the repository by backups")
    o.sample("drbdbackup_bytes_stored_total", t.stored)
    o.family("drbdbackup_change_ratio", "gauge", "Changed bytes / volume size of the last backup of a volume")
    for vol, r in sorted(t.change_ratio.items()):
        o.sample("drbdbackup_change_ratio", round(r, 6), volume_id=vol)
    o.family("drbdbackup_fallbacks_total", "counter", "Backups that fell back to a full read")
    o.sample("drbdbackup_fallbacks_total", t.fallbacks)
    o.family("drbdbackup_verification_failures_total", "counter", "Verifier runs that did not pass")
    o.sample("drbdbackup_verification_failures_total", t.verify_failures)
    o.family("drbdbackup_job_duration_seconds", "summary", "Duration of finished jobs")
    for kind in KINDS:
        o.sample("drbdbackup_job_duration_seconds_sum", round(t.dur_sum[kind], 3), kind=kind)
        o.sample("drbdbackup_job_duration_seconds_count", t.dur_count[kind], kind=kind)
    o.family("drbdbackup_jobs", "gauge", "Jobs in the store by state")
    for state in STATES:
        o.sample("drbdbackup_jobs", counts.get(state, 0), state=state)
    o.family("drbdbackup_verify_coverage_behind", "gauge",
             "1 when a policy's last coverage run deferred due work (verify_budget_mib too small)")
    for pol, late in sorted(t.behind.items()):
        o.sample("drbdbackup_verify_coverage_behind", int(late), policy=pol)
    o.family("drbdbackup_audit_regression", "gauge",
             "1 when the audit head this service saw last is gone from the repository's chain")
    o.sample("drbdbackup_audit_regression", 1 if anchor and anchor.get("regression") else 0)
    if view is not None:
        _cluster(o, view)
    return "\n".join(o.lines) + "\n"
