"""report/retention.py and report/coverage.py (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drbdbackup.repo.prune import PruneReport, PruneScope, select_generations
from drbdbackup.repo.records import GenerationRecord
from drbdbackup.report.coverage import Check, covered_at, volume_coverage
from drbdbackup.report.retention import (
    KeepRules,
    generation_time,
    judge_prune,
    required,
    under_retained,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def gid(t: datetime, n: int = 0) -> str:
    return t.strftime("%Y%m%dT%H%M%S%fZ") + f"-{n:08x}"


def test_generation_time() -> None:
    assert generation_time(gid(T0 + timedelta(hours=3))) == T0 + timedelta(hours=3)
    assert generation_time("not-a-generation") is None


# eight days, two backups a day (01:00 and 13:00)
GENS = [(gid(T0 + timedelta(days=d, hours=hh)), T0 + timedelta(days=d, hours=hh))
        for d in range(8) for hh in (1, 13)]
NEWEST = [g for g, _t in sorted(GENS, key=lambda x: x[1], reverse=True)]


@pytest.mark.parametrize("rules,expect", [
    (KeepRules(last=3), NEWEST[:3]),
    (KeepRules(daily=3), NEWEST[0:5:2]),  # the newest of each of the 3 newest days
    (KeepRules(last=1, daily=2), [NEWEST[0], NEWEST[2]]),
    (KeepRules(within_s=86400), NEWEST[:2]),  # less than a day before the newest (restic, prune)
    (KeepRules(within_s=86401), NEWEST[:3]),
    (KeepRules(weekly=1), [NEWEST[0]]),
    (KeepRules(hourly=2), NEWEST[:2]),
    (KeepRules(monthly=5), [NEWEST[0]]),
    (KeepRules(yearly=1), [NEWEST[0]]),
    (KeepRules(), []),
])
def test_required(rules: KeepRules, expect: list[str]) -> None:
    assert required(GENS, rules) == set(expect)


def test_judge_prune() -> None:
    rules = KeepRules(last=3)
    removed = [f"db/{g}" for g in NEWEST[3:]]
    kept = [f"db/{g}" for g in NEWEST[:3]]
    (row,) = judge_prune({"removed_generations": removed, "kept_generations": kept}, {"db": rules})
    assert row["verdict"] == "compliant" and len(row["removed"]) == 13 and row["kept"] == 3
    # a prune that removed the newest: a violation naming it
    bad = {"removed_generations": [f"db/{NEWEST[0]}"], "kept_generations": kept[1:],
           "removed_because": {f"db/{NEWEST[0]}": "no keep rule keeps it"}}
    (row,) = judge_prune(bad, {"db": rules})
    assert row["verdict"] == "violation" and row["required_but_removed"] == [NEWEST[0]]
    assert row["prune_said"] == {NEWEST[0]: "no keep rule keeps it"}
    # a volume without rules is not judged (never a silent pass)
    (row,) = judge_prune({"removed_generations": ["vm/" + NEWEST[0]]}, {"vm": None})
    assert row["verdict"] == "no-policy"
    assert judge_prune({"removed_generations": "garbage"}, {}) == []


@pytest.mark.parametrize("rules", [
    KeepRules(last=3), KeepRules(daily=3), KeepRules(within_s=86400), KeepRules(within_s=3600 * 30),
    KeepRules(last=1, weekly=2, monthly=1), KeepRules(hourly=5, yearly=1), KeepRules(),
])
def test_required_is_what_prune_keeps(rules: KeepRules) -> None:
    """One definition: the report's judgement is prune's decision (drbdbackup.repo.retention)."""
    scope = PruneScope(rules.as_prune_rules()) if rules.any else None
    report = PruneReport(dry_run=True)
    records = [GenerationRecord(**_record(g, t)) for g, t in GENS]
    kept = select_generations(records, [scope], report) if scope else []
    assert required(GENS, rules) == {r.generation for r in kept}


def _record(gen: str, t: datetime, policy: str | None = None) -> dict:
    return {"format": 2, "repository_id": "0" * 64, "volume_id": "db", "generation": gen,
            "created": t.isoformat(), "parent": None, "mode": "full", "tracker": "checksum",
            "map_validity": "no-parent", "fallback_reason": None, "size_bytes": 0,
            "chunk_size": 65536, "chunk_count": 0, "root": "0" * 64, "tree_height": 1,
            "source": {"kind": "file", "path": "/x"}, "stats": {}, "policy": policy}


@pytest.mark.parametrize("rules", [KeepRules(last=2), KeepRules(daily=3), KeepRules(within_s=86400),
                                   KeepRules(hourly=3, weekly=1)])
def test_prune_of_a_policy_is_judged_compliant(rules: KeepRules) -> None:
    """Prune's own audit details, for a policy scope among manual generations, are compliant
    with the same rules; one generation more removed is a violation."""
    records = [GenerationRecord(**_record(g, t, "db" if t.hour == 1 else None)) for g, t in GENS]
    report = PruneReport(dry_run=False)
    select_generations(records, [PruneScope(rules.as_prune_rules(), policy="db")], report)
    assert len(report.policies) == 8 and report.removed_generations
    (row,) = judge_prune(report.to_dict(), {"db": rules})
    assert row["verdict"] == "compliant" and row["outside_policy"] == [], row
    victim = next(k for k, why in report.kept_because.items() if why)
    worse = {**report.to_dict(), "removed_generations": [*report.removed_generations, victim],
             "kept_generations": [k for k in report.kept_generations if k != victim]}
    (row,) = judge_prune(worse, {"db": rules})
    assert row["verdict"] == "violation" and row["required_but_removed"] == [victim.split("/")[1]]


def test_judge_prune_within_is_strict_as_prune() -> None:
    """A generation exactly `within` before the newest: prune removes it, and that complies."""
    day = [f"db/{g}" for g in NEWEST[:3]]
    (row,) = judge_prune({"removed_generations": day[2:], "kept_generations": day[:2]},
                         {"db": KeepRules(within_s=86400)})
    assert row["verdict"] == "compliant", row


def test_judge_prune_judges_the_policy_scope_only() -> None:
    """The policy's rules apply to the generations recorded for that policy (as prune's scope):
    newer manual generations neither hide a removed policy generation nor get judged."""
    hourly, manual = NEWEST[1::2], NEWEST[0::2]  # the 01:00 ones are the policy's
    policies = {f"db/{g}": "db" for g in hourly}
    rules = {"db": KeepRules(last=2)}
    kept = [f"db/{g}" for g in hourly[:2] + manual]
    ok = {"removed_generations": [f"db/{g}" for g in hourly[2:]], "kept_generations": kept,
          "policies": policies}
    (row,) = judge_prune(ok, rules)
    assert row["verdict"] == "compliant" and row["outside_policy"] == [], row
    # the policy's second newest removed: a violation although two newer manual ones remain
    bad = {"removed_generations": [f"db/{hourly[1]}"],
           "kept_generations": [f"db/{g}" for g in [hourly[0], *manual]], "policies": policies}
    (row,) = judge_prune(bad, rules)
    assert row["verdict"] == "violation" and row["required_but_removed"] == [hourly[1]], row
    # manual generations removed: outside the policy, not judged by its rules
    other = {"removed_generations": [f"db/{g}" for g in manual[:2]],
             "kept_generations": [f"db/{g}" for g in hourly + manual[2:]], "policies": policies}
    (row,) = judge_prune(other, rules)
    assert row["verdict"] == "compliant" and row["outside_policy"] == sorted(manual[:2]), row
    (row,) = judge_prune(other, rules, {"db": None})  # judged as the manual generations' policy
    assert row["verdict"] == "violation" and row["required_but_removed"] == sorted(manual[:2]), row
    # an older entry without `policies`: every generation of the volume counts
    (row,) = judge_prune({k: v for k, v in bad.items() if k != "policies"}, rules)
    assert row["verdict"] == "compliant", row
    assert judge_prune({**ok, "phase": "intent"}, rules) == []  # judged by its final entry


def test_under_retained() -> None:
    rules = KeepRules(last=2)
    assert under_retained(GENS[-2:], GENS, rules) == []
    assert under_retained(GENS[-1:], GENS, rules) == [NEWEST[1]]


def chk(hours: float, sel: str, verdict: str = "pass", checked: int = 10, total: int = 10,
        gen: str = "g1") -> Check:
    return Check(T0 + timedelta(hours=hours), "db", gen, sel, verdict, checked, total)


def test_covered_at() -> None:
    assert covered_at([]) is None
    assert covered_at([chk(1, "full")]) == T0 + timedelta(hours=1)
    assert covered_at([chk(1, "full", checked=9)]) is None  # not every chunk
    assert covered_at([chk(1, "sample 0.5 (seed 3)", checked=10)]) is None  # samples never count
    assert covered_at([chk(1, "full"), chk(2, "full", "fail")]) is None  # a failure voids it
    assert covered_at([chk(1, "full"), chk(2, "full", "fail"), chk(3, "full")]) == T0 + timedelta(hours=3)
    subsets = [chk(1, "subset 1/3", checked=3), chk(2, "subset 2/3", checked=3)]
    assert covered_at(subsets) is None  # 3/3 missing
    assert covered_at([*subsets, chk(5, "subset 3/3", checked=4)]) == T0 + timedelta(hours=1)
    assert covered_at([*subsets, chk(5, "subset 3/4", checked=4)]) is None  # another t
    assert covered_at([chk(0, "full"), *subsets, chk(5, "subset 3/3")]) == T0 + timedelta(hours=1)


def test_volume_coverage() -> None:
    now = T0 + timedelta(days=10)
    retained = [("g1", T0), ("g2", T0 + timedelta(days=8))]
    cov = volume_coverage(retained, [chk(24 * 9, "full", gen="g1")], now, 2)
    # g2 was never read completely: its age counts from its creation (2 days)
    assert cov["oldest_unverified_generation"] == "g2" and cov["oldest_unverified_age_days"] == 2.0
    assert cov["verdict"] == "pass" and cov["never_fully_verified"] == ["g2"]
    cov = volume_coverage(retained, [], now, 2)
    assert cov["oldest_unverified_generation"] == "g1" and cov["verdict"] == "fail"
    assert volume_coverage(retained, [], now, None)["verdict"] == "no-target"
    assert volume_coverage([], [], now, 2)["verdict"] == "no-data"

