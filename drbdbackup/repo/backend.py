"""The backend interface: a flat store of named objects.

Names are '/'-separated paths ("packs/ab/abcd..."); no name is also a directory of other names.

Failure semantics (`repo/retry.py` and callers rely on them):
- `ObjectNotFound`: the object does not exist (permanent for that name).
- `ObjectExists`: a create-exclusive put met an existing object.
- `DiskFull`: the store has no room; nothing partial is visible.
- `BackendError`: any other I/O or network failure; may be transient (RetryingBackend retries it).
Every put is atomic: readers see no object or the whole object, old or new.

`tests/unit/test_backend_conformance.py` checks these properties against every backend.
"""

from __future__ import annotations

from typing import Protocol


class Backend(Protocol):
    """Minimal object store used by the repository layer."""

    location: str

    def get(self, name: str) -> bytes:
        """Return the whole object. Raises ObjectNotFound."""
        ...

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """Return `length` bytes at `offset`, fewer (or none) past the end. Raises ObjectNotFound."""
        ...

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        """Store atomically (replacing); with `exclusive`, raise ObjectExists if present."""
        ...

    def put_file(self, name: str, path: str) -> None:
        """Store a staged local file atomically under `name`; the file is consumed, also on failure."""
        ...

    def delete(self, name: str) -> None:
        """Delete; a missing object is not an error."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Names of all objects below `prefix` ("" or ending in '/'), recursive, sorted."""
        ...

    def size(self, name: str) -> int:
        """Object size in bytes. Raises ObjectNotFound."""
        ...

    def exists(self, name: str) -> bool:
        """Whether the object exists."""
        ...

    def staging_dir(self) -> str:
        """A local directory for building large objects before `put_file`; never listed."""
        ...

# Optional: `mtime(name) -> float`, the object's modification time in epoch seconds on the
# store's clock (local st_mtime, S3 LastModified); ObjectNotFound for a missing object. The
# cluster agents take their cycle clock from it, so skewed hosts agree on the current cycle.
