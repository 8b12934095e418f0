"""Blob encoding (format.md section 5): type byte, optional zstd, optional seal.

Decoding holds `plain_length` against the repository's limits (format.md section 17) before it
opens or decompresses anything, and zstd never produces more than `plain_length + 1` bytes,
whatever size the frame header claims.
"""

from __future__ import annotations

import threading

import pyzstd

from drbdbackup.repo.crypto import SEAL_OVERHEAD, OpenFailed, open_sealed, seal
from drbdbackup.repo.tree import MAX_FANOUT, max_node_bytes

TYPE_RAW = 0x00
TYPE_ZSTD = 0x01
KIND_DATA = 0
KIND_TREE = 1
MAX_CHUNK_SIZE = 4 << 20  # format.md section 3
MAX_PLAIN_LENGTH = max(MAX_CHUNK_SIZE, max_node_bytes(MAX_FANOUT))  # any blob, any repository

_local = threading.local()


def _compress(data: bytes | memoryview, level: int) -> bytes:
    """One zstd frame with its content size. pyzstd releases the GIL, so worker threads compress
    in parallel (python-zstandard's one-shot compress does not)."""
    return pyzstd.compress(data, level)


def _decompress(body: bytes | memoryview, plain_length: int) -> bytes:
    """Decompress one frame, never producing more than plain_length + 1 bytes."""
    dec = pyzstd.ZstdDecompressor()
    out = dec.decompress(body, max_length=plain_length + 1)
    if not dec.eof:
        raise BlobError("zstd frame is truncated or longer than the recorded length")
    return out


class BlobError(Exception):
    """A stored blob cannot be decoded."""


def max_plain_length(kind: int, chunk_size: int = MAX_CHUNK_SIZE, fanout: int = MAX_FANOUT) -> int:
    """Largest plain length a blob of `kind` can have in a repository with these parameters."""
    return chunk_size if kind == KIND_DATA else max_node_bytes(fanout)


def entry_problem(
    kind: int, length: int, plain_length: int, chunk_size: int = MAX_CHUNK_SIZE,
    fanout: int = MAX_FANOUT,
) -> str | None:
    """Why a blob location (from a TOC or an index) is impossible, or None.

    A writer stores raw bytes when zstd does not shrink them, so the stored length is at most
    1 (type byte) + plain_length + the seal's 28 bytes."""
    if kind not in (KIND_DATA, KIND_TREE):
        return f"unknown blob kind {kind}"
    limit = max_plain_length(kind, chunk_size, fanout)
    if plain_length > limit:
        what = "the chunk size" if kind == KIND_DATA else "the largest tree node"
        return f"plain length {plain_length} exceeds {what} ({limit})"
    if length > plain_length + 1 + SEAL_OVERHEAD:
        return f"stored length {length} exceeds plain length {plain_length} + {1 + SEAL_OVERHEAD}"
    return None


PROBE_BYTES = 16 << 10
PROBE_MIN_SAVING = 0.03
_RAW = bytes([TYPE_RAW])
_ZSTD = bytes([TYPE_ZSTD])


def looks_incompressible(plaintext: bytes | memoryview, level: int = 1) -> bool:
    """True if 16 KiB probes at the start, middle and end each save under 3% (random or encrypted
    data). One compressible probe is enough to compress the whole chunk, so a chunk that is
    mostly text with a random block in it is still compressed."""
    n = len(plaintext)
    if n <= 8 * PROBE_BYTES:
        return False
    for off in (0, n // 2, n - PROBE_BYTES):
        probe = plaintext[off : off + PROBE_BYTES]
        if len(_compress(probe, level)) <= PROBE_BYTES * (1 - PROBE_MIN_SAVING):
            return False
    return True


def encode_blob(
    plaintext: bytes | memoryview, blob_id: bytes, enc_key: bytes | None, level: int = 1
) -> bytes:
    """Compress (if it shrinks) and seal one blob."""
    encoded = None
    if not looks_incompressible(plaintext, level):
        compressed = _compress(plaintext, level)
        if len(compressed) < len(plaintext):
            encoded = _ZSTD + compressed
    if encoded is None:
        encoded = _RAW + plaintext
    if enc_key is None:
        return encoded
    return seal(enc_key, encoded, blob_id)


def decode_blob(
    stored: bytes, blob_id: bytes, enc_key: bytes | None, plain_length: int, *,
    limit: int = MAX_PLAIN_LENGTH,
) -> bytes:
    """Open and decompress; raises BlobError. The caller checks the id.

    `limit` is the largest plain length the caller accepts (by default the largest any
    repository can hold; pass `max_plain_length(kind, chunk_size, fanout)` to be exact)."""
    if not 0 <= plain_length <= limit:
        raise BlobError(f"plain length {plain_length} out of range (limit {limit})")
    if len(stored) > plain_length + 1 + SEAL_OVERHEAD:
        raise BlobError(f"stored length {len(stored)} exceeds plain length {plain_length} + 29")
    if enc_key is not None:
        try:
            stored = open_sealed(enc_key, stored, blob_id)
        except OpenFailed as exc:
            raise BlobError(f"blob does not authenticate: {exc}") from None
    if not stored:
        raise BlobError("empty blob")
    kind, body = stored[0], stored[1:]
    if kind == TYPE_RAW:
        data = bytes(body)
    elif kind == TYPE_ZSTD:
        try:
            data = _decompress(body, plain_length)
        except pyzstd.ZstdError as exc:
            raise BlobError(f"zstd: {exc}") from None
    else:
        raise BlobError(f"unknown blob type {kind}")
    if len(data) != plain_length:
        raise BlobError(f"blob length {len(data)} != {plain_length}")
    return data
