"""A backend wrapper that retries transient failures with capped exponential backoff.

Only a plain `BackendError` is retried: `ObjectNotFound` and `ObjectExists` are answers, not
failures, and `DiskFull` does not go away by waiting. Every retry is logged as a warning.

Operations are retried as they are, except two that are not simply repeatable:
- Exclusive put. An attempt may store the object and still fail (the reply is lost), so the next
  attempt meets the object and gets ObjectExists for the caller's own write. When ObjectExists
  follows a transient failure, the wrapper reads the object back: if it holds exactly the bytes
  being written, the put succeeded; otherwise (other bytes, or gone again) ObjectExists stands.
  Equal bytes are taken as this writer's own write, so callers whose exclusive puts could race
  with byte-identical content from another writer must make the content unique (e.g. a nonce).
- put_file. The inner backend consumes the staged file, also when it fails, so each attempt
  gets its own hard link (a copy where links are not supported) and the file itself is removed
  when the put is over, whatever the outcome - as the Backend contract says. If the link or
  copy cannot be made, put_file fails at once (DiskFull when there is no room, else BackendError).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from typing import TypeVar

from drbdbackup.errors import BackendError, DiskFull, ObjectExists, ObjectNotFound
from drbdbackup.repo.backend import Backend

log = logging.getLogger(__name__)
_NO_HARD_LINKS = (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.EOPNOTSUPP)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Whether waiting and trying again may help: a BackendError that is no definite answer."""
    return isinstance(exc, BackendError) and not isinstance(
        exc, ObjectNotFound | ObjectExists | DiskFull
    )


class RetryingBackend:
    """Wraps `inner`: up to `attempts` tries per operation; before try n+1 it sleeps
    min(max_delay, base_delay * 2**(n-1)), shortened by up to `jitter` (a fraction) at random so
    parallel writers do not retry in step."""

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        jitter: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if base_delay < 0 or max_delay < 0 or not 0 <= jitter <= 1:
            raise ValueError("delays must not be negative and jitter must lie in [0, 1]")
        self.inner = inner
        self.location = inner.location
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self._sleep = sleep

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 = the second attempt)."""
        full = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return full * (1 - self.jitter * random.random())

    def _call(self, op: str, name: str, attempt: Callable[[int], T]) -> T:
        """Run `attempt(n)` for n = 1, 2, ... until it returns or fails for good."""
        n = 1
        while True:
            try:
                return attempt(n)
            except BackendError as exc:
                if n >= self.attempts or not is_transient(exc):
                    raise
                wait = self.delay(n)
                log.warning(
                    "%s %s failed (%s); retry %d of %d in %.1fs",
                    op, name, exc, n, self.attempts - 1, wait,
                )
                self._sleep(wait)
                n += 1

    def get(self, name: str) -> bytes:
        return self._call("get", name, lambda _n: self.inner.get(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._call("get", name, lambda _n: self.inner.get_range(name, offset, length))

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        if not exclusive:
            self._call("put", name, lambda _n: self.inner.put(name, data))
            return

        def attempt(n: int) -> None:
            try:
                self.inner.put(name, data, exclusive=True)
            except ObjectExists:
                if n == 1 or not self._holds(name, data):
                    raise

        self._call("put", name, attempt)

    def _holds(self, name: str, data: bytes) -> bool:
        """Whether `name` holds exactly `data` (an earlier attempt stored it; its reply was lost)."""
        try:
            return self.inner.get(name) == data
        except ObjectNotFound:
            return False

    def put_file(self, name: str, path: str) -> None:
        try:
            self._call("put", name, lambda n: self._put_spare(name, path, n))
        except OSError as exc:  # the spare copy could not be made: not retried
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"no space left to stage {name} for upload") from None
            raise BackendError(f"cannot stage {name} for upload: {exc.strerror}") from None
        finally:
            _unlink_quiet(path)

    def _put_spare(self, name: str, path: str, n: int) -> None:
        """One put_file attempt with its own link to (or copy of) the staged file."""
        spare = f"{path}.{n}.tmp"
        try:
            os.link(path, spare)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            shutil.copyfile(path, spare)
        try:
            self.inner.put_file(name, spare)
        finally:
            _unlink_quiet(spare)  # already consumed unless the inner backend failed early

    def delete(self, name: str) -> None:
        self._call("delete", name, lambda _n: self.inner.delete(name))

    def list(self, prefix: str) -> list[str]:
        return self._call("list", prefix, lambda _n: self.inner.list(prefix))

    def size(self, name: str) -> int:
        return self._call("size", name, lambda _n: self.inner.size(name))

    def exists(self, name: str) -> bool:
        return self._call("exists", name, lambda _n: self.inner.exists(name))

    def mtime(self, name: str) -> float:
        """The inner backend's `mtime` (AttributeError when it has none, as the inner's would)."""
        reader = self.inner.mtime  # type: ignore[attr-defined]
        return float(self._call("mtime", name, lambda _n: reader(name)))

    def staging_dir(self) -> str:
        return self.inner.staging_dir()

    def close(self) -> None:
        """Close the inner backend, if it can be closed."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
