"""drbdbackup/tracking/changemap.py: byte ranges <-> chunk positions, changed positions."""

from __future__ import annotations

from drbdbackup.tracking.changemap import (
    changed_positions,
    positions_for_ranges,
    ranges_for_positions,
)


def test_changemap_functions() -> None:
    cs, size = 1 << 20, (10 << 20) + 5
    assert positions_for_ranges([(0, 1), ((2 << 20) - 1, 2), (size + 10, 5)], cs, size) == {0, 1, 2}
    assert ranges_for_positions([0, 1, 3, 10], cs, size) == [(0, 2 << 20), (3 << 20, cs), (10 << 20, 5)]
    a = [b"a", b"b", b"c"]
    assert changed_positions(a, [b"a", b"x", b"c"]) == [1]
    assert changed_positions(None, a) == [0, 1, 2]
    assert changed_positions(a, a[:2]) == [0, 1]
