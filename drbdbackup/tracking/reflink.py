"""Reflink change maps (FILE_THIN on XFS/Btrfs): compare two snapshot files' physical extents.

Two reflinked snapshots share physical blocks for every range written to neither since the older
one was taken; a range whose physical location differs (or that is mapped in one and a hole in
the other) changed. Pure extent diffing is separate from the FIEMAP ioctl.
"""

from __future__ import annotations

import array
import fcntl
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
# Extents whose physical address does not identify the data; never trust them as "unchanged".
UNTRUSTED_FLAGS = 0x2 | 0x4 | 0x8 | 0x100 | 0x200  # UNKNOWN, DELALLOC, ENCODED, NOT_ALIGNED, INLINE
_HDR = struct.Struct("=QQIIII")
_EXT = struct.Struct("=QQQQQIIII")
BATCH = 512


class FiemapUnsupported(Exception):
    """The filesystem does not report extents."""


@dataclass(frozen=True)
class Extent:
    """A logical range mapped to `physical` (None: location unknown, treat as changed)."""

    logical: int
    physical: int | None
    length: int


def fiemap(path: str) -> list[Extent]:
    """All extents of a file, via FS_IOC_FIEMAP (synced first)."""
    out: list[Extent] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        start = 0
        while True:
            buf = array.array("B", bytes(_HDR.size + BATCH * _EXT.size))
            _HDR.pack_into(buf, 0, start, 0xFFFFFFFFFFFFFFFF - start, FIEMAP_FLAG_SYNC, 0, BATCH, 0)
            try:
                fcntl.ioctl(fd, FS_IOC_FIEMAP, buf, True)
            except OSError as exc:
                raise FiemapUnsupported(f"FIEMAP failed on {path}: {exc.strerror}") from None
            mapped = _HDR.unpack_from(buf, 0)[3]
            if mapped == 0:
                return out
            last = False
            for i in range(mapped):
                logical, physical, length, _r1, _r2, flags, *_ = _EXT.unpack_from(
                    buf, _HDR.size + i * _EXT.size
                )
                out.append(Extent(logical, None if flags & UNTRUSTED_FLAGS else physical, length))
                last = bool(flags & FIEMAP_EXTENT_LAST)
                start = logical + length
            if last:
                return out
    finally:
        os.close(fd)


HOLE = -1  # physical addresses are >= 0; None means unknown


def _physical_at(extents: list[Extent], pos: int, idx: int) -> tuple[int | None, int, int]:
    """Mapping at byte `pos`: (physical, HOLE, or None if unknown), end of that run, new index."""
    while idx < len(extents) and extents[idx].logical + extents[idx].length <= pos:
        idx += 1
    if idx < len(extents) and extents[idx].logical <= pos:
        e = extents[idx]
        phys = None if e.physical is None else e.physical + (pos - e.logical)
        return phys, e.logical + e.length, idx
    nxt = extents[idx].logical if idx < len(extents) else 1 << 63
    return HOLE, nxt, idx


def _segments(old: list[Extent], new: list[Extent], size: int) -> Iterator[tuple[int, int, bool, bool]]:
    """Yield (start, end, same) runs over [0, size): same = both holes or same physical address."""
    old = sorted(old, key=lambda e: e.logical)
    new = sorted(new, key=lambda e: e.logical)
    pos = io = inew = 0
    while pos < size:
        p_old, end_old, io = _physical_at(old, pos, io)
        p_new, end_new, inew = _physical_at(new, pos, inew)
        end = min(end_old, end_new, size)
        yield pos, end, p_old is not None and p_old == p_new, p_old == HOLE
        pos = end


def changed_ranges(old: list[Extent], new: list[Extent], size: int) -> list[tuple[int, int]]:
    """Byte ranges in [0, size) whose data may differ between the two files."""
    out: list[tuple[int, int]] = []
    for pos, end, same, _hole in _segments(old, new, size):
        if same:
            continue
        if out and out[-1][0] + out[-1][1] == pos:
            out[-1] = (out[-1][0], out[-1][1] + end - pos)
        else:
            out.append((pos, end - pos))
    return out


def shared_bytes(old: list[Extent], new: list[Extent], size: int) -> int:
    """Bytes both files map to the same physical blocks (0: they are not reflinks of each other)."""
    return sum(end - pos for pos, end, same, hole in _segments(old, new, size) if same and not hole)
