"""Which policy protects which LINSTOR resource (pure; evaluated every cycle).

A policy selects resources by explicit name, resource group, name pattern and property match,
minus `exclude` patterns. The platforms' own tooling overrides every selection with properties on
a resource definition or its resource group:

- `Aux/drbdbackup/exclude = true`  -> protected by no policy (wins over everything)
- `Aux/drbdbackup/policy = NAME`   -> protected by policy NAME only

Two policies selecting one resource: the first in file order wins; the conflict is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from drbdbackup.errors import UsageError

PROP_POLICY = "Aux/drbdbackup/policy"
PROP_EXCLUDE = "Aux/drbdbackup/exclude"
TRUE_WORDS = ("true", "yes", "1", "on")


@dataclass(frozen=True)
class ResourceView:
    """A resource definition as selection sees it: name, group, effective properties
    (the group's properties overlaid by the definition's own)."""

    name: str
    group: str | None = None
    props: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectionRule:
    """A policy's selection terms (all optional; a policy with none selects nothing)."""

    policy: str
    resources: tuple[str, ...] = ()
    resource_groups: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # fnmatch patterns
    match: Mapping[str, str] = field(default_factory=dict)  # all must equal
    exclude: tuple[str, ...] = ()  # fnmatch patterns

    @property
    def selects_anything(self) -> bool:
        return bool(self.resources or self.resource_groups or self.names or self.match)


@dataclass(frozen=True)
class Chosen:
    """A resource a policy protects, and why."""

    resource: str
    policy: str
    reason: str


@dataclass(frozen=True)
class Unprotected:
    resource: str
    reason: str


@dataclass
class Selection:
    """The result of one planning pass."""

    chosen: dict[str, list[Chosen]] = field(default_factory=dict)  # policy -> resources
    unprotected: list[Unprotected] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # one line each
    warnings: list[str] = field(default_factory=list)

    def policy_of(self, resource: str) -> str | None:
        for policy, items in self.chosen.items():
            if any(c.resource == resource for c in items):
                return policy
        return None


def _why(rule: SelectionRule, r: ResourceView) -> str | None:
    """Why `rule` selects `r`, or None."""
    if any(fnmatchcase(r.name, pat) for pat in rule.exclude):
        return None
    if rule.match and any(r.props.get(k) != v for k, v in rule.match.items()):
        return None
    match_text = ", ".join(f"{k}={v}" for k, v in sorted(rule.match.items()))
    if r.name in rule.resources:
        why = "named in resources"
    elif r.group is not None and r.group in rule.resource_groups:
        why = f"spawned from resource group {r.group}"
    elif any(fnmatchcase(r.name, pat) for pat in rule.names):
        why = f"name matches {next(p for p in rule.names if fnmatchcase(r.name, p))}"
    elif rule.match and not (rule.resources or rule.resource_groups or rule.names):
        why = f"properties match {match_text}"
    else:
        return None
    if rule.match and not why.startswith("properties"):
        why += f" and properties match {match_text}"
    return why


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE_WORDS


def select(resources: list[ResourceView], rules: list[SelectionRule],
           known_groups: set[str] | None = None) -> Selection:
    """Assign every resource to at most one policy; list the rest as unprotected, with reasons."""
    sel = Selection(chosen={r.policy: [] for r in rules})
    names = {r.policy for r in rules}
    for rule in rules:
        for g in rule.resource_groups:
            if known_groups is not None and g not in known_groups:
                sel.warnings.append(f"policy {rule.policy}: resource group {g} does not exist")
    for res in sorted(resources, key=lambda r: r.name):
        if _flag(res.props.get(PROP_EXCLUDE)):
            tagged = res.props.get(PROP_POLICY)
            extra = f" (also tagged {PROP_POLICY}={tagged}: exclude wins)" if tagged else ""
            sel.unprotected.append(Unprotected(res.name, f"{PROP_EXCLUDE}=true{extra}"))
            continue
        opted = res.props.get(PROP_POLICY)
        if opted:
            if opted in names:
                sel.chosen[opted].append(Chosen(res.name, opted, f"{PROP_POLICY}={opted}"))
            else:
                sel.unprotected.append(Unprotected(res.name, f"{PROP_POLICY}={opted} names no policy"))
            continue
        hits = [(rule.policy, why) for rule in rules if (why := _why(rule, res))]
        if not hits:
            sel.unprotected.append(Unprotected(res.name, "no policy selects it"))
            continue
        policy, why = hits[0]
        sel.chosen[policy].append(Chosen(res.name, policy, why))
        if len(hits) > 1:
            others = ", ".join(p for p, _ in hits[1:])
            sel.conflicts.append(f"resource {res.name} is selected by {policy} and {others}: "
                                 f"{policy} wins (first in file order)")
    for rule in rules:
        if rule.selects_anything and not sel.chosen[rule.policy]:
            sel.warnings.append(f"policy {rule.policy} selects no resource")
    return sel


def group_members(resources: list[ResourceView], group: str, known_groups: set[str]
                  ) -> tuple[list[str], list[Unprotected]]:
    """`backup --resource-group`: the group's resources, minus those tagged exclude."""
    if group not in known_groups:
        raise UsageError(f"resource group {group} does not exist; groups are: "
                         f"{', '.join(sorted(known_groups)) or '(none)'}")
    members, skipped = [], []
    for r in sorted(resources, key=lambda r: r.name):
        if r.group != group:
            continue
        if _flag(r.props.get(PROP_EXCLUDE)):
            skipped.append(Unprotected(r.name, f"{PROP_EXCLUDE}=true"))
        else:
            members.append(r.name)
    return members, skipped


def all_resources(resources: list[ResourceView]) -> tuple[list[str], list[Unprotected]]:
    """`backup --all`: every resource, minus those tagged exclude."""
    members, skipped = [], []
    for r in sorted(resources, key=lambda r: r.name):
        if _flag(r.props.get(PROP_EXCLUDE)):
            skipped.append(Unprotected(r.name, f"{PROP_EXCLUDE}=true"))
        else:
            members.append(r.name)
    return members, skipped
