"""Pure extent diffing for the reflink tracker, checked against a brute-force model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.tracking.reflink import Extent, changed_ranges

BLK = 4096


def _layout(draw_blocks: list[int | None]) -> list[Extent]:
    """Turn a per-block physical list (None = hole, -1 = unknown) into merged extents."""
    out: list[Extent] = []
    for i, p in enumerate(draw_blocks):
        if p is None:
            continue
        phys = None if p == -1 else p * BLK
        if out and out[-1].physical is not None and phys is not None and \
                out[-1].logical + out[-1].length == i * BLK and out[-1].physical + out[-1].length == phys:
            out[-1] = Extent(out[-1].logical, out[-1].physical, out[-1].length + BLK)
        else:
            out.append(Extent(i * BLK, phys, BLK))
    return out


blocks = st.lists(st.one_of(st.none(), st.integers(-1, 6)), min_size=0, max_size=24)


@settings(max_examples=300, deadline=None)
@given(old=blocks, new=blocks, extra=st.integers(0, 3))
def test_changed_ranges_matches_model(old: list, new: list, extra: int) -> None:
    n = max(len(old), len(new)) + extra
    old += [None] * (n - len(old))
    new += [None] * (n - len(new))
    got = changed_ranges(_layout(old), _layout(new), n * BLK)
    changed = set()
    for off, length in got:
        assert off % BLK == 0 and length % BLK == 0
        changed.update(range(off // BLK, (off + length) // BLK))
    for i in range(n):
        same = (old[i] is None and new[i] is None) or (old[i] not in (None, -1) and old[i] == new[i])
        assert (i not in changed) == same, (i, old[i], new[i])


def test_size_clips() -> None:
    assert changed_ranges([], [Extent(0, 0, 10 * BLK)], 3 * BLK) == [(0, 3 * BLK)]
