"""Blob encoding (format.md section 5): type byte, optional zstd, optional seal."""

from __future__ import annotations

import threading

import zstandard

from drbdbackup.repo.crypto import OpenFailed, open_sealed, seal

TYPE_RAW = 0x00
TYPE_ZSTD = 0x01
KIND_DATA = 0
KIND_TREE = 1

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    comp = getattr(_local, "comp", None)
    if comp is None or _local.level != level:
        comp = _local.comp = zstandard.ZstdCompressor(level=level, write_content_size=True)
        _local.level = level
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "dec", None)
    if dec is None:
        dec = _local.dec = zstandard.ZstdDecompressor()
    return dec


class BlobError(Exception):
    """A stored blob cannot be decoded."""


def encode_blob(
    plaintext: bytes | memoryview, blob_id: bytes, enc_key: bytes | None, level: int = 1
) -> bytes:
    """Compress (if it shrinks) and seal one blob."""
    compressed = _compressor(level).compress(plaintext)
    if len(compressed) < len(plaintext):
        encoded = bytes([TYPE_ZSTD]) + compressed
    else:
        encoded = bytes([TYPE_RAW]) + bytes(plaintext)
    if enc_key is None:
        return encoded
    return seal(enc_key, encoded, blob_id)


def decode_blob(stored: bytes, blob_id: bytes, enc_key: bytes | None, plain_length: int) -> bytes:
    """Open and decompress; raises BlobError. The caller checks the id."""
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
            data = _decompressor().decompress(body, max_output_size=plain_length)
        except zstandard.ZstdError as exc:
            raise BlobError(f"zstd: {exc}") from None
    else:
        raise BlobError(f"unknown blob type {kind}")
    if len(data) != plain_length:
        raise BlobError(f"blob length {len(data)} != {plain_length}")
    return data
