"""Reading (and the few writes drbdverify makes to) repository objects.

:class:`Store` is the small interface a backend implements; :class:`LocalStore` is the
directory backend (section 2.1). An S3 backend implements the same methods with ranged GETs
and conditional PUTs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from .errors import EnvironmentFailure, FormatError, UsageError


class ObjectMissing(Exception):
    """The named object does not exist."""


class ObjectTooLarge(FormatError):
    """An object is larger than the reader limit for its kind (nothing was read)."""


class ObjectReader(Protocol):
    """An open object: random reads and one sequential pass."""

    size: int

    def pread(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class Store(Protocol):
    """What the verifier needs from a backend."""

    location: str

    def list(self, prefix: str) -> list[str]: ...

    def get(self, name: str) -> bytes: ...

    def open(self, name: str) -> ObjectReader: ...

    def put_atomic(self, name: str, data: bytes) -> None: ...

    def put_exclusive(self, name: str, data: bytes) -> bool: ...

    def delete(self, name: str) -> None: ...


class _FileReader:
    """:class:`ObjectReader` over a local file descriptor."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def pread(self, offset: int, length: int) -> bytes:
        out = bytearray()
        while len(out) < length:
            b = os.pread(self.fd, length - len(out), offset + len(out))
            if not b:
                break
            out += b
        return bytes(out)

    def close(self) -> None:
        os.close(self.fd)


def _is_tmp(name: str) -> bool:
    return name.endswith(".tmp")


class LocalStore:
    """A repository in a local directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.location = self.root

    def _path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"bad object name {name!r}")
        return os.path.join(self.root, *name.split("/"))

    def list(self, prefix: str) -> list[str]:
        """Object names under ``prefix`` (a directory such as ``packs``), temp files excluded."""
        base = self._path(prefix)
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            out.extend(f"{rel}/{f}" for f in files if not _is_tmp(f))
        return sorted(out)

    def get(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise EnvironmentFailure(f"cannot read {name}: {e.strerror}") from None

    def open(self, name: str) -> _FileReader:
        try:
            return _FileReader(self._path(name))
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise EnvironmentFailure(f"cannot read {name}: {e.strerror}") from None

    def advise(self, name: str, ranges: list[tuple[int, int]]) -> None:
        """Ask the kernel to start reading these ranges now (POSIX_FADV_WILLNEED); best effort."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except OSError:
            return
        try:
            for off, length in ranges:
                os.posix_fadvise(fd, off, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _write_tmp(self, name: str, data: bytes) -> str:
        path = self._path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.urandom(6).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _fsync_dir(self, path: str) -> None:
        fd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_atomic(self, name: str, data: bytes) -> None:
        """Write temp, fsync, rename over ``name``, fsync the directory."""
        try:
            tmp = self._write_tmp(name, data)
            os.replace(tmp, self._path(name))
            self._fsync_dir(self._path(name))
        except OSError as e:
            raise EnvironmentFailure(f"cannot write {name}: {e.strerror}") from None

    def put_exclusive(self, name: str, data: bytes) -> bool:
        """Create ``name`` only if absent (temp + hard link); False if it already exists."""
        try:
            tmp = self._write_tmp(name, data)
            try:
                os.link(tmp, self._path(name))
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            self._fsync_dir(self._path(name))
            return True
        except OSError as e:
            raise EnvironmentFailure(f"cannot write {name}: {e.strerror}") from None

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise EnvironmentFailure(f"cannot delete {name}: {e.strerror}") from None


def open_store(repo: str) -> Store:
    """Open REPO: a directory or ``s3://bucket/prefix``."""
    if repo.startswith("s3://"):
        from .s3store import S3Store

        store = S3Store(repo)
        try:
            store.get("config")
        except ObjectMissing:
            raise UsageError(f"{repo} is not a drbdbackup repository (no config)") from None
        return store
    if not os.path.isdir(repo):
        raise UsageError(f"repository {repo} is not a directory")
    if not os.path.exists(os.path.join(repo, "config")):
        raise UsageError(f"{repo} is not a drbdbackup repository (no config)")
    return LocalStore(repo)


def get_capped(store: Store, name: str, cap: int) -> bytes:
    """Read a whole object only if it is at most ``cap`` bytes (size from stat / HEAD first)."""
    reader = store.open(name)
    try:
        if reader.size > cap:
            raise ObjectTooLarge(f"{name}: {reader.size} bytes, above the reader limit of {cap}")
        return reader.pread(0, reader.size)
    finally:
        reader.close()


def iter_stream(reader: ObjectReader, block: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """Sequential (offset, bytes) blocks over a whole object."""
    off = 0
    while off < reader.size:
        b = reader.pread(off, min(block, reader.size - off))
        if not b:
            break
        yield off, b
        off += len(b)
