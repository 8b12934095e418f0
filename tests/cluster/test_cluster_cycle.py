"""Cycle numbers from schedule slots, and the store clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drbdbackup.cluster.cycle import (
    CronSlots,
    PeriodicSlots,
    StoreClock,
    current_cycle,
    cycle_of_slot,
    seconds_to_next,
    slot_of_cycle,
)
from drbdbackup.service.cron import parse_cron

T0 = 1_800_000_000.0


def test_store_clock_carries_a_sample_forward_on_the_monotonic_clock() -> None:
    c = StoreClock()
    assert c.now(5.0) is None and not c.synced
    c.sample(T0, 100.0)
    assert c.synced and c.now(100.0) == T0 and c.now(160.5) == T0 + 60.5


@given(st.floats(-600, 600, allow_nan=False), st.floats(-600, 600, allow_nan=False),
       st.floats(0, 10**6, allow_nan=False))
def test_skewed_agents_agree_on_k(skew_a: float, skew_b: float, elapsed: float) -> None:
    """Two agents whose wall clocks are minutes apart see the same store time, hence the same k
    (their own clocks never enter; each has its own monotonic origin)."""
    sched = PeriodicSlots(300)
    a, b = StoreClock(), StoreClock()
    a.sample(T0, 50.0 + skew_a)  # the store stamped both heartbeats at T0
    b.sample(T0, 9000.0 + skew_b)
    ka = current_cycle(sched, a.now(50.0 + skew_a + elapsed))  # type: ignore[arg-type]
    kb = current_cycle(sched, b.now(9000.0 + skew_b + elapsed))  # type: ignore[arg-type]
    assert ka == kb


@given(st.integers(60, 86400), st.integers(0, 59), st.floats(0, 10**9, allow_nan=False))
def test_periodic_slots(period: int, offset: int, t: float) -> None:
    s = PeriodicSlots(period, offset)
    now = datetime.fromtimestamp(t, UTC)
    latest = s.latest_slot(now)
    assert latest <= now < latest + timedelta(seconds=period)
    assert (cycle_of_slot(latest) - offset) % period == 0
    assert s.next_slot(now) == latest + timedelta(seconds=period)
    assert slot_of_cycle(cycle_of_slot(latest)) == latest


@pytest.mark.parametrize("expr,now,expected", [
    ("*/15 * * * *", "2026-12-03T10:22:30+00:00", "2026-12-03T10:15:00+00:00"),
    ("0 2 * * *", "2026-12-03T10:22:30+00:00", "2026-12-03T02:00:00+00:00"),
    ("0 2 * * *", "2026-12-03T01:59:59+00:00", "2026-12-02T02:00:00+00:00"),
    ("30 4 1 * *", "2026-12-03T00:00:00+00:00", "2026-12-01T04:30:00+00:00"),
    ("0 0 1 1 *", "2026-12-03T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
])
def test_cron_slots(expr: str, now: str, expected: str) -> None:
    s = CronSlots(parse_cron(expr).next_after)
    assert s.latest_slot(datetime.fromisoformat(now)) == datetime.fromisoformat(expected)


def test_cron_without_past_slot_and_next() -> None:
    never = CronSlots(lambda t: None)
    assert never.latest_slot(datetime.now(UTC)) is None
    assert current_cycle(never, T0) is None and seconds_to_next(never, T0) is None
    s = PeriodicSlots(60)
    assert seconds_to_next(s, T0 + 15) == 45


def test_slots_must_be_aware() -> None:
    with pytest.raises(ValueError):
        cycle_of_slot(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        PeriodicSlots(0)
