"""Writing new blobs: packs (optionally built in a background thread) and their index files."""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import TYPE_CHECKING

from drbdbackup.repo.backend import Backend
from drbdbackup.repo.pack import PackEntry, PackWriter, pack_name

if TYPE_CHECKING:
    from drbdbackup.repo.repository import Repository


class BlobWriter:
    """Packs new blobs; `commit` uploads the last pack and writes the index files.

    With `start_background()`, pack writing (file write, pack hash, upload) runs in its own
    thread so it overlaps with hashing and compression; errors surface at the next `add` or at
    `commit`.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.pack: PackWriter | None = None
        self.written: dict[str, list[PackEntry]] = {}
        self.added: set[bytes] = set()
        self.stored_bytes = 0
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def needs(self, blob_id: bytes) -> bool:
        """True unless the blob has a good copy already or was added in this run."""
        return blob_id not in self.added and not self.repo.index.has_good(blob_id)

    def add(self, kind: int, blob_id: bytes, stored: bytes, plain_length: int) -> None:
        if blob_id in self.added:
            return
        if self._error is not None:
            raise self._error
        self.added.add(blob_id)
        self.stored_bytes += len(stored)
        if self._queue is not None:
            self._queue.put((kind, blob_id, stored, plain_length))
        else:
            self._append(kind, blob_id, stored, plain_length)

    def _append(self, kind: int, blob_id: bytes, stored: bytes, plain_length: int) -> None:
        if self.pack is None:
            self.pack = PackWriter(self.repo.backend.staging_dir(), self.repo.enc_key)
        self.pack.add(kind, blob_id, stored, plain_length)
        if self.pack.full:
            self._flush_pack()

    def start_background(self, depth: int = 24) -> None:
        """Write packs in a background thread (bounded queue: memory stays bounded)."""
        self._queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run_background, name="packer", daemon=True)
        self._thread.start()

    def _run_background(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._append(*item)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def _stop_background(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self._queue = self._thread = None

    def _flush_pack(self) -> None:
        assert self.pack is not None
        pack_id, path, entries = self.pack.finish()
        try:
            self.repo.backend.put_file(pack_name(pack_id), path)
        except BaseException:
            self.pack.abort()  # removes the staged file if the backend did not consume it
            self.pack = None
            raise
        self.pack = None
        self.written[pack_id] = entries

    def commit_packs(self) -> None:
        """Upload the open pack (if it holds anything)."""
        self._stop_background()
        if self._error is not None:
            raise self._error
        if self.pack is not None and self.pack.entries:
            self._flush_pack()
        elif self.pack is not None:
            self.pack.abort()
            self.pack = None

    def commit(self) -> list[str]:
        """Upload the open pack, write the index files (split at 64 MiB each), add it all to
        the in-memory index."""
        self.commit_packs()
        names = []
        if self.written:
            names = self.repo.write_index_files(self.written)
            for pack_id, entries in self.written.items():
                for e in entries:
                    self.repo.index.add(pack_id, e)
        return names

    def abort(self) -> None:
        self._stop_background()
        if self.pack is not None:
            self.pack.abort()
            self.pack = None


def staging_cleanup(backend: Backend, older_than_s: float = 3600) -> int:
    """Remove stale staged files (crash leftovers) from a local backend's staging dir."""
    path = backend.staging_dir()
    removed = 0
    for name in os.listdir(path):
        full = os.path.join(path, name)
        try:
            if time.time() - os.stat(full).st_mtime > older_than_s:
                os.unlink(full)
                removed += 1
        except OSError:
            continue
    return removed
