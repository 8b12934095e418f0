"""report/retention.py and report/coverage.py (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
    (KeepRules(within_s=86400), NEWEST[:3]),  # within a day of the newest, inclusive
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

