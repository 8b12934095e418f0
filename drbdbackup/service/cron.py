"""A small 5-field cron parser (minute hour day-of-month month day-of-week). Pure.

Supported per field: numbers, ``*``, lists (``1,5``), ranges (``1-5``) and steps (``*/15``,
``10-50/10``, ``5/20`` = from 5 to the field maximum). Day of week is 0-7 (0 and 7 = Sunday).
As in Vixie cron, when both day-of-month and day-of-week are restricted (neither starts with
``*``), a day matches when EITHER matches; otherwise both must match (``*/2`` counts as starting
with ``*``: ``0 0 */2 * 1`` is odd days that are Mondays). Names (``mon``, ``jan``) and ``@daily`` are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# (name, min, max)
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
SEARCH_YEARS = 9  # Feb 29 can be 8 years away (e.g. 2096 -> 2104)


class CronError(ValueError):
    """The expression is not a valid 5-field cron expression."""


def _int(text: str, name: str, lo: int, hi: int) -> int:
    if not text.isdigit():
        raise CronError(f"{name}: {text!r} is not a number")
    v = int(text)
    if not lo <= v <= hi:
        raise CronError(f"{name}: {v} is out of range {lo}-{hi}")
    return v


def parse_field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    """One field -> the set of values it allows."""
    if not text:
        raise CronError(f"{name}: empty field")
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty list element in {text!r}")
        base, slash, step_s = part.partition("/")
        step = 1
        if slash:
            step = _int(step_s, name, 1, hi - lo + 1) if step_s else 0
            if step < 1:
                raise CronError(f"{name}: missing step in {part!r}")
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _int(a, name, lo, hi), _int(b, name, lo, hi)
            if start > end:
                raise CronError(f"{name}: range {base!r} is backwards")
        else:
            start = _int(base, name, lo, hi)
            end = hi if slash else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Cron:
    """A parsed expression; `next_after` gives the next firing minute."""

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday (7 folded into 0)
    dom_any: bool
    dow_any: bool

    def day_matches(self, dt: datetime) -> bool:
        """Whether the calendar day of `dt` is allowed (month, day-of-month/day-of-week rule)."""
        if dt.month not in self.months:
            return False
        dom = dt.day in self.days
        dow = (dt.isoweekday() % 7) in self.weekdays
        if self.dom_any or self.dow_any:  # Vixie cron: a field starting with '*' (also '*/n')
            return dom and dow
        return dom or dow

    def matches(self, dt: datetime) -> bool:
        """Whether the minute `dt` fires."""
        return dt.minute in self.minutes and dt.hour in self.hours and self.day_matches(dt)

    def next_after(self, after: datetime) -> datetime | None:
        """The first firing minute strictly after `after` (same tzinfo), None if there is none
        within SEARCH_YEARS (e.g. ``0 0 30 2 *``)."""
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = after + timedelta(days=366 * SEARCH_YEARS)
        while t <= limit:
            if not self.day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                later = [h for h in self.hours if h > t.hour]
                t = (t.replace(hour=min(later), minute=0) if later
                     else t.replace(hour=0, minute=0) + timedelta(days=1))
                continue
            later_m = [m for m in self.minutes if m >= t.minute]
            if later_m:
                return t.replace(minute=min(later_m))
            t = t.replace(minute=0) + timedelta(hours=1)
        return None


def parse_cron(expr: str) -> Cron:
    """Parse a 5-field expression; raises CronError with a one-line reason."""
    parts = expr.split()
    if len(parts) != 5:
        raise CronError(f"expected 5 fields (minute hour day month weekday), got {len(parts)}")
    sets = [parse_field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(expr=expr, minutes=sets[0], hours=sets[1], days=sets[2], months=sets[3],
                weekdays=weekdays, dom_any=parts[2].startswith("*"),
                dow_any=parts[4].startswith("*"))
