"""Change maps: pure functions over chunk-id lists and chunk positions."""

from __future__ import annotations

from collections.abc import Iterable


def chunk_count(size: int, chunk_size: int) -> int:
    return (size + chunk_size - 1) // chunk_size


def chunk_length(pos: int, size: int, chunk_size: int) -> int:
    return min(chunk_size, size - pos * chunk_size)


def changed_positions(parent_ids: list[bytes] | None, new_ids: list[bytes]) -> list[int]:
    """Positions whose id differs from the parent's (all, when there is no comparable parent)."""
    if parent_ids is None or len(parent_ids) != len(new_ids):
        return list(range(len(new_ids)))
    return [i for i, (a, b) in enumerate(zip(parent_ids, new_ids, strict=True)) if a != b]


def changed_bytes(positions: Iterable[int], size: int, chunk_size: int) -> int:
    return sum(chunk_length(p, size, chunk_size) for p in positions)


def positions_for_ranges(ranges: Iterable[tuple[int, int]], chunk_size: int, size: int) -> set[int]:
    """Chunk positions overlapping any byte range (offset, length), clipped to the volume size."""
    out: set[int] = set()
    for off, length in ranges:
        if length <= 0 or off >= size:
            continue
        end = min(off + length, size)
        out.update(range(off // chunk_size, (end - 1) // chunk_size + 1))
    return out


def ranges_for_positions(positions: Iterable[int], chunk_size: int, size: int) -> list[tuple[int, int]]:
    """Coalesce sorted chunk positions into byte ranges (offset, length) within the volume."""
    out: list[tuple[int, int]] = []
    for p in sorted(set(positions)):
        off = p * chunk_size
        if off >= size:
            continue
        length = chunk_length(p, size, chunk_size)
        if out and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + length)
        else:
            out.append((off, length))
    return out
