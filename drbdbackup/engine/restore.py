"""Write a generation's chunks to a file (sparse) or a block device; the reader verifies ids."""

from __future__ import annotations

import errno
import mmap
import os
import stat
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from drbdbackup.engine.tuning import tune_allocator
from drbdbackup.errors import DiskFull, EnvironmentFailure, TargetTooSmall, UsageError
from drbdbackup.progress import Progress
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.tracking.changemap import chunk_length

WINDOW = 24
DIRECT_ALIGN = 4096


def _open_in_place(target: str, size: int, limit: int | None) -> int:
    """An existing device or volume file written in place; only [0, limit) is the volume."""
    try:
        fd = os.open(target, os.O_WRONLY)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot open {target} for writing: {exc.strerror}") from None
    avail = os.lseek(fd, 0, os.SEEK_END)
    if limit is not None:
        avail = min(avail, limit)
    if avail < size:
        os.close(fd)
        raise TargetTooSmall(f"target {target} has {avail} usable bytes but the volume needs {size}")
    return fd


def _open_target(target: str, size: int, force: bool) -> tuple[int, bool, str]:
    """Return (fd, is_block_device, path written to). Files go to a temp name renamed at the end."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise EnvironmentFailure(f"cannot access restore target {target}: {exc.strerror}") from None
    if st is not None and stat.S_ISBLK(st.st_mode):
        try:
            fd = os.open(target, os.O_WRONLY)
        except OSError as exc:
            raise EnvironmentFailure(f"cannot open {target} for writing: {exc.strerror}") from None
        dev_size = os.lseek(fd, 0, os.SEEK_END)
        if dev_size < size:
            os.close(fd)
            raise TargetTooSmall(
                f"target {target} has {dev_size} bytes but the volume needs {size}"
            )
        return fd, True, target
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsageError(f"restore target {target} is neither a file nor a block device")
    if st is not None and not force:
        raise UsageError(f"restore target {target} exists; pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise EnvironmentFailure(f"directory {parent} for the restore target does not exist")
    tmp = f"{target}.drbdbackup-partial"
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, size)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if exc.errno in (errno.ENOSPC, errno.EFBIG):
            raise DiskFull(f"no room for {size} bytes at {target}") from None
        raise EnvironmentFailure(f"cannot create {target}: {exc.strerror}") from None
    return fd, False, tmp


@dataclass(frozen=True)
class RestoreWrite:
    """Bytes written and all-zero chunks left as holes."""

    written_bytes: int
    zero_chunks_skipped: int


def restore_chunks(
    ids: list[bytes],
    size: int,
    chunk_size: int,
    read_chunk: Callable[[bytes], bytes],
    target: str,
    *,
    label: str,
    force: bool = False,
    in_place: bool = False,
    limit: int | None = None,
    progress: bool | None = None,
    workers: int = max(2, os.cpu_count() or 2),
) -> RestoreWrite:
    """Write the chunks `ids` (ZERO_ID = all zeros) into `target`.

    Files are written sparse under a temporary name and appear only when complete; block devices
    are written in place. `in_place` writes an existing device/volume file directly (zeros
    included), never past `limit`. `read_chunk` returns a chunk's verified bytes.
    """
    tune_allocator()
    fd, is_block, path = ((_open_in_place(target, size, limit), True, target) if in_place
                          else _open_target(target, size, force))
    ok = False
    bar = Progress(size, label, enabled=progress)
    out = _ChunkWriter(fd, path, chunk_size, size, write_zeros=is_block)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as ex:
            window: deque[Future] = deque()

            def job(pos: int) -> int:
                cid = ids[pos]
                return out.write(pos, None if cid == ZERO_ID else read_chunk(cid))

            for pos in range(len(ids)):
                window.append(ex.submit(job, pos))
                if len(window) >= WINDOW:
                    bar.advance(window.popleft().result())
            while window:
                bar.advance(window.popleft().result())
        out.sync()
        ok = True
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left writing {target}") from None
        raise EnvironmentFailure(f"write to {target} failed: {exc.strerror}") from None
    finally:
        out.close()
        os.close(fd)
        if not is_block:
            if ok:
                os.replace(path, target)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    bar.finish()
    return RestoreWrite(out.written, out.skipped)


class _ChunkWriter:
    """Writes chunks at their offsets from worker threads: O_DIRECT through a per-thread aligned
    buffer where the target allows it (no page-cache copy, like `dd oflag=direct`), else pwrite."""

    def __init__(self, fd: int, path: str, chunk_size: int, size: int, *, write_zeros: bool) -> None:
        self.fd, self.cs, self.size, self.write_zeros = fd, chunk_size, size, write_zeros
        self.zero = bytes(chunk_size)
        self.written = self.skipped = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._buffers: list[mmap.mmap] = []
        try:
            self.direct_fd: int | None = os.open(path, os.O_WRONLY | getattr(os, "O_DIRECT", 0))
        except OSError:
            self.direct_fd = None

    def _aligned(self) -> mmap.mmap:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = mmap.mmap(-1, self.cs)
            with self._lock:
                self._buffers.append(buf)
        return buf

    def write(self, pos: int, data: bytes | None) -> int:
        """Write chunk `pos` (None = all zero); return its length (for progress)."""
        length = chunk_length(pos, self.size, self.cs)
        if data is None:
            if not self.write_zeros:
                with self._lock:
                    self.skipped += 1
                return length
            data = self.zero[:length]
        off = pos * self.cs
        if self.direct_fd is not None and length % DIRECT_ALIGN == 0:
            buf = self._aligned()
            buf[:length] = data
            try:
                os.pwrite(self.direct_fd, memoryview(buf)[:length], off)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                os.pwrite(self.fd, data, off)
        else:
            os.pwrite(self.fd, data, off)
        with self._lock:
            self.written += length
        return length

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.direct_fd is not None:
            os.close(self.direct_fd)
        for buf in self._buffers:
            buf.close()
