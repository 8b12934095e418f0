"""Pure time logic of the compliance report: dates, durations, day windows (UTC) and the RPO
verdict over a series of backup times. No I/O; every function is total over its inputs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from drbdbackup.errors import UsageError

_DURATION_RE = re.compile(r"(?:\d{1,7}[smhdw])+")
_PART_RE = re.compile(r"(\d+)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DAYS = 3660  # a report spans at most ten years of days


def parse_duration(text: str) -> int:
    """'24h', '90m', '2d', '1w3d', '3600s' -> seconds (> 0); UsageError otherwise."""
    t = (text or "").strip() if isinstance(text, str) else ""
    seconds = sum(int(n) * _UNIT_S[u] for n, u in _PART_RE.findall(t)) if _DURATION_RE.fullmatch(t) else 0
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r}: use e.g. 24h, 90m, 2d")
    return seconds


def parse_day(text: str, option: str) -> date:
    """'YYYY-MM-DD' (or a full ISO timestamp, whose UTC date counts) -> date."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        ts = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise UsageError(f"invalid {option} date {text!r}: use YYYY-MM-DD") from None
    return (ts if ts.tzinfo is None else ts.astimezone(UTC)).date()


def parse_time(text: object) -> datetime | None:
    """An ISO timestamp from the repository as an aware UTC datetime; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def day_of(ts: datetime) -> str:
    return ts.astimezone(UTC).date().isoformat()


def window_days(since: date, until: date) -> list[str]:
    """Every day from since to until inclusive, as YYYY-MM-DD; UsageError when reversed/too long."""
    if until < since:
        raise UsageError(f"--until {until} is before --since {since}")
    n = (until - since).days + 1
    if n > MAX_DAYS:
        raise UsageError(f"the report window spans {n} days; at most {MAX_DAYS}")
    return [(since + timedelta(days=i)).isoformat() for i in range(n)]


def day_bounds(day: str) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class Gap:
    """A stretch longer than the RPO without a backup: [start, end)."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def rpo_gaps(backups: list[datetime], start: datetime, end: datetime, rpo_s: int,
             before: datetime | None = None) -> list[Gap]:
    """Stretches in [start, end) where the newest backup is older than the RPO.

    `before` is the newest backup before `start` (None: there was none, so protection starts
    with the first backup; with no backup at all the whole window is one gap). A stretch is
    reported from the moment the RPO ran out (last backup + rpo) until the next backup or `end`."""
    times = sorted(t for t in backups if start <= t < end)
    gaps: list[Gap] = []
    last = before if before is not None else (times[0] if times else None)
    if last is None:
        return [Gap(start, end)] if end > start else []
    for t in [*times, end]:
        due = last + timedelta(seconds=rpo_s)
        if t > due:
            gaps.append(Gap(max(due, start), t))
        last = max(last, t)
    return gaps


def overlaps(gap: Gap, lo: datetime, hi: datetime) -> bool:
    return gap.start < hi and gap.end > lo
