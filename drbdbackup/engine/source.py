"""Reading a volume: O_DIRECT into a ring of reused, page-aligned buffers, in a reader thread."""

from __future__ import annotations

import errno
import mmap
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from drbdbackup.errors import SourceUnavailable, UsageError

SEGMENT_BYTES = 16 << 20
RING_BUFFERS = 6
ALIGN = 4096


def open_source(path: str) -> tuple[int, int, bool]:
    """Open for reading; return (fd, size in bytes, is_block_device). O_DIRECT when possible."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceUnavailable(f"source {path} does not exist") from None
    except OSError as exc:
        raise SourceUnavailable(f"source {path} cannot be read: {exc.strerror}") from None
    is_block = stat.S_ISBLK(st.st_mode)
    if not (is_block or stat.S_ISREG(st.st_mode)):
        raise UsageError(f"source {path} is neither a regular file nor a block device")
    flags = os.O_RDONLY | getattr(os, "O_DIRECT", 0)
    try:
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            fd = os.open(path, os.O_RDONLY)
    except PermissionError:
        raise SourceUnavailable(f"permission denied reading {path}") from None
    except OSError as exc:
        raise SourceUnavailable(f"source {path} cannot be read: {exc.strerror}") from None
    size = os.lseek(fd, 0, os.SEEK_END)
    return fd, size, is_block


def plan_segments(
    ranges: list[tuple[int, int]], segment: int = SEGMENT_BYTES
) -> list[tuple[int, int]]:
    """Split sorted, chunk-aligned (offset, length) ranges into reads of at most `segment` bytes."""
    out = []
    for off, length in ranges:
        end = off + length
        while off < end:
            n = min(segment, end - off)
            out.append((off, n))
            off += n
    return out


@dataclass
class Segment:
    """`data` (a view into a ring buffer) holds volume bytes [offset, offset + len(data))."""

    offset: int
    data: memoryview
    slot: int


class RingReader:
    """Reads planned segments in a background thread into a ring of reusable buffers.

    Iterate to get Segments in order; call `release(segment)` when done with its bytes.
    """

    def __init__(
        self, fd: int, segments: list[tuple[int, int]], buffers: int = RING_BUFFERS,
        rate_bytes_s: int = 0, pacer: Callable[[int], None] | None = None,
    ) -> None:
        self.fd = fd
        self.rate = rate_bytes_s  # 0 = unlimited; else reads are paced to protect production I/O
        self.pacer = pacer  # blocks until a shared rate allows `length` more bytes
        self.segments = segments
        seg = max((n for _o, n in segments), default=ALIGN)
        self.buf_size = (seg + ALIGN - 1) // ALIGN * ALIGN
        self.buffers = [mmap.mmap(-1, self.buf_size) for _ in range(min(buffers, max(1, len(segments))))]
        self.free: queue.Queue[int] = queue.Queue()
        for i in range(len(self.buffers)):
            self.free.put(i)
        self.ready: queue.Queue[Segment | BaseException | None] = queue.Queue()
        self.read_bytes = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ring-reader", daemon=True)

    def _read_into(self, slot: int, offset: int, length: int) -> memoryview:
        view = memoryview(self.buffers[slot])
        want = (length + ALIGN - 1) // ALIGN * ALIGN
        got = 0
        while got < length:
            try:
                n = os.preadv(self.fd, [view[got:want]], offset + got)
            except OSError as exc:
                if exc.errno == errno.EINVAL and got == 0:
                    # O_DIRECT refused (alignment, filesystem): retry this read buffered.
                    n = os.preadv(self._buffered_fd(), [view[got:length]], offset + got)
                else:
                    raise
            if n == 0:
                raise SourceUnavailable(
                    f"source ended early at byte {offset + got} (was it truncated?)"
                )
            got += n
        return view[:length]

    def _buffered_fd(self) -> int:
        fd = getattr(self, "_bfd", None)
        if fd is None:
            fd = self._bfd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY)
        return fd

    def _pace(self, start: float) -> None:
        if self.rate > 0:
            ahead = self.read_bytes / self.rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)

    def _run(self) -> None:
        start = time.monotonic()
        try:
            for offset, length in self.segments:
                self._pace(start)
                if self.pacer is not None:
                    self.pacer(length)
                slot = self.free.get()
                if self._stop:
                    return
                data = self._read_into(slot, offset, length)
                self.read_bytes += length
                self.ready.put(Segment(offset, data, slot))
            self.ready.put(None)
        except OSError as exc:
            self.ready.put(SourceUnavailable(f"read error on the source: {exc.strerror}"))
        except BaseException as exc:  # noqa: BLE001 - surfaced to the consumer
            self.ready.put(exc)

    def __iter__(self) -> Iterator[Segment]:
        self._thread.start()
        while True:
            item = self.ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def release(self, segment: Segment) -> None:
        segment.data.release()
        self.free.put(segment.slot)

    def close(self) -> None:
        self._stop = True
        for i in range(len(self.buffers)):
            self.free.put(i)
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        bfd = getattr(self, "_bfd", None)
        if bfd is not None:
            os.close(bfd)
        for b in self.buffers:
            try:
                b.close()
            except BufferError:
                pass
