"""Liveness on the observer's monotonic clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drbdbackup.cluster.liveness import LivenessTracker

L = 10.0

# steps: (time advance, heartbeat value the observer reads: None = absent, else (instance, seq))
STEPS = st.lists(st.tuples(st.floats(0, 7, allow_nan=False),
                           st.one_of(st.none(), st.tuples(st.sampled_from("ab"),
                                                          st.integers(0, 3)))),
                 min_size=1, max_size=40)


@given(STEPS, st.floats(0, 30, allow_nan=False))
def test_alive_iff_changed_within_L(steps: list, tail: float) -> None:
    tr = LivenessTracker(L)
    t, last_value, last_change = 0.0, object(), None
    for dt, value in steps:
        t += dt
        inst, seq = value if value else (None, -1)
        tr.observe("n", inst, seq, t)
        if (inst, seq) != last_value:
            last_value, last_change = (inst, seq), t
    t += tail
    expected_alive = last_value[0] is not None and t - last_change < L
    assert tr.node_alive("n", t) == expected_alive
    assert ("n" in tr.dead_nodes(t)) == (not expected_alive)
    if last_value[0] is not None:
        assert tr.instance_dead("n", last_value[0], t) == (t - last_change >= L)
        other = "b" if last_value[0] == "a" else "a"
        assert tr.instance_dead("n", other, t)  # replaced: dead at once


def test_a_fresh_observer_waits_L_before_declaring_anyone_dead() -> None:
    tr = LivenessTracker(L)
    tr.observe("n", "a", 7, 100.0)  # seq unchanged since long before: the observer cannot know
    assert tr.node_alive("n", 109.9)
    assert not tr.node_alive("n", 110.0)


def test_changes_keep_an_agent_alive_forever() -> None:
    tr = LivenessTracker(L)
    for i in range(100):
        tr.observe("n", "a", i, i * 9.0)
        assert tr.node_alive("n", i * 9.0 + 9.5)


def test_absent_and_unknown_nodes() -> None:
    tr = LivenessTracker(L)
    assert not tr.instance_dead("x", "i", 0.0)  # unknown: not (yet) dead
    tr.note("x", 0.0)
    assert not tr.instance_dead("x", "i", 9.0) and tr.instance_dead("x", "i", 10.0)
    tr.observe("n", "a", 1, 0.0)
    tr.observe_absent("n", 5.0)  # heartbeat object vanished: counts from there
    assert not tr.node_alive("n", 6.0)
    assert not tr.instance_dead("n", "a", 14.0) and tr.instance_dead("n", "a", 15.0)


def test_time_going_backwards_never_revives() -> None:
    tr = LivenessTracker(L)
    tr.observe("n", "a", 1, 100.0)
    tr.observe("n", "a", 2, 50.0)  # a misordered observation
    assert not tr.node_alive("n", 110.0)


def test_views_and_validation() -> None:
    tr = LivenessTracker(L)
    tr.observe("b", "i", 3, 0.0)
    tr.observe("a", "j", 1, 0.0)
    views = tr.views(4.0)
    assert [v.node for v in views] == ["a", "b"] and views[0].unchanged_for == 4.0
    with pytest.raises(ValueError):
        LivenessTracker(0)
