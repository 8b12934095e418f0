"""Local-directory backend: atomic put by temp file + fsync + rename + directory fsync."""

from __future__ import annotations

import errno
import os
import secrets
import stat
import threading

from drbdbackup.errors import BackendError, DiskFull, ObjectExists, ObjectNotFound

TMP_DIR = "tmp"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _translate(exc: OSError, name: str) -> Exception:
    if exc.errno in (errno.ENOENT, errno.EISDIR):  # a directory is a prefix, not an object
        return ObjectNotFound(f"object not found: {name}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left in the repository while writing {name}")
    return BackendError(f"I/O error on {name}: {exc.strerror}")


class LocalBackend:
    """Objects are files below `root`; names use '/' as separator."""

    def __init__(self, root: str, *, durable: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.location = self.root
        self.durable = durable
        self._local = threading.local()
        self._all_fds: list[dict[str, int]] = []
        self._fd_lock = threading.Lock()

    def _path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise BackendError(f"invalid object name: {name}")
        return os.path.join(self.root, name)

    def get(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError as exc:
            raise _translate(exc, name) from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        # Each thread keeps its own descriptors, so parallel reads never wait on each other and a
        # descriptor is never closed under another thread's pread.
        fds = getattr(self._local, "fds", None)
        if fds is None:
            fds = self._local.fds = {}
            with self._fd_lock:
                self._all_fds.append(fds)
        try:
            fd = fds.get(name)
            if fd is None:
                if len(fds) > 64:
                    with self._fd_lock:
                        for old in fds.values():
                            os.close(old)
                        fds.clear()
                fd = fds[name] = os.open(self._path(name), os.O_RDONLY)
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise _translate(exc, name) from None
        return data

    def close(self) -> None:
        """Close cached read descriptors."""
        with self._fd_lock:
            self._close_fds()

    def _close_fds(self) -> None:
        for fds in self._all_fds:
            for fd in fds.values():
                os.close(fd)
            fds.clear()

    def _stage(self, data: bytes, name: str) -> str:
        tmp = os.path.join(self.staging_dir(), secrets.token_hex(8) + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.durable:
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as exc:
            _unlink_quiet(tmp)
            raise _translate(exc, name) from None
        return tmp

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        tmp = self._stage(data, name)
        self._install(tmp, name, exclusive=exclusive)

    def put_file(self, name: str, path: str) -> None:
        if self.durable:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                _unlink_quiet(path)
                raise _translate(exc, name) from None
        self._install(path, name, exclusive=False)

    def _install(self, tmp: str, name: str, *, exclusive: bool) -> None:
        dest = self._path(name)
        parent = os.path.dirname(dest)
        try:
            os.makedirs(parent, exist_ok=True)
            if exclusive:
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    raise ObjectExists(f"object exists: {name}") from None
                finally:
                    _unlink_quiet(tmp)
            else:
                os.replace(tmp, dest)
            if self.durable:
                _fsync_dir(parent)
        except OSError as exc:
            _unlink_quiet(tmp)
            raise _translate(exc, name) from None

    def delete(self, name: str) -> None:
        with self._fd_lock:
            for fds in self._all_fds:
                fd = fds.pop(name, None)
                if fd is not None:
                    os.close(fd)
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _translate(exc, name) from None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        out: list[str] = []
        if not os.path.isdir(base):
            return out
        for dirpath, dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            if rel == ".":
                dirs[:] = [d for d in dirs if d != TMP_DIR]  # staged files are not objects
            for f in files:
                if f.endswith(".tmp"):
                    continue
                out.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
        return sorted(out)

    def _stat(self, name: str) -> os.stat_result:
        """The object's file status (a directory is no object)."""
        try:
            st = os.stat(self._path(name))
        except OSError as exc:
            raise _translate(exc, name) from None
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(f"object not found: {name}")
        return st

    def size(self, name: str) -> int:
        return self._stat(name).st_size

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def mtime(self, name: str) -> float:
        """The object's modification time on the store's clock (the cluster's cycle clock)."""
        return self._stat(name).st_mtime

    def staging_dir(self) -> str:
        path = os.path.join(self.root, TMP_DIR)
        os.makedirs(path, exist_ok=True)
        return path


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
