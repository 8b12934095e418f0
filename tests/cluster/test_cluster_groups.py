"""Consistency groups: pure decisions, then the whole flow on a local directory."""

from __future__ import annotations

import pytest

from drbdbackup.cluster.claims import AttemptState, CommitInfo, CycleView, Holder
from drbdbackup.cluster.errors import Fenced, GroupIncomplete
from drbdbackup.cluster.group_coord import GroupCoordinator, MemberOutcome
from drbdbackup.cluster.groups import (
    MemberStep,
    MemberView,
    ReadyInfo,
    decide_member,
    group_attempt_live,
    missing_records,
    progress,
)
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.schema import CommitRecord, MemberCommit

from .helpers import FAST, ManualClock, MtimeLocalBackend, coordinator

A, B = Holder("a", "ia"), Holder("b", "ib")
G = ClusterKey.group("cg-db")
K = 1_800_000_000


def never(_h: Holder) -> bool:
    return False


def test_group_attempt_liveness() -> None:
    live = CycleView(K, (AttemptState(0, A, "s", False),), None)
    assert group_attempt_live(live, 0, never)
    assert not group_attempt_live(live, 0, lambda h: True)
    assert not group_attempt_live(live, 1, never)
    superseded = CycleView(K, (AttemptState(0, A, "s", True), AttemptState(1, B, "t", False)), None)
    assert not group_attempt_live(superseded, 0, never) and group_attempt_live(superseded, 1, never)
    committed = CycleView(K, live.attempts, CommitInfo(0, A))
    assert group_attempt_live(committed, 0, lambda h: True)  # committed: finish it regardless
    assert not group_attempt_live(CycleView(K, live.attempts, None, floor=K + 1), 0, never)


def test_member_decisions() -> None:
    empty = MemberView("r1", (), None)
    assert decide_member(empty, True, never).step is MemberStep.CLAIMABLE
    assert decide_member(empty, False, never).step is MemberStep.ABANDONED
    held = MemberView("r1", (AttemptState(0, A, None, False),), None)
    assert decide_member(held, True, never).step is MemberStep.HELD
    d = decide_member(held, True, lambda h: True)
    assert (d.step, d.sub) == (MemberStep.CLAIMABLE, 1)
    ready = MemberView("r1", held.subs, ReadyInfo(0, "a", "gen"))
    assert decide_member(ready, False, never).step is MemberStep.READY


def test_progress_and_completeness() -> None:
    p = progress(["r2", "r1"], [MemberView("r1", (), ReadyInfo(0, "a", "g1"))])
    assert p.ready == ("r1",) and p.pending == ("r2",) and not p.all_ready
    assert p.member_commits() == (MemberCommit("r1", "a", "g1"),)
    assert not progress([], []).all_ready
    commit = CommitRecord(G, K, 0, "i", "a", "s", None, "t",
                          (MemberCommit("r1", "a", "g1"), MemberCommit("r2", "b", "g2")))
    assert missing_records(commit, lambda m: m.member == "r1") == ("r2",)


def trio(local: MtimeLocalBackend):
    clocks = {n: ManualClock() for n in "abc"}
    coords = {n: coordinator(local, n, clocks[n]) for n in "abc"}
    for c in coords.values():
        c.start()
    return coords, clocks, {n: GroupCoordinator(c) for n, c in coords.items()}


