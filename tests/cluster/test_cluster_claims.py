"""The claim state machine, the pre-commit check, prune plans, snapshot dispositions (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drbdbackup.cluster.claims import (
    AttemptState,
    CommitInfo,
    CycleView,
    Decision,
    Disposition,
    Holder,
    Step,
    commit_refusal,
    decide,
    failed_nodes,
    next_attempt,
    prune_plan,
    snapshot_disposition,
)
from drbdbackup.cluster.names import parse_snapshot, snapshot_name

A, B, C = Holder("a", "ia"), Holder("b", "ib"), Holder("c", "ic")
REPO = "0123abcd" * 8


def never(_h: Holder) -> bool:
    return False


def always(_h: Holder) -> bool:
    return True


def att(n: int, holder: Holder | None, released: bool = False, snap: str | None = None) -> AttemptState:
    return AttemptState(n, holder, snap, released)


def test_first_attempt_is_claimable() -> None:
    assert decide(CycleView(7, (), None), never) == Decision(Step.CLAIMABLE, 0)


def test_held_released_dead() -> None:
    held = CycleView(7, (att(0, A),), None)
    assert decide(held, never) == Decision(Step.HELD, 0, A)
    assert decide(held, always) == Decision(Step.CLAIMABLE, 1, A)
    rel = CycleView(7, (att(0, A, released=True),), None)
    assert decide(rel, never) == Decision(Step.CLAIMABLE, 1, A)
    unreadable = CycleView(7, (att(0, None),), None)
    assert decide(unreadable, never).step is Step.CLAIMABLE


def test_only_the_highest_attempt_counts() -> None:
    view = CycleView(7, (att(0, A, released=True), att(1, B), att(2, C)), None)
    d = decide(view, lambda h: h != C)
    assert d == Decision(Step.HELD, 2, C)


def test_commit_and_floor_end_the_cycle() -> None:
    view = CycleView(7, (att(0, A), att(1, B)), CommitInfo(0, A))
    assert decide(view, always).step is Step.COMMITTED
    assert decide(CycleView(7, (), None, floor=8), never).step is Step.PRUNED
    assert decide(CycleView(8, (), None, floor=8), never).step is Step.CLAIMABLE


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=6), st.booleans())
def test_next_attempt_is_one_past_the_highest(flags: list[tuple[bool, bool]], dead: bool) -> None:
    attempts = [att(i, Holder(f"n{i}", f"i{i}"), released=r) for i, (r, _) in enumerate(flags)]
    d = next_attempt(attempts, lambda h: dead)
    if not attempts:
        assert d == Decision(Step.CLAIMABLE, 0)
    elif attempts[-1].released or dead:
        assert d.step is Step.CLAIMABLE and d.attempt == len(attempts)
    else:
        assert d.step is Step.HELD and d.attempt == len(attempts) - 1


def test_failed_nodes() -> None:
    attempts = (att(0, A, released=True), att(1, B), att(2, A), att(3, None, released=True))
    assert failed_nodes(attempts, lambda h: h == A) == ("a", "a")


def test_commit_refusals() -> None:
    assert commit_refusal(CycleView(7, (att(0, A),), None), 0) is None
    assert "committed by b" in commit_refusal(CycleView(7, (att(0, A), att(1, B)), CommitInfo(1, B)), 0)
    assert "taken over by b" in commit_refusal(CycleView(7, (att(0, A), att(1, B)), None), 0)
    assert "released" in commit_refusal(CycleView(7, (att(0, A, released=True),), None), 0)
    assert "pruned" in commit_refusal(CycleView(7, (att(0, A),), None, floor=9), 0)
    # a superseding attempt never refuses the newest one
    assert commit_refusal(CycleView(7, (att(0, A), att(1, B)), None), 1) is None


# --- prune --------------------------------------------------------------------------------

@given(st.sets(st.integers(0, 50), max_size=20), st.sets(st.integers(0, 50), max_size=20),
       st.integers(1, 6), st.one_of(st.none(), st.integers(0, 50)),
       st.one_of(st.none(), st.integers(0, 50)))
def test_prune_plan_properties(cycles: set[int], committed: set[int], keep: int,
                               current: int | None, old_floor: int | None) -> None:
    committed &= cycles
    plan = prune_plan(cycles, committed, keep, current, old_floor)
    kept = cycles - set(plan.remove)
    assert set(sorted(cycles)[-keep:]) <= kept  # the newest `keep` stay
    if committed:
        assert max(committed) in kept  # the newest committed cycle stays (next map's base)
    if current is not None and current in cycles:
        assert current in kept
    if plan.remove:
        assert max(plan.remove) < min(kept)  # a floor, not holes
    if plan.floor is not None:
        assert plan.remove and max(plan.remove) < plan.floor <= min(kept)
        assert old_floor is None or plan.floor > old_floor  # floors only rise


def test_prune_plan_examples() -> None:
    assert prune_plan([], [], 3).remove == ()
    plan = prune_plan([1, 2, 3, 4, 5], [1, 4], 2)
    assert plan.remove == (1, 2, 3) and plan.floor == 4
    plan = prune_plan([1, 2, 3, 4, 5], [2], 2)  # the last commit is old: keep it and after
    assert plan.remove == (1,) and plan.floor == 2
    assert prune_plan([1, 2, 3, 4, 5], [4], 2, current=2).remove == (1,)
    assert prune_plan([1, 2, 3, 4, 5], [4], 2, old_floor=7).floor is None
    with pytest.raises(ValueError):
        prune_plan([1], [], 0)


# --- snapshots ----------------------------------------------------------------------------

def _snap(k: int, n: int) -> tuple[str, object]:
    name = snapshot_name(REPO, k, n)
    return name, parse_snapshot(name)


def test_snapshot_dispositions() -> None:
    name, tag = _snap(7, 0)
    live = CycleView(7, (att(0, A, snap=name),), None)
    assert snapshot_disposition(tag, name, "ffffffff", live, None, never) is Disposition.FOREIGN
    assert snapshot_disposition(tag, name, REPO, live, None, never) is Disposition.KEEP_ACTIVE
    assert snapshot_disposition(tag, name, REPO, live, None, always) is Disposition.DELETE
    released = CycleView(7, (att(0, A, released=True, snap=name),), None)
    assert snapshot_disposition(tag, name, REPO, released, None, never) is Disposition.DELETE
    committed = CycleView(7, (att(0, A, snap=name),), CommitInfo(0, A))
    assert snapshot_disposition(tag, name, REPO, committed, 7, always) is Disposition.KEEP_BASE
    assert snapshot_disposition(tag, name, REPO, committed, 9, never) is Disposition.DELETE
    fenced = CycleView(7, (att(0, A, snap=name), att(1, B)), CommitInfo(1, B))
    assert snapshot_disposition(tag, name, REPO, fenced, 7, never) is Disposition.DELETE
    other_nonce = CycleView(7, (att(0, A, snap=snapshot_name(REPO, 7, 0)),), None)
    assert snapshot_disposition(tag, name, REPO, other_nonce, None, never) is Disposition.DELETE
    # no claim found: pruned (delete if something newer is committed) or not visible yet (keep)
    assert snapshot_disposition(tag, name, REPO, None, 9, never) is Disposition.DELETE
    assert snapshot_disposition(tag, name, REPO, CycleView(7, (), None), 7, never) is Disposition.UNKNOWN
    # an uncommitted live claim of an older cycle may still commit: keep
    assert snapshot_disposition(tag, name, REPO, live, 9, never) is Disposition.KEEP_ACTIVE
