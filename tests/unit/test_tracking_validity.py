"""drbdbackup/tracking/validity.py: every rule that makes a parent unusable for an incremental."""

from __future__ import annotations

import pytest

from drbdbackup.tracking.validity import Lineage, judge


@pytest.mark.parametrize(
    "change,code",
    [
        ({}, "valid"),
        ({"parent_exists": False}, "no-parent"),
        ({"forced_full": True}, "forced-full"),
        ({"parent_intact": False}, "parent-damaged"),
        ({"size_now": 2}, "size-changed"),
        ({"chunk_size_now": 2}, "chunk-size-changed"),
        ({"resource_uuid_matches": False}, "resource-recreated"),
        ({"parent_snapshot_exists": False}, "parent-snapshot-missing"),
        ({"parent_snapshot_uuid_matches": False}, "parent-snapshot-replaced"),
        ({"same_placement": False, "placement_change": "node a -> b"}, "storage-migrated"),
        ({"replica_up_to_date": False}, "replica-not-uptodate"),
    ],
)
def test_validity_rules(change: dict, code: str) -> None:
    base = {"parent_exists": True, "size_now": 1, "size_parent": 1, "chunk_size_now": 1, "chunk_size_parent": 1}
    v = judge(Lineage(**{**base, **change}))
    assert v.code == code
    assert v.usable == (code == "valid")
    assert (v.reason is None) == (code == "valid")
