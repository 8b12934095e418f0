"""Pure verification-coverage logic: from the checks that verify audit entries record, when was
each retained generation last read completely, and how old is the oldest unverified chunk.

What the entries allow: a check names (volume, generation), the selection (`full`,
`subset n/t`, `sample p`), how many of the generation's chunks were read and the verdict. They
do not list chunk ids. So a generation counts as read completely at time T only by a passing
`full` check that read every chunk, or by passing `subset n/t` checks for every n of one t (the
newest of them is T, the oldest bounds the age). Samples never prove coverage. A chunk shared by
two generations is credited only through the generation that was checked (conservative). A
failing check voids every earlier pass of that generation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_SUBSET_RE = re.compile(r"^subset (\d+)/(\d+)$")
NOTE = ("coverage is judged per generation from verify audit entries: a full check reading every "
        "chunk, or subset checks n/t for every n of one t; samples never count; chunks shared "
        "between generations are credited only to the generation that was checked")


@dataclass(frozen=True)
class Check:
    """One generation's check as a verify audit entry records it."""

    time: datetime
    volume_id: str
    generation: str
    selection: str
    verdict: str
    chunks_checked: int
    chunks_total: int

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def covered_at(checks: list[Check]) -> datetime | None:
    """When the generation's every chunk was last proven by passing checks (None: never);
    `checks` are this generation's, any order."""
    ordered = sorted(checks, key=lambda c: c.time)
    fails = [c.time for c in ordered if c.verdict == "fail"]
    valid = [c for c in ordered if c.passed and (not fails or c.time > fails[-1])]
    best: datetime | None = None
    for c in valid:
        if c.selection == "full" and c.chunks_checked >= c.chunks_total:
            best = c.time if best is None else max(best, c.time)
    per_t: dict[int, dict[int, datetime]] = {}
    for c in valid:
        m = _SUBSET_RE.match(c.selection)
        if m:
            n, t = int(m.group(1)), int(m.group(2))
            per_t.setdefault(t, {})[n] = c.time  # ordered: the newest pass of n wins
    for t, seen in per_t.items():
        if len(seen) == t and set(seen) == set(range(1, t + 1)):
            oldest = min(seen.values())
            best = oldest if best is None else max(best, oldest)
    return best


def volume_coverage(retained: list[tuple[str, datetime]], checks: list[Check], now: datetime,
                    target_days: int | None) -> dict[str, Any]:
    """The oldest unverified chunk's age over the retained generations (id, created): a
    generation never read completely counts from its creation."""
    by_gen: dict[str, list[Check]] = {}
    for c in checks:
        by_gen.setdefault(c.generation, []).append(c)
    worst_age, worst_gen, never = 0.0, None, []
    for gen, created in retained:
        at = covered_at(by_gen.get(gen, []))
        if at is None:
            never.append(gen)
        age = (now - (at or created)).total_seconds()
        if worst_gen is None or age > worst_age:
            worst_age, worst_gen = age, gen
    days = round(max(0.0, worst_age) / 86400, 2)
    if not retained:
        verdict = "no-data"
    elif target_days is None:
        verdict = "no-target"
    else:
        verdict = "pass" if days <= target_days else "fail"
    return {"oldest_unverified_age_days": days if retained else None,
            "oldest_unverified_generation": worst_gen, "target_days": target_days,
            "verdict": verdict, "never_fully_verified": never, "basis": NOTE}