def test_cross_node_group_flow(local: MtimeLocalBackend) -> None:
    coords, _, groups = trio(local)
    claim = coords["a"].try_claim(G, K, 0, members=("r1", "r2"))
    assert claim is not None
    attempt = groups["b"].attempt(G, K)
    assert attempt is not None and attempt.snapshot == claim.snapshot and attempt.members == ("r1", "r2")
    m1 = groups["b"].try_member_claim(attempt, "r1", 0)
    m2 = groups["c"].try_member_claim(attempt, "r2", 0)
    assert m1 is not None and m2 is not None
    assert groups["c"].try_member_claim(attempt, "r1", 0) is None  # held by b
    with pytest.raises(ValueError):
        groups["c"].try_member_claim(attempt, "r9", 0)
    groups["b"].member_ready(m1, "gen-r1", b"record-1")
    with pytest.raises(GroupIncomplete, match="r2"):
        groups["a"].commit_group(claim)
    assert groups["b"].member_outcome(m1) is MemberOutcome.WAITING
    groups["c"].member_ready(m2, "gen-r2", b"record-2")
    with pytest.raises(Fenced):
        groups["c"].member_ready(m2, "again")  # one ready marker per member and attempt
    commit = groups["a"].commit_group(claim)
    assert {(m.member, m.node, m.generation) for m in commit.members} == {
        ("r1", "b", "gen-r1"), ("r2", "c", "gen-r2")}
    assert groups["b"].member_outcome(m1) is MemberOutcome.COMMITTED
    assert sorted(r.payload for r in groups["c"].ready_markers(commit)) == [b"record-1", b"record-2"]


def test_member_owner_dies_another_replica_takes_the_member(local: MtimeLocalBackend) -> None:
    coords, clocks, groups = trio(local)
    claim = coords["a"].try_claim(G, K, 0, members=("r1",))
    attempt = groups["c"].attempt(G, K)
    assert claim is not None and attempt is not None
    assert groups["c"].try_member_claim(attempt, "r1", 0) is not None  # then c dies
    for _ in range(6):
        for n in "ab":
            clocks[n].advance(FAST.heartbeat_s)
            coords[n].heartbeat()
    m = groups["b"].try_member_claim(attempt, "r1", 0)
    assert m is not None and m.sub == 1
    groups["b"].member_ready(m, "gen")
    assert groups["a"].commit_group(claim).members[0].node == "b"


def test_group_claimant_dies_members_abandon_and_a_new_attempt_starts(local: MtimeLocalBackend) -> None:
    coords, clocks, groups = trio(local)
    claim = coords["a"].try_claim(G, K, 0, members=("r1", "r2"))
    attempt = groups["b"].attempt(G, K)
    assert claim is not None and attempt is not None
    m1 = groups["b"].try_member_claim(attempt, "r1", 0)
    assert m1 is not None
    for _ in range(6):  # a dies
        for n in "bc":
            clocks[n].advance(FAST.heartbeat_s)
            coords[n].heartbeat()
    assert groups["b"].member_outcome(m1) is MemberOutcome.ABANDONED
    with pytest.raises(Fenced, match="over"):
        groups["b"].member_ready(m1, "gen")
    assert groups["c"].attempt(G, K) is None  # nobody holds the group now
    again = coords["c"].try_claim(G, K, 0, members=("r1", "r2"))
    assert again is not None and again.attempt == 1 and again.snapshot != claim.snapshot
    a1 = groups["b"].attempt(G, K)
    assert a1 is not None and a1.attempt == 1
    n1, n2 = groups["b"].try_member_claim(a1, "r1", 0), groups["c"].try_member_claim(a1, "r2", 0)
    assert n1 is not None and n2 is not None
    groups["b"].member_ready(n1, "g1")
    groups["c"].member_ready(n2, "g2")
    commit = groups["c"].commit_group(again)
    assert commit.attempt == 1
    assert groups["b"].member_outcome(m1) is MemberOutcome.ABANDONED
    with pytest.raises(Fenced):
        coords["a"].commit(claim, None)  # the dead claimant resumes: fenced


def test_member_claims_wait_their_rank(local: MtimeLocalBackend) -> None:
    coords, clocks, groups = trio(local)
    assert coords["a"].try_claim(G, K, 0, members=("r1",)) is not None
    attempt = groups["b"].attempt(G, K)
    assert attempt is not None
    assert groups["b"].try_member_claim(attempt, "r1", 1) is None
    clocks["b"].advance(FAST.rank_step_s)
    m = groups["b"].try_member_claim(attempt, "r1", 1)
    assert m is not None and groups["b"].try_member_claim(attempt, "r1", 1) == m
    groups["b"].release_member(m, "read error")
    m2 = groups["c"].try_member_claim(attempt, "r1", 0)
    assert m2 is not None and m2.sub == 1
