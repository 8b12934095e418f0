"""Pure verification-coverage logic: from the checks that verify audit entries record, when was
each retained generation last read completely, and how old is the oldest unverified chunk.

What the entries allow: a check names (volume, generation), the selection (`full`,
`subset n/t`, `sample p`), how many of the generation's chunks were read and the verdict. They
do not list chunk ids. So a generation counts as read completely at time T only by a passing
`full` check that read every chunk, or by passing `subset` checks that together cover every
piece n/t of one partition t (a check `m/u` covers the pieces n/t with u dividing t and n = m
mod u; the oldest of the pieces' newest proofs is T). Samples never prove coverage. A chunk
shared by two generations is credited only through the generation that was checked
(conservative). A failing check voids every earlier pass of that generation. This module is the
one definition: the report and the service's verification planner (`coverage_plan`) use it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

_SUBSET_RE = re.compile(r"^subset (\d+)/(\d+)$")
NOTE = ("coverage is judged per generation from verify audit entries: a full check reading every "
        "chunk, or subset checks covering every piece n/t of one t; samples never count; chunks shared "
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


@lru_cache(maxsize=4096)
def subset_of(selection: str) -> tuple[int, int] | None:
    """`"subset n/t"` -> (n, t); anything else None."""
    m = _SUBSET_RE.match(selection)
    if not m:
        return None
    n, t = int(m.group(1)), int(m.group(2))
    return (n, t) if 1 <= n <= t else None


def _newest(checks: list[Check]) -> dict[str, datetime]:
    """Per selection, the newest pass that counts: after the generation's last failing check,
    and for `full` only one that read every chunk."""
    fails = [c.time for c in checks if c.verdict == "fail"]
    last_fail = max(fails) if fails else None
    out: dict[str, datetime] = {}
    for c in checks:
        if not c.passed or (last_fail is not None and c.time <= last_fail):
            continue
        if c.selection == "full" and c.chunks_checked < c.chunks_total:
            continue
        if c.selection == "full" or subset_of(c.selection) is not None:
            seen = out.get(c.selection)
            out[c.selection] = c.time if seen is None else max(seen, c.time)
    return out


def _proofs(newest: dict[str, datetime], t: int) -> list[datetime | None]:
    out: list[datetime | None] = [None] * t
    for sel, when in newest.items():
        mu = (1, 1) if sel == "full" else subset_of(sel)
        if mu is None or t % mu[1]:
            continue
        for i in range(mu[0] - 1, t, mu[1]):
            seen = out[i]
            out[i] = when if seen is None else max(seen, when)
    return out


def piece_proofs(checks: list[Check], t: int) -> list[datetime | None]:
    """When piece n/t (index n-1) of the generation was last proven by a passing check: a full
    check that read every chunk proves every piece; `subset m/u` proves piece n/t when u divides
    t and n = m (mod u), since drbdverify's bucket of a chunk id is int(id[:8], 16) % t."""
    return _proofs(_newest(checks), t)


def covered_at(checks: list[Check]) -> datetime | None:
    """When the generation's every chunk was last proven by passing checks (None: never):
    the best over every partition t its subset checks used (and t = 1 for full checks) of the
    oldest of the t pieces' proofs; `checks` are this generation's, any order."""
    newest = _newest(checks)
    parts = {1} | {mu[1] for sel in newest if (mu := subset_of(sel)) is not None}
    best: datetime | None = None
    for t in sorted(parts):
        proofs = _proofs(newest, t)
        if all(p is not None for p in proofs):
            oldest = min(p for p in proofs if p is not None)
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

