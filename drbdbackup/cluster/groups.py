"""Consistency groups across nodes. Pure.

The group key's claimant (attempt n of cycle k) is the only agent that snapshots: one
`snapshot_create_multi` named after its claim. Each member is then read on a node that holds it,
by an agent that sub-claims the member within that attempt (`<j>`, create-exclusive, same rules
as claims) and, once its data is stored, writes the member's `ready` marker (create-exclusive:
one per member and attempt). The claimant commits the group (`commits/<group>/<k>`) only when
every member is ready; only the members of the committed attempt get generation records. A group
generation is complete when every member named in the commit has its record.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from drbdbackup.cluster.claims import AttemptState, CycleView, IsDead, Step, next_attempt
from drbdbackup.cluster.schema import CommitRecord, MemberCommit


@dataclass(frozen=True)
class ReadyInfo:
    sub: int
    node: str
    generation: str


@dataclass(frozen=True)
class MemberView:
    """One member within one group attempt."""

    member: str
    subs: tuple[AttemptState, ...]
    ready: ReadyInfo | None


class MemberStep(enum.Enum):
    ABANDONED = "abandoned"  # the group attempt is over (released, dead, superseded, committed)
    READY = "ready"
    HELD = "held"
    CLAIMABLE = "claimable"


@dataclass(frozen=True)
class MemberDecision:
    step: MemberStep
    sub: int | None = None
    node: str | None = None


def group_attempt_live(view: CycleView, attempt: int, is_dead: IsDead) -> bool:
    """Whether group attempt `attempt` may still be completed (members should keep working)."""
    if view.floor is not None and view.cycle < view.floor:
        return False
    if view.commit is not None:
        return view.commit.attempt == attempt
    last = view.last
    if last is None or last.attempt != attempt:
        return False
    return not (last.released or last.holder is None or is_dead(last.holder))


def decide_member(member: MemberView, attempt_live: bool, is_dead: IsDead) -> MemberDecision:
    """What may happen next for one member of a group attempt."""
    if member.ready is not None:
        return MemberDecision(MemberStep.READY, member.ready.sub, member.ready.node)
    if not attempt_live:
        return MemberDecision(MemberStep.ABANDONED)
    d = next_attempt(member.subs, is_dead)
    node = d.holder.node if d.holder else None
    if d.step is Step.HELD:
        return MemberDecision(MemberStep.HELD, d.attempt, node)
    return MemberDecision(MemberStep.CLAIMABLE, d.attempt, node)


@dataclass(frozen=True)
class GroupProgress:
    """Readiness of every member of one group attempt."""

    members: tuple[MemberView, ...]

    @property
    def ready(self) -> tuple[str, ...]:
        return tuple(m.member for m in self.members if m.ready is not None)

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(m.member for m in self.members if m.ready is None)

    @property
    def all_ready(self) -> bool:
        return bool(self.members) and not self.pending

    def member_commits(self) -> tuple[MemberCommit, ...]:
        return tuple(MemberCommit(m.member, m.ready.node, m.ready.generation)
                     for m in self.members if m.ready is not None)


def progress(members: Iterable[str], views: Iterable[MemberView]) -> GroupProgress:
    """Progress over exactly `members` (a member without a view is pending)."""
    by_name = {v.member: v for v in views}
    return GroupProgress(tuple(by_name.get(m, MemberView(m, (), None)) for m in sorted(set(members))))


def missing_records(commit: CommitRecord, stored: Callable[[MemberCommit], bool]) -> tuple[str, ...]:
    """Members of a committed group generation without their record: empty = complete."""
    return tuple(m.member for m in commit.members if not stored(m))
