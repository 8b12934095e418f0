"""report/days.py: durations, dates, windows and RPO gaps (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from drbdbackup.errors import UsageError
from drbdbackup.report.days import (
    MAX_DAYS,
    day_bounds,
    overlaps,
    parse_day,
    parse_duration,
    parse_time,
    rpo_gaps,
    window_days,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("90m", 5400), ("2d", 172800), ("1w", 604800),
                                          ("3600s", 3600), ("1d12h", 129600), (" 6h ", 21600)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "24", "h", "-1h", "1.5h", "24 hours", "1y", "1h-", "1hh"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


def test_dates() -> None:
    assert parse_day("2026-12-01", "--since") == date(2026, 12, 1)
    assert parse_day("2026-12-01T23:30:00-02:00", "--since") == date(2026, 12, 2)  # UTC date
    for bad in ("2026-13-01", "yesterday", "2026-02-30", "", "12/01/2026"):
        with pytest.raises(UsageError, match="invalid --since date"):
            parse_day(bad, "--since")
    assert parse_time("2026-12-01T10:00:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_time("garbage") is None and parse_time(None) is None and parse_time(5) is None


def test_windows() -> None:
    assert window_days(date(2026, 11, 29), date(2026, 12, 2)) == [
        "2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]
    assert window_days(date(2026, 12, 1), date(2026, 12, 1)) == ["2026-12-01"]
    with pytest.raises(UsageError, match="before --since"):
        window_days(date(2026, 12, 2), date(2026, 12, 1))
    with pytest.raises(UsageError, match="at most"):
        window_days(date(2000, 1, 1), date(2000, 1, 1) + timedelta(days=MAX_DAYS))
    lo, hi = day_bounds("2026-12-01")
    assert lo == T0 and hi - lo == timedelta(days=1)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def test_rpo_gaps() -> None:
    day = 86400
    # daily backups at 02:00: no gap
    assert rpo_gaps([h(2), h(26), h(50)], T0, h(72), day, before=h(-22)) == []
    # a missed day: the gap runs from when the RPO ran out until the next backup
    (g,) = rpo_gaps([h(2), h(50)], T0, h(72), day, before=h(-22))
    assert (g.start, g.end) == (h(26), h(50))
    # after the last backup, the gap runs to the window's end
    (g,) = rpo_gaps([h(2)], T0, h(72), day, before=None)
    assert (g.start, g.end) == (h(26), h(72))
    # nothing at all, not even before: the whole window is a gap
    (g,) = rpo_gaps([], T0, h(48), day)
    assert (g.start, g.end) == (T0, h(48))
    # the newest backup before the window counts; its RPO ran out inside the window
    (g,) = rpo_gaps([], T0, h(48), day, before=h(-10))
    assert (g.start, g.end) == (h(14), h(48))
    # a gap that ran out before the window starts is clipped to the window
    (g,) = rpo_gaps([h(5)], T0, h(10), day, before=h(-48))
    assert (g.start, g.end) == (T0, h(5))
    # without an earlier backup, protection starts with the first one: no gap before it
    assert rpo_gaps([h(20)], T0, h(30), day) == []
    # backups outside the window are ignored
    assert rpo_gaps([h(-5), h(100)], T0, h(10), day, before=h(-5)) == []
    assert g.seconds == 5 * 3600
    assert overlaps(g, h(4), h(6)) and not overlaps(g, h(5), h(9))
