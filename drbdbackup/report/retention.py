"""Pure retention judgement: which generations a policy's keep_* rules require, and whether a
prune removed any of them. No I/O.

A prune audit entry lists the generations it kept and removed (`volume/generation` labels); the
generation id starts with its creation time (format.md section 9), so the candidates a prune saw
and their times are known without the removed records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_BUCKETS = (("hourly", "%Y-%m-%dT%H"), ("daily", "%Y-%m-%d"), ("weekly", "%G-W%V"), ("monthly", "%Y-%m"), ("yearly", "%Y"))

_NAMES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class KeepRules:
    """A policy's keep_* rules (0 = rule unused; within_s 0 = unused)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within_s: int = 0

    @property
    def any(self) -> bool:
        return any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly, self.within_s))

    def describe(self) -> str:
        parts = [f"keep_{k}={getattr(self, k)}" for k in _NAMES if getattr(self, k)]
        if self.within_s:
            parts.append(f"keep_within={self.within_s}s")
        return ", ".join(parts) or "no keep rules"

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in (*_NAMES, "within_s")}


def generation_time(gen: str) -> datetime | None:
    """The creation time encoded in a generation id (`YYYYmmddTHHMMSSffffffZ-…`)."""
    try:
        return datetime.strptime(gen.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def required(candidates: list[tuple[str, datetime]], rules: KeepRules) -> set[str]:
    """Generations the rules keep among (id, created), restic-style: newest first per bucket."""
    ordered = sorted(candidates, key=lambda g: (g[1], g[0]), reverse=True)
    keep = {g for g, _t in ordered[:rules.last]}
    if rules.within_s and ordered:
        newest = ordered[0][1]
        keep |= {g for g, t in ordered if newest - t <= timedelta(seconds=rules.within_s)}
    for name, fmt in _BUCKETS:
        count = getattr(rules, name)
        seen: set[str] = set()
        for gen, ts in ordered:
            if len(seen) >= count:
                break
            if ts.strftime(fmt) not in seen:
                seen.add(ts.strftime(fmt))
                keep.add(gen)
    return keep


def _split(labels: object) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for label in labels if isinstance(labels, list) else []:
        if isinstance(label, str) and "/" in label:
            vol, gen = label.rsplit("/", 1)
            out.setdefault(vol, []).append(gen)
    return out


def judge_prune(details: dict[str, Any], rules_of: dict[str, KeepRules | None]) -> list[dict[str, Any]]:
    """Per volume a prune touched: what it removed, and whether the volume's policy rules
    required any of it (`verdict` compliant / violation / no-policy). A prune's intent entry
    (`phase` "intent", format.md section 13) is not judged: its final entry is."""
    if details.get("phase") == "intent":
        return []
    kept, removed = _split(details.get("kept_generations")), _split(details.get("removed_generations"))
    out = []
    for vol in sorted(set(kept) | set(removed)):
        gone = sorted(removed.get(vol, []))
        rules = rules_of.get(vol)
        said = details.get("removed_because")
        because: dict[str, Any] = said if isinstance(said, dict) else {}
        row: dict[str, Any] = {"volume_id": vol, "removed": gone, "kept": len(kept.get(vol, [])),
                               "rules": rules.describe() if rules else None,
                               "prune_said": {g: str(because.get(f"{vol}/{g}")) for g in gone
                                              if because.get(f"{vol}/{g}")}}
        if rules is None or not rules.any:
            row.update(verdict="no-policy", why="no keep rules known for this volume: not judged")
        else:
            cands = [(g, t) for g in gone + kept.get(vol, []) if (t := generation_time(g))]
            wrongly = sorted(required(cands, rules) & set(gone))
            row.update(verdict="violation" if wrongly else "compliant", required_but_removed=wrongly,
                       why=(f"removed {len(wrongly)} generation(s) that {rules.describe()} keep"
                            if wrongly else f"every removed generation is outside {rules.describe()}"))
        out.append(row)
    return out


def under_retained(present: list[tuple[str, datetime]], history: list[tuple[str, datetime]],
                   rules: KeepRules) -> list[str]:
    """Generations the rules require among every generation ever made (`history`) that are no
    longer `present`: retention that was lost by something other than a compliant prune."""
    have = {g for g, _t in present}
    return sorted(g for g in required(history, rules) if g not in have)
