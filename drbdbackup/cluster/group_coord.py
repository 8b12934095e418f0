"""Consistency groups across nodes, on top of `Coordinator` (protocol in `groups`).

Claimant (holds the group key's claim): `snapshot_create_multi` with `claim.snapshot` ->
poll `progress(attempt)` until `all_ready` -> `commit_group(claim)` -> the member records are
written (by each member owner after `member_outcome()` says COMMITTED, or by anyone from the
ready markers' payloads via `ready_markers()`).
Member owner (any agent holding a replica of a member): `attempt(group, k)` -> `try_member_claim`
-> read `attempt.snapshot` on its node, store the data -> `member_ready()` (the member's commit)
-> poll `member_outcome()`; release with `release_member()` if it cannot proceed.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from drbdbackup.cluster.claims import Step, decide
from drbdbackup.cluster.coordinator import Claim, Coordinator
from drbdbackup.cluster.errors import Fenced, GroupIncomplete
from drbdbackup.cluster.groups import (
    GroupProgress,
    MemberStep,
    decide_member,
    group_attempt_live,
    progress,
)
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.schema import CommitRecord, MemberClaimRecord, MemberReady, ReleaseRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupAttempt:
    """The group claim a member works under."""

    key: ClusterKey
    cycle: int
    attempt: int
    snapshot: str
    members: tuple[str, ...]
    node: str


@dataclass(frozen=True)
class MemberClaim:
    group: GroupAttempt
    member: str
    sub: int


class MemberOutcome(enum.Enum):
    WAITING = "waiting"  # ready; the group is not committed yet
    COMMITTED = "committed"  # the group commit names this attempt: write the member's record
    ABANDONED = "abandoned"  # the attempt is over without this member's data: discard it


class GroupCoordinator:
    """Group-level operations of one agent."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator
        self.store = coordinator.store
        self.life = coordinator.life

    def attempt(self, group: ClusterKey, cycle: int) -> GroupAttempt | None:
        """The group attempt members should work under (held or committed), if any."""
        d = decide(self.store.cycle_view(group, cycle), self.life.is_dead)
        if d.step not in (Step.HELD, Step.COMMITTED) or d.attempt is None:
            return None
        rec = self.store.read_claim(group, cycle, d.attempt)
        if rec is None:
            return None
        return GroupAttempt(group, cycle, d.attempt, rec.snapshot, rec.members, rec.node)

    def live(self, a: GroupAttempt) -> bool:
        """Whether attempt `a` may still be completed (members keep working for it)."""
        return self._live(a)

    def _live(self, a: GroupAttempt) -> bool:
        return group_attempt_live(self.store.cycle_view(a.key, a.cycle), a.attempt,
                                  self.life.is_dead)

    def try_member_claim(self, a: GroupAttempt, member: str, rank: int) -> MemberClaim | None:
        """Sub-claim `member` of attempt `a` (after rank x d, like `try_claim`)."""
        self.life.check_running()
        if member not in a.members:
            raise ValueError(f"{member} is not a member of {a.key}")
        view = self.store.member_view(a.key, a.cycle, a.attempt, member)
        d = decide_member(view, self._live(a), self.life.is_dead)
        if d.step is MemberStep.HELD and d.sub is not None:
            held = next(s for s in view.subs if s.attempt == d.sub)
            return MemberClaim(a, member, d.sub) if held.holder == self.life.me else None
        if d.step is not MemberStep.CLAIMABLE or d.sub is None:
            return None
        token = ("member", a.key, a.cycle, a.attempt, member, d.sub)
        if not self.c.gate_open(token, rank):
            return None
        rec = MemberClaimRecord(member, d.sub, self.c.instance, self.c.node, self.c.clocks.iso_now())
        if not self.store.create_member_claim(a.key, a.cycle, a.attempt, rec):
            return None
        log.info("sub-claimed member %s of %s cycle %d attempt %d", member, a.key, a.cycle, a.attempt)
        return MemberClaim(a, member, d.sub)

    def member_ready(self, mc: MemberClaim, generation: str, payload: bytes = b"") -> None:
        """The member's commit within the group attempt. Raises Fenced (discard the data)."""
        self.life.check_running()
        a = mc.group
        if not self._live(a):
            raise Fenced(f"{a.key}: group attempt {a.cycle}.{a.attempt} is over")
        rec = MemberReady(mc.member, mc.sub, self.c.instance, self.c.node, generation, payload,
                          self.c.clocks.iso_now())
        if not self.store.create_member_ready(a.key, a.cycle, a.attempt, rec):
            raise Fenced(f"{a.key}: member {mc.member} is already stored in attempt "
                         f"{a.cycle}.{a.attempt}")

    def release_member(self, mc: MemberClaim, reason: str) -> None:
        a = mc.group
        self.store.release_member(a.key, a.cycle, a.attempt, mc.member, mc.sub,
                                  ReleaseRecord(self.c.instance, self.c.node, reason,
                                                self.c.clocks.iso_now()))

    def progress(self, a: GroupAttempt) -> GroupProgress:
        return progress(a.members, (self.store.member_view(a.key, a.cycle, a.attempt, m)
                                    for m in a.members))

    def commit_group(self, claim: Claim) -> CommitRecord:
        """Fence the group generation once every member is ready. Raises GroupIncomplete
        (poll again) or Fenced (abort)."""
        a = GroupAttempt(claim.key, claim.cycle, claim.attempt, claim.snapshot, claim.members,
                         claim.node)
        prog = self.progress(a)
        if not prog.all_ready:
            raise GroupIncomplete(f"{claim.key}: members not stored yet: {', '.join(prog.pending)}")
        return self.c.commit(claim, None, prog.member_commits())

    def member_outcome(self, mc: MemberClaim) -> MemberOutcome:
        a = mc.group
        commit = self.store.read_commit(a.key, a.cycle)
        if commit is not None:
            ok = commit.attempt == a.attempt and any(m.member == mc.member for m in commit.members)
            return MemberOutcome.COMMITTED if ok else MemberOutcome.ABANDONED
        return MemberOutcome.WAITING if self._live(a) else MemberOutcome.ABANDONED

    def ready_markers(self, commit: CommitRecord) -> tuple[MemberReady, ...]:
        """The ready markers (with payloads) of a committed group generation's members."""
        out = []
        for m in commit.members:
            r = self.store.read_member_ready(commit.key, commit.cycle, commit.attempt, m.member)
            if r is not None:
                out.append(r)
        return tuple(out)
