"""drbdbackup/repo/retention.py: every keep rule against a brute-force reference (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.errors import UsageError
from drbdbackup.repo.retention import PERIODS, KeepRules, decide, format_duration, parse_duration

T0 = datetime(2025, 12, 20, tzinfo=UTC)
# generation times: up to 40 within ~2.5 years, with ties, hour and year boundaries
times = st.lists(st.integers(0, 900 * 24), min_size=0, max_size=40).map(
    lambda hs: [(f"g{i:03d}", T0 + timedelta(hours=h, minutes=i % 3)) for i, h in enumerate(hs)])
counts = st.integers(0, 6)
rules_st = st.builds(KeepRules, last=counts, within=st.one_of(st.none(), st.integers(1, 24 * 90).map(
    lambda h: timedelta(hours=h))), hourly=counts, daily=counts, weekly=counts, monthly=counts,
    yearly=counts)


def _newest_first(gens: list[tuple[str, datetime]]) -> list[tuple[str, datetime]]:
    return sorted(gens, key=lambda g: (g[1], g[0]), reverse=True)


def reference(gens: list[tuple[str, datetime]], rules: KeepRules) -> set[str]:
    """Written apart from the module: per period rule, the newest generation of each of the N
    newest distinct periods; `within` from the newest; the union."""
    keep = {g for g, _ in _newest_first(gens)[: rules.last]}
    if rules.within and gens:
        newest = max(t for _, t in gens)
        keep |= {g for g, t in gens if newest - t < rules.within}
    for name, fmt in PERIODS:
        periods: dict[str, list[tuple[str, datetime]]] = {}
        for g, t in gens:
            periods.setdefault(t.strftime(fmt), []).append((g, t))
        for _bucket, members in sorted(periods.items(), key=lambda kv: max(kv[1])[1:], reverse=True)[
                : getattr(rules, name)]:
            keep.add(_newest_first(members)[0][0])
    return keep


@settings(max_examples=200, deadline=None)
@given(times, rules_st)
def test_matches_reference_and_partitions(gens: list[tuple[str, datetime]], rules: KeepRules) -> None:
    d = decide(gens, rules)
    assert set(d.kept) == reference(gens, rules)
    assert set(d.kept).isdisjoint(d.removed) and set(d.kept) | set(d.removed) == {g for g, _ in gens}
    assert all(d.kept.values()), "every kept generation says why"
    if rules.any and gens:
        assert _newest_first(gens)[0][0] in d.kept, "the newest generation is always kept"


@settings(max_examples=100, deadline=None)
@given(times, rules_st)
def test_second_pass_removes_nothing(gens: list[tuple[str, datetime]], rules: KeepRules) -> None:
    kept = set(decide(gens, rules).kept)
    assert decide([g for g in gens if g[0] in kept], rules).removed == []


@settings(max_examples=100, deadline=None)
@given(times, rules_st, st.sampled_from(["last", "hourly", "daily", "weekly", "monthly", "yearly"]))
def test_more_is_never_less(gens: list[tuple[str, datetime]], rules: KeepRules, name: str) -> None:
    more = KeepRules(**{**rules.__dict__, name: getattr(rules, name) + 1})
    assert set(decide(gens, rules).kept) <= set(decide(gens, more).kept)


@settings(max_examples=100, deadline=None)
@given(times, rules_st)
def test_rules_are_independent(gens: list[tuple[str, datetime]], rules: KeepRules) -> None:
    """restic semantics: the result is the union of each rule alone."""
    union: set[str] = set()
    for name, value in rules.__dict__.items():
        if value:
            union |= set(decide(gens, KeepRules(**{name: value})).kept)
    assert set(decide(gens, rules).kept) == union


@settings(max_examples=100, deadline=None)
@given(times, st.integers(-14, 14))
def test_periods_are_utc(gens: list[tuple[str, datetime]], offset_h: int) -> None:
    shifted = [(g, t.astimezone(timezone(timedelta(hours=offset_h)))) for g, t in gens]
    rules = KeepRules(daily=3, monthly=2, within=timedelta(hours=5))
    assert decide(shifted, rules).kept == decide(gens, rules).kept


def test_reasons_name_the_rule_and_period() -> None:
    gens = [("a", datetime(2026, 11, 30, 23, tzinfo=UTC)), ("b", datetime(2026, 12, 1, 1, tzinfo=UTC)),
            ("c", datetime(2026, 12, 3, 9, tzinfo=UTC))]
    d = decide(gens, KeepRules(last=1, within=timedelta(days=2), daily=2, monthly=2, yearly=1))
    assert d.kept == {"c": ["last 1/1", "within 2d", "daily 2026-12-03", "monthly 2026-12", "yearly 2026"],
                      "b": ["daily 2026-12-01"], "a": ["monthly 2026-11"]}
    assert d.removed == []
    d = decide(gens, KeepRules(within=timedelta(hours=56)))  # b is exactly 56 h older: not within
    assert set(d.kept) == {"c"} and d.removed == ["b", "a"]
    assert set(decide(gens, KeepRules(within=timedelta(hours=57))).kept) == {"c", "b"}


def test_weekly_uses_iso_weeks_across_the_year_end() -> None:
    gens = [("mon", datetime(2024, 12, 30, tzinfo=UTC)), ("sun", datetime(2024, 12, 29, tzinfo=UTC))]
    assert decide(gens, KeepRules(weekly=5)).kept == {"mon": ["weekly 2025-W01"], "sun": ["weekly 2024-W52"]}


@pytest.mark.parametrize("text,hours", [("36h", 36), ("2d", 48), ("1w", 168), ("1w3d12h", 252), (" 2d ", 48)])
def test_parse_duration(text: str, hours: int) -> None:
    d = parse_duration(text)
    assert d == timedelta(hours=hours) and parse_duration(format_duration(d)) == d


@pytest.mark.parametrize("text", ["", "2", "0d", "2 days", "3m", "1y", "-1d", "1.5d", "d", "9999999h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_duration(text)
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("kw", [{"last": -1}, {"daily": True}, {"monthly": 10**7}, {"within": timedelta(0)}])
def test_bad_rules_refused(kw: dict) -> None:
    with pytest.raises(UsageError):
        KeepRules(**kw)


def test_no_rule_keeps_nothing_and_says_so() -> None:
    assert not KeepRules().any and KeepRules(yearly=1).any and KeepRules(within=timedelta(hours=1)).any
    assert KeepRules(last=2, within=timedelta(hours=36), monthly=1).to_dict() == {
        "last": 2, "within": "1d12h", "monthly": 1}
