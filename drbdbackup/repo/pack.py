"""Pack files (format.md section 6): writer to a staged file, and pure TOC parsing.

Parsing checks the TOC's count against its own length (and, with the pack's size, against the
blob area) before building entries, and each entry against the limits of format.md section 17.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
from dataclasses import dataclass

import blake3

from drbdbackup.repo.backend import Backend
from drbdbackup.repo.blob import MAX_CHUNK_SIZE, entry_problem
from drbdbackup.repo.crypto import TOC_AAD, OpenFailed, open_sealed, seal
from drbdbackup.repo.tree import MAX_FANOUT

MAGIC = b"DRBDPACK"
END_MAGIC = b"DRBDTOC1"
VERSION = 1
HEADER_LEN = 16
ENTRY = struct.Struct("<B32sQII")
TRAILER = struct.Struct("<I8s")
TARGET_PACK_BYTES = 32 << 20


@dataclass(frozen=True)
class PackEntry:
    """Where one blob lies in a pack."""

    kind: int
    id: bytes
    offset: int
    length: int
    plain_length: int


class PackFormatError(ValueError):
    """A pack's header, TOC or trailer is malformed."""


def encode_toc(entries: list[PackEntry], enc_key: bytes | None) -> bytes:
    plain = struct.pack("<I", len(entries)) + b"".join(
        ENTRY.pack(e.kind, e.id, e.offset, e.length, e.plain_length) for e in entries
    )
    return plain if enc_key is None else seal(enc_key, plain, TOC_AAD)


def parse_toc(
    toc_stored: bytes, enc_key: bytes | None, *, toc_start: int | None = None,
    chunk_size: int = MAX_CHUNK_SIZE, fanout: int = MAX_FANOUT,
) -> list[PackEntry]:
    """Decode a stored TOC; raises PackFormatError.

    With `toc_start` (where the TOC begins in the pack) every blob must lie in the blob area
    `[16, toc_start)`; `chunk_size`/`fanout` bound each entry's lengths (default: the maxima)."""
    try:
        plain = toc_stored if enc_key is None else open_sealed(enc_key, toc_stored, TOC_AAD)
    except OpenFailed as exc:
        raise PackFormatError(f"pack table of contents does not authenticate: {exc}") from None
    if len(plain) < 4:
        raise PackFormatError("pack table of contents too short")
    (count,) = struct.unpack_from("<I", plain)
    if len(plain) != 4 + count * ENTRY.size:
        raise PackFormatError(f"pack table of contents of {len(plain)} bytes cannot hold {count} entries")
    if count < 1 or (toc_start is not None and count > toc_start - HEADER_LEN):
        raise PackFormatError(f"pack table of contents claims {count} blobs: impossible for this pack")
    entries = []
    for i in range(count):
        e = PackEntry(*ENTRY.unpack_from(plain, 4 + i * ENTRY.size))
        problem = entry_problem(e.kind, e.length, e.plain_length, chunk_size, fanout)
        if problem is None and toc_start is not None and (
            e.offset < HEADER_LEN or e.offset + e.length > toc_start
        ):
            problem = "lies outside the blob area"
        if problem:
            raise PackFormatError(f"pack entry {i} (blob {e.id.hex()}): {problem}")
        entries.append(e)
    return entries


def toc_bounds(trailer: bytes, pack_size: int) -> tuple[int, int]:
    """From a pack's last 12 bytes and its size: (offset, length) of the stored TOC."""
    if pack_size < HEADER_LEN + TRAILER.size or len(trailer) != TRAILER.size:
        raise PackFormatError("pack too short (truncated?)")
    toc_len, end = TRAILER.unpack(trailer)
    if end != END_MAGIC:
        raise PackFormatError("pack trailer magic missing (truncated?)")
    toc_start = pack_size - TRAILER.size - toc_len
    if toc_start < HEADER_LEN:
        raise PackFormatError("pack table of contents length out of range")
    return toc_start, toc_len


def split_pack(
    pack: bytes, enc_key: bytes | None, *, chunk_size: int = MAX_CHUNK_SIZE,
    fanout: int = MAX_FANOUT,
) -> list[PackEntry]:
    """Parse a whole pack's header and trailer and return its TOC entries, bounds-checked."""
    if len(pack) < HEADER_LEN + TRAILER.size or pack[:8] != MAGIC:
        raise PackFormatError("not a pack (bad header)")
    if pack[8] != VERSION:
        raise PackFormatError(f"unsupported pack version {pack[8]}")
    toc_start, toc_len = toc_bounds(pack[-TRAILER.size :], len(pack))
    return parse_toc(pack[toc_start : toc_start + toc_len], enc_key, toc_start=toc_start,
                     chunk_size=chunk_size, fanout=fanout)


class PackWriter:
    """Appends stored blobs to a staged file, hashing as it goes."""

    def __init__(self, staging_dir: str, enc_key: bytes | None) -> None:
        self.enc_key = enc_key
        self.path = os.path.join(staging_dir, f"pack-{secrets.token_hex(8)}.tmp")
        self._f = open(self.path, "wb")  # noqa: SIM115 - closed in finish/abort
        self._hash = blake3.blake3()
        self.entries: list[PackEntry] = []
        self.offset = 0
        self._write(MAGIC + bytes([VERSION]) + secrets.token_bytes(7))

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._hash.update(data)
        self.offset += len(data)

    def add(self, kind: int, blob_id: bytes, stored: bytes, plain_length: int) -> None:
        self.entries.append(PackEntry(kind, blob_id, self.offset, len(stored), plain_length))
        self._write(stored)

    @property
    def full(self) -> bool:
        return self.offset >= TARGET_PACK_BYTES

    def finish(self) -> tuple[str, str, list[PackEntry]]:
        """Write TOC and trailer; return (pack id hex, staged path, entries)."""
        toc = encode_toc(self.entries, self.enc_key)
        self._write(toc)
        self._write(TRAILER.pack(len(toc), END_MAGIC))
        self._f.close()
        return self._hash.hexdigest(), self.path, self.entries

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def pack_name(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


PACK_NAME_RE = re.compile(r"^packs/([0-9a-f]{2})/(\1[0-9a-f]{62})$")


def pack_ids(backend: Backend) -> set[str]:
    """Ids of the objects under packs/ named as packs are (format.md section 6); other names
    in a listing are never read or deleted."""
    return {m.group(2) for n in backend.list("packs/") if (m := PACK_NAME_RE.match(n))}
