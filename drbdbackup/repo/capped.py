"""Reading the repository's JSON objects within the size limits of format.md section 17: the
object's size is held against its limit (stat / HEAD) before its bytes are fetched."""

from __future__ import annotations

import hashlib

from drbdbackup.repo.backend import Backend
from drbdbackup.repo.crypto import SEAL_OVERHEAD
from drbdbackup.repo.records import JSON_MAX_BYTES, JsonObjectError

STREAM_BLOCK = 1 << 20


def cap_of(what: str, *, sealed: bool = False) -> int:
    """Largest stored size of an object of kind `what` (a key of JSON_MAX_BYTES)."""
    return JSON_MAX_BYTES[what] + (SEAL_OVERHEAD if sealed else 0)


def read_capped(backend: Backend, name: str, what: str, *, sealed: bool = False) -> bytes:
    """The whole object, if its size is within the limit for `what`; raises JsonObjectError
    (a ValueError) when it is not, ObjectNotFound when it does not exist."""
    cap = cap_of(what, sealed=sealed)
    size = backend.size(name)
    if size > cap:
        raise JsonObjectError(f"{what} is {size} bytes, above the limit of {cap}")
    data = backend.get(name)
    if len(data) > cap:  # replaced between the two calls
        raise JsonObjectError(f"{what} is {len(data)} bytes, above the limit of {cap}")
    return data


def sha256_streamed(backend: Backend, name: str, size: int) -> str:
    """Hex SHA-256 of an object read in 1 MiB pieces (for objects too large to hold)."""
    h = hashlib.sha256()
    for off in range(0, size, STREAM_BLOCK):
        block = backend.get_range(name, off, min(STREAM_BLOCK, size - off))
        if not block:
            break
        h.update(block)
    return h.hexdigest()
