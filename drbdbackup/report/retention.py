"""Pure retention judgement: which generations a policy's keep_* rules require, and whether a
prune removed any of them. No I/O. The rules themselves are prune's (`drbdbackup.repo.retention`:
restic's semantics, `within` measured strictly back from the newest generation), applied as
prune applies a policy's scope: to the generations recorded for that policy.

A prune audit entry lists the generations it kept and removed (`volume/generation` labels) and
the policy each was recorded for (`policies`); the generation id starts with its creation time
(format.md section 9), so the candidates a prune saw and their times are known without the
removed records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from drbdbackup.repo import retention as rules_of_prune

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

    def as_prune_rules(self) -> rules_of_prune.KeepRules:
        """The same rules as prune takes them (counts clamped to what prune accepts)."""
        def count(name: str) -> int:
            return min(max(int(getattr(self, name)), 0), rules_of_prune.MAX_COUNT)
        within = timedelta(seconds=self.within_s) if self.within_s > 0 else None
        return rules_of_prune.KeepRules(last=count("last"), within=within, hourly=count("hourly"),
                                        daily=count("daily"), weekly=count("weekly"),
                                        monthly=count("monthly"), yearly=count("yearly"))


def generation_time(gen: str) -> datetime | None:
    """The creation time encoded in a generation id (`YYYYmmddTHHMMSSffffffZ-…`)."""
    try:
        return datetime.strptime(gen.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def required(candidates: list[tuple[str, datetime]], rules: KeepRules) -> set[str]:
    """Generations the rules keep among (id, created): prune's own decision."""
    return set(rules_of_prune.decide(candidates, rules.as_prune_rules()).kept)


def _split(labels: object) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for label in labels if isinstance(labels, list) else []:
        if isinstance(label, str) and "/" in label:
            vol, gen = label.rsplit("/", 1)
            out.setdefault(vol, []).append(gen)
    return out


def policy_scope(vol: str, gens: list[str], details: dict[str, Any],
                 policy_of: dict[str, str | None] | None = None) -> list[str]:
    """The generations of `vol` that prune's scope for the volume's policy covers: those
    recorded for that policy (the prune entry's `policies`). The policy is `policy_of[vol]`, else
    the one of the volume's newest generation that has one (as the report picks a volume's
    policy). An entry without `policies` (an older writer): every generation of the volume."""
    recorded = details.get("policies")
    if not isinstance(recorded, dict):
        return gens
    of = {g: p if isinstance(p := recorded.get(f"{vol}/{g}"), str) else None for g in gens}
    if policy_of is not None and vol in policy_of:
        policy = policy_of[vol]
    else:
        named = sorted(g for g in gens if of[g] is not None)
        policy = of[named[-1]] if named else None
    return [g for g in gens if of[g] == policy]


def judge_prune(details: dict[str, Any], rules_of: dict[str, KeepRules | None],
                policy_of: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Per volume a prune touched: what it removed, and whether the volume's policy rules,
    applied by prune's own decision to the policy's generations (`policy_scope`), required any
    of it (`verdict` compliant / violation / no-policy); removed generations of other policies
    are listed in `outside_policy`, not judged by these rules. A prune's intent entry (`phase`
    "intent", format.md section 13) is not judged: its final entry is."""
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
            scope = policy_scope(vol, gone + kept.get(vol, []), details, policy_of)
            row["outside_policy"] = sorted(set(gone) - set(scope))
            cands = [(g, t) for g in scope if (t := generation_time(g))]
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
