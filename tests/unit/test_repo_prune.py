"""drbdbackup/repo/prune.py: which generations a retention policy keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drbdbackup.repo.prune import select_keep


def test_select_keep() -> None:
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    gens = [(f"g{i:02d}", t0 + timedelta(hours=12 * i)) for i in range(20)]  # two per day
    assert select_keep(gens, 3) == {"g19", "g18", "g17"}
    daily = select_keep(gens, 1, keep_daily=4)
    assert daily == {"g19", "g18", "g16", "g14"}  # newest of each of the last 4 days
    weekly = select_keep(gens, 0, keep_weekly=2)
    assert len(weekly) == 2 and "g19" in weekly
