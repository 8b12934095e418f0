"""Cycle numbers from schedule slots, on the store's clock. Pure.

The cycle number k of a slot is the slot's start as whole UTC epoch seconds, so every agent that
fires for the same slot uses the same k whatever its own clock says. Agents decide *which* slot is
current from the store's clock (`StoreClock`: the backend's modification time of the agent's own
heartbeat, carried forward on the agent's monotonic clock), so skewed agents agree on k. Safety
never depends on that agreement: a wrong k only makes an agent early or late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class StoreClock:
    """The store's time, from the latest (store time, local monotonic time) sample."""

    def __init__(self) -> None:
        self._sample: tuple[float, float] | None = None

    def sample(self, store_time: float, mono_at: float) -> None:
        """`store_time` (epoch seconds, as the backend reports it) was true at `mono_at`."""
        self._sample = (store_time, mono_at)

    @property
    def synced(self) -> bool:
        return self._sample is not None

    def now(self, mono: float) -> float | None:
        """Store time at local monotonic `mono`, or None before the first sample."""
        if self._sample is None:
            return None
        store_time, at = self._sample
        return store_time + (mono - at)


def cycle_of_slot(slot: datetime) -> int:
    """k for a slot start (timezone-aware)."""
    if slot.tzinfo is None:
        raise ValueError("schedule slots must be timezone-aware")
    return int(slot.timestamp())


def slot_of_cycle(cycle: int) -> datetime:
    return datetime.fromtimestamp(cycle, UTC)


class Schedule(Protocol):
    """Anything that can say which slot is current at a time."""

    def latest_slot(self, now: datetime) -> datetime | None:
        """The latest slot start <= now, or None if the schedule never fired before `now`."""
        ...

    def next_slot(self, now: datetime) -> datetime | None:
        """The first slot start > now."""
        ...


@dataclass(frozen=True)
class PeriodicSlots:
    """Slots every `period_s` seconds from the epoch (plus `offset_s`)."""

    period_s: int
    offset_s: int = 0

    def __post_init__(self) -> None:
        if self.period_s <= 0:
            raise ValueError("period must be positive")

    def latest_slot(self, now: datetime) -> datetime:
        t = int(now.timestamp() // 1)
        start = (t - self.offset_s) // self.period_s * self.period_s + self.offset_s
        return datetime.fromtimestamp(start, UTC)

    def next_slot(self, now: datetime) -> datetime:
        return self.latest_slot(now) + timedelta(seconds=self.period_s)


@dataclass(frozen=True)
class CronSlots:
    """Slots of a cron-like `next_after(t)` (first fire strictly after t, same tzinfo)."""

    next_after: Callable[[datetime], datetime | None]
    max_lookback: timedelta = timedelta(days=366 * 9)

    def latest_slot(self, now: datetime) -> datetime | None:
        window = timedelta(minutes=2)
        while True:
            t = self.next_after(now - window)
            latest = None
            while t is not None and t <= now:
                latest = t
                t = self.next_after(t)
            if latest is not None or window >= self.max_lookback:
                return latest
            window = min(window * 4, self.max_lookback)

    def next_slot(self, now: datetime) -> datetime | None:
        return self.next_after(now)


def current_cycle(schedule: Schedule, store_now: float) -> int | None:
    """k of the slot that is current at store time `store_now` (None: no slot yet)."""
    slot = schedule.latest_slot(datetime.fromtimestamp(store_now, UTC))
    return None if slot is None else cycle_of_slot(slot)


def seconds_to_next(schedule: Schedule, store_now: float) -> float | None:
    """How long until the next slot begins, on the store's clock."""
    slot = schedule.next_slot(datetime.fromtimestamp(store_now, UTC))
    return None if slot is None else max(0.0, slot.timestamp() - store_now)
