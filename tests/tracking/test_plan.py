"""The one place that decides mode, tracker and reasons: exhaustive over its inputs."""

from __future__ import annotations

import itertools

import pytest

from drbdbackup.tracking.plan import (
    BackupPlan,
    Mode,
    NativeMap,
    NativeOffer,
    Tracker,
    TrackerUnavailable,
    after_spot_check,
    parse_tracker,
    periodic_checksum_due,
    plan_backup,
)
from drbdbackup.tracking.validity import Lineage

VALID = Lineage(parent_exists=True, size_now=10, size_parent=10, chunk_size_now=1, chunk_size_parent=1)
FIRST = Lineage(parent_exists=False)
MOVED = Lineage(parent_exists=True, size_now=10, size_parent=10, chunk_size_now=1,
                chunk_size_parent=1, same_placement=False, placement_change="node a -> b")
REFLINK = NativeMap(Tracker.REFLINK, frozenset({1, 2}))
OFFERS = {
    "none": None,
    "map": NativeOffer(REFLINK),
    "unavailable": NativeOffer(unavailable="FIEMAP unsupported: EOPNOTSUPP"),
}


@pytest.mark.parametrize("tracker,lineage,offer,streak", list(itertools.product(
    list(Tracker), [VALID, FIRST, MOVED], list(OFFERS), [0, 13])))
def test_every_combination_gives_a_consistent_plan(tracker: Tracker, lineage: Lineage, offer: str,
                                                   streak: int) -> None:
    try:
        plan = plan_backup(tracker, lineage, OFFERS[offer], periodic_streak=streak, checksum_every=14)
    except TrackerUnavailable:
        # only an explicit native tracker on a source without native tracking, with a usable lineage
        assert tracker.native and offer == "none" and lineage is VALID
        return
    assert isinstance(plan, BackupPlan) and plan.tracker_reason
    if plan.mode is Mode.FULL:
        assert plan.tracker is Tracker.FULL and plan.positions is None
    else:
        assert lineage is VALID and tracker is not Tracker.FULL
        assert (plan.positions is not None) == plan.tracker.native
    if lineage is MOVED or tracker is Tracker.FULL:
        assert plan.mode is Mode.FULL
    if lineage is MOVED and tracker is not Tracker.FULL:  # a requested full read says so instead
        assert plan.fallback_reason and "node a -> b" in plan.fallback_reason
    if lineage is FIRST or (tracker is Tracker.FULL and lineage is VALID):
        assert plan.fallback_reason is None  # nothing fell back: a first or a requested full read


def test_a_native_map_is_used_when_the_lineage_is_valid() -> None:
    plan = plan_backup(Tracker.AUTO, VALID, NativeOffer(REFLINK))
    assert (plan.mode, plan.tracker, plan.positions) == (Mode.INCREMENTAL, Tracker.REFLINK, {1, 2})
    assert plan.map_validity == "valid" and plan.fallback_reason is None


def test_an_unavailable_native_map_says_why() -> None:
    plan = plan_backup(Tracker.AUTO, VALID, OFFERS["unavailable"])
    assert plan.tracker is Tracker.CHECKSUM and "FIEMAP unsupported" in plan.tracker_reason


def test_a_requested_native_tracker_that_the_storage_cannot_give_falls_back_with_a_reason() -> None:
    plan = plan_backup(Tracker.THIN_DELTA, VALID, OFFERS["unavailable"])
    assert plan.tracker is Tracker.CHECKSUM and "native map unavailable" in plan.tracker_reason


def test_periodic_checksum_read_bounds_native_streaks() -> None:
    assert not periodic_checksum_due(12, 14) and periodic_checksum_due(13, 14)
    assert not periodic_checksum_due(1000, 0)  # 0 = never
    plan = plan_backup(Tracker.AUTO, VALID, NativeOffer(REFLINK), periodic_streak=13, checksum_every=14)
    assert plan.tracker is Tracker.CHECKSUM and "periodic checksum read" in (plan.fallback_reason or "")


def test_a_failed_spot_check_turns_the_plan_into_a_full_read() -> None:
    plan = plan_backup(Tracker.AUTO, VALID, NativeOffer(REFLINK))
    assert after_spot_check(plan, [], 16) is plan
    full = after_spot_check(plan, [7, 9], 16)
    assert (full.mode, full.tracker, full.map_validity) == (Mode.FULL, Tracker.FULL, "spot-check-failed")
    assert "chunk 7" in (full.fallback_reason or "") and "2 of 16" in full.tracker_reason


def test_parse_tracker_names_the_choices() -> None:
    assert parse_tracker("thin-delta") is Tracker.THIN_DELTA
    with pytest.raises(ValueError, match="use one of auto, checksum, reflink, thin-delta, full"):
        parse_tracker("zfs")
