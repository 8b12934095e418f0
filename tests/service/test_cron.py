"""The cron parser: fields, errors, next-fire times, and a brute-force property."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.service.cron import Cron, CronError, parse_cron, parse_field


@pytest.mark.parametrize(("text", "lo", "hi", "want"), [
    ("*", 0, 5, {0, 1, 2, 3, 4, 5}),
    ("3", 0, 59, {3}),
    ("1,3,5", 0, 59, {1, 3, 5}),
    ("1-4", 0, 59, {1, 2, 3, 4}),
    ("*/20", 0, 59, {0, 20, 40}),
    ("10-30/10", 0, 59, {10, 20, 30}),
    ("10-35/10", 0, 59, {10, 20, 30}),
    ("50/5", 0, 59, {50, 55}),
    ("1-3,7,*/30", 0, 59, {0, 1, 2, 3, 7, 30}),
    ("*/7", 1, 12, {1, 8}),
    ("0,7", 0, 7, {0, 7}),
    ("5-5", 0, 59, {5}),
    ("*/60", 0, 59, {0}),
])
def test_fields(text: str, lo: int, hi: int, want: set[int]) -> None:
    assert parse_field(text, "f", lo, hi) == want


@pytest.mark.parametrize("expr", [
    "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
    "* * * 0 *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "*/ * * * *", "5-1 * * * *",
    "a * * * *", "1,,2 * * * *", ",1 * * * *", "-1 * * * *", "1- * * * *", "*/-1 * * * *",
    "1.5 * * * *", "@daily", "mon * * * *", "* * * * mon", "*/61 * * * *",
])
def test_errors(expr: str) -> None:
    with pytest.raises(CronError):
        parse_cron(expr)


def test_weekday_seven_is_sunday() -> None:
    assert parse_cron("0 0 * * 7").weekdays == {0}
    assert parse_cron("0 0 * * 5-7").weekdays == {0, 5, 6}


T0 = datetime(2026, 11, 25, 13, 37, 42)  # a Wednesday


@pytest.mark.parametrize(("expr", "after", "want"), [
    ("* * * * *", T0, datetime(2026, 11, 25, 13, 38)),
    ("37 * * * *", T0, datetime(2026, 11, 25, 14, 37)),  # strictly after, same minute excluded
    ("*/15 * * * *", T0, datetime(2026, 11, 25, 13, 45)),
    ("0 2 * * *", T0, datetime(2026, 11, 26, 2, 0)),
    ("30 1 * * 0", T0, datetime(2026, 11, 29, 1, 30)),  # next Sunday
    ("0 0 1 * *", T0, datetime(2026, 12, 1)),
    ("0 0 1 1 *", T0, datetime(2027, 1, 1)),
    ("0 0 29 2 *", T0, datetime(2028, 2, 29)),
    ("0 0 31 * *", datetime(2026, 4, 1), datetime(2026, 5, 31)),
    ("0 12 13 * 5", T0, datetime(2026, 11, 27, 12)),  # dom OR dow: Friday 27th comes first
    ("0 12 26 * 5", T0, datetime(2026, 11, 26, 12)),
    ("0 12 * * 1-5", datetime(2026, 11, 28, 8), datetime(2026, 11, 30, 12)),  # skip the weekend
    ("59 23 31 12 *", T0, datetime(2026, 12, 31, 23, 59)),
    ("0 0 * * *", datetime(2026, 12, 31, 23, 59, 59), datetime(2027, 1, 1)),
])
def test_next_after(expr: str, after: datetime, want: datetime) -> None:
    assert parse_cron(expr).next_after(after) == want


def test_never_fires() -> None:
    assert parse_cron("0 0 30 2 *").next_after(T0) is None
    assert parse_cron("0 0 31 4,6,9,11 *").next_after(T0) is None


def test_leap_day_across_2100() -> None:
    assert parse_cron("0 0 29 2 *").next_after(datetime(2096, 3, 1)) == datetime(2104, 2, 29)


def test_aware_datetimes_keep_their_zone() -> None:
    tz = ZoneInfo("Europe/Berlin")
    got = parse_cron("0 3 * * *").next_after(datetime(2026, 11, 25, 13, 0, tzinfo=tz))
    assert got == datetime(2026, 11, 26, 3, 0, tzinfo=tz) and got.tzinfo is tz


# ---- property: next_after == brute-force minute scan -----------------------------------------

def _brute(c: Cron, after: datetime, minutes: int) -> datetime | None:
    """Independent reference: test every minute with the plain cron rule."""
    t = after.replace(second=0, microsecond=0)
    for _ in range(minutes):
        t += timedelta(minutes=1)
        dom_ok = t.day in c.days
        dow_ok = (t.weekday() + 1) % 7 in c.weekdays
        day_ok = (dom_ok and dow_ok) if (c.dom_any or c.dow_any) else (dom_ok or dow_ok)
        if (t.minute in c.minutes and t.hour in c.hours and t.month in c.months and day_ok):
            return t
    return None


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    num = st.integers(lo, hi).map(str)
    rng = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(lambda t: f"{min(t)}-{max(t)}")
    step = st.integers(1, hi - lo + 1)
    stepped = st.one_of(
        step.map(lambda s: f"*/{s}"),
        st.tuples(rng, step).map(lambda t: f"{t[0]}/{t[1]}"),
        st.tuples(num, step).map(lambda t: f"{t[0]}/{t[1]}"),
    )
    item = st.one_of(num, rng, stepped)
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


EXPRS = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 7)).map(" ".join)
AFTER = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1))
WINDOW = 35 * 24 * 60  # minutes


@settings(max_examples=150, deadline=None)
@given(EXPRS, AFTER)
def test_next_after_matches_brute_force(expr: str, after: datetime) -> None:
    c = parse_cron(expr)
    got = c.next_after(after)
    want = _brute(c, after, WINDOW)
    if want is not None:
        assert got == want, expr
    else:
        assert got is None or got > after + timedelta(minutes=WINDOW)
    if got is not None:
        assert got > after and got.second == 0 and c.matches(got)


@settings(max_examples=200, deadline=None)
@given(EXPRS)
def test_fields_stay_in_range(expr: str) -> None:
    c = parse_cron(expr)
    assert c.minutes and c.minutes <= set(range(60))
    assert c.hours and c.hours <= set(range(24))
    assert c.days and c.days <= set(range(1, 32))
    assert c.months and c.months <= set(range(1, 13))
    assert c.weekdays and c.weekdays <= set(range(7))


def test_star_step_day_of_month_combines_with_and() -> None:
    c = parse_cron("0 0 */2 * 1")  # odd days of the month that are Mondays
    assert c.next_after(datetime(2026, 11, 25)) == datetime(2026, 12, 7)
