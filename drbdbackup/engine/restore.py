"""Restore a generation to a file (sparse) or a block device, verifying every chunk's id."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from drbdbackup.engine.progress import Progress
from drbdbackup.errors import DiskFull, EnvironmentFailure, TargetTooSmall, UsageError
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.locks import Lock
from drbdbackup.repo.repository import Repository
from drbdbackup.tracking.changemap import chunk_length

WINDOW = 24


@dataclass
class RestoreResult:
    """The `restore --json` object."""

    volume_id: str
    generation: str
    target: str
    size_bytes: int
    written_bytes: int
    zero_chunks_skipped: int
    duration_s: float

    def to_dict(self) -> dict:
        return asdict(self)


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


def run_restore(
    repo: Repository,
    volume_id: str,
    generation: str | None,
    target: str,
    *,
    force: bool = False,
    in_place: bool = False,
    limit: int | None = None,
    progress: bool | None = None,
    workers: int = max(2, os.cpu_count() or 2),
) -> RestoreResult:
    """Restore into `target`; files are written sparse and appear only when complete.

    `in_place` writes an existing device/volume file directly (zeros included), never past `limit`.
    """
    start = time.monotonic()
    with Lock(repo.backend, exclusive=False, operation="restore"):
        repo.load_index()
        rec = repo.resolve_generation(volume_id, generation)
        ids = repo.chunk_ids(rec)
        size, cs = rec.size_bytes, rec.chunk_size
        if in_place:
            fd, is_block, path = _open_in_place(target, size, limit), True, target
        else:
            fd, is_block, path = _open_target(target, size, force)
        ok = False
        written = skipped = 0
        bar = Progress(size, f"restore {volume_id}", enabled=progress)
        try:
            zero = bytes(cs)

            def fetch(pos: int) -> bytes | None:
                cid = ids[pos]
                return None if cid == ZERO_ID else repo.read_blob(cid)

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as ex:
                window: deque[tuple[int, Future]] = deque()
                for pos in range(len(ids)):
                    window.append((pos, ex.submit(fetch, pos)))
                    if len(window) >= WINDOW:
                        w, s = _write(fd, window.popleft(), cs, size, is_block, zero, bar)
                        written, skipped = written + w, skipped + s
                while window:
                    w, s = _write(fd, window.popleft(), cs, size, is_block, zero, bar)
                    written, skipped = written + w, skipped + s
            os.fsync(fd)
            ok = True
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"no space left writing {target}") from None
            raise EnvironmentFailure(f"write to {target} failed: {exc.strerror}") from None
        finally:
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
    result = RestoreResult(
        volume_id=volume_id,
        generation=rec.generation,
        target=target,
        size_bytes=size,
        written_bytes=written,
        zero_chunks_skipped=skipped,
        duration_s=round(time.monotonic() - start, 3),
    )
    repo.audit("restore", result.to_dict())
    return result


def _write(
    fd: int,
    item: tuple[int, Future],
    cs: int,
    size: int,
    is_block: bool,
    zero: bytes,
    bar: Progress,
) -> tuple[int, int]:
    pos, fut = item
    data = fut.result()
    length = chunk_length(pos, size, cs)
    bar.advance(length)
    if data is None:
        if not is_block:
            return 0, 1
        data = zero[:length]
    os.pwrite(fd, data, pos * cs)
    return length, 0
