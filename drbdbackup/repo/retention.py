"""Retention rules: which generations of one volume each keep rule keeps, and why (pure).

Semantics follow restic's `forget` (compared in tests/retention):

- `last N`: the N newest generations.
- `within D`: every generation made less than D before the *newest* generation of the set
  (restic measures from the newest snapshot, borg from now: measuring from the newest means a
  volume whose backups stopped is never emptied by the clock alone).
- `hourly/daily/weekly/monthly/yearly N`: walking from the newest generation, the first (so the
  newest) generation of each period, for the N newest periods that hold a generation. Periods
  are taken in UTC; weeks are ISO weeks (`%G-W%V`).
- The rules are independent: a generation kept by one rule still counts for every other rule
  (restic; borg instead lets each rule skip what an earlier rule kept). The result is the union.

Every kept generation carries the reasons (`"last 1/3"`, `"within 2d"`, `"daily 2026-12-03"`);
everything else is removed. A set of rules with any rule >= 1 always keeps the newest generation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from drbdbackup.errors import UsageError

PERIODS = (  # rule name, strftime bucket
    ("hourly", "%Y-%m-%dT%H"),
    ("daily", "%Y-%m-%d"),
    ("weekly", "%G-W%V"),
    ("monthly", "%Y-%m"),
    ("yearly", "%Y"),
)
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(?:\d{1,6}[hdw])+")
MAX_COUNT = 1_000_000


def parse_duration(text: str) -> timedelta:
    """'36h', '2d', '1w3d12h' -> timedelta (> 0). Months and years are not fixed lengths: use
    --keep-monthly / --keep-yearly for those."""
    t = text.strip()
    if not _DURATION_RE.fullmatch(t):
        raise UsageError(f"invalid duration {text!r}: use hours, days or weeks, e.g. 36h, 2d, 1w3d")
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([hdw])", t))
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r}: must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(d: timedelta) -> str:
    """The shortest text `parse_duration` reads back as `d` (whole hours)."""
    hours = int(d.total_seconds()) // 3600
    out = ""
    for unit, size in (("w", 168), ("d", 24), ("h", 1)):
        if hours >= size:
            out += f"{hours // size}{unit}"
            hours %= size
    return out or "0h"


@dataclass(frozen=True)
class KeepRules:
    """One retention scheme (counts of 0 and `within` None are off)."""

    last: int = 0
    within: timedelta | None = None
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for name in ("last", *(p for p, _ in PERIODS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                raise UsageError(f"--keep-{name} must be an integer in [0, {MAX_COUNT}], not {value!r}")
        if self.within is not None and self.within <= timedelta(0):
            raise UsageError("--keep-within must be longer than zero")

    @property
    def any(self) -> bool:
        """Whether at least one rule keeps something."""
        return bool(self.last or self.within or any(getattr(self, p) for p, _ in PERIODS))

    def to_dict(self) -> dict[str, int | str]:
        """The rules that are on, e.g. {"last": 3, "within": "2d"} (for reports and audit)."""
        out: dict[str, int | str] = {}
        if self.last:
            out["last"] = self.last
        if self.within is not None:
            out["within"] = format_duration(self.within)
        for name, _ in PERIODS:
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


@dataclass
class Decision:
    """The outcome for one set of generations: reasons per kept id, removed ids (newest first)."""

    kept: dict[str, list[str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def decide(generations: Iterable[tuple[str, datetime]], rules: KeepRules) -> Decision:
    """Apply `rules` to (generation id, created) pairs of one volume."""
    ordered = sorted(((g, _utc(t)) for g, t in generations), key=lambda x: (x[1], x[0]), reverse=True)
    reasons: dict[str, list[str]] = {g: [] for g, _ in ordered}
    for i, (g, _t) in enumerate(ordered[: rules.last]):
        reasons[g].append(f"last {i + 1}/{rules.last}")
    if rules.within is not None and ordered:
        cutoff = ordered[0][1] - rules.within
        label = f"within {format_duration(rules.within)}"
        for g, t in ordered:
            if t > cutoff:
                reasons[g].append(label)
    for name, fmt in PERIODS:
        count = getattr(rules, name)
        last_bucket = None
        for g, t in ordered:
            if count <= 0:
                break
            bucket = t.strftime(fmt)
            if bucket != last_bucket:
                reasons[g].append(f"{name} {bucket}")
                last_bucket = bucket
                count -= 1
    out = Decision()
    for g, _t in ordered:
        if reasons[g]:
            out.kept[g] = reasons[g]
        else:
            out.removed.append(g)
    return out
