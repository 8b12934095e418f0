"""Pure parsing of the binary structures: blob encodings, pack header/trailer/TOC, tree nodes.

Every length or count read here is held against :mod:`verify.limits` before it sizes anything.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import zstandard

from .errors import FormatError
from .limits import (
    DEFAULT_LIMITS,
    ID_LEN,
    KIND_CHUNK,
    KIND_NODE,
    MAX_CHUNK_SIZE,
    MAX_TREE_FANOUT,
    NODE_HEADER_LEN,
    BlobLimits,
)

ZERO_ID = bytes(ID_LEN)
PACK_MAGIC = b"DRBDPACK"
TOC_MAGIC = b"DRBDTOC1"
NODE_MAGIC = b"DRBT"
PACK_VERSION = 1
HEADER_LEN = 16
TRAILER_LEN = 12  # TocLength (u32) + EndMagic (8)
ENTRY_LEN = 49
_ENTRY = struct.Struct("<B32sQII")

# ---------------------------------------------------------------- blobs


def _unzstd(body: bytes, plain_length: int) -> bytes:
    """One zstd frame -> at most ``plain_length + 1`` bytes, whatever its header claims."""
    reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=False)
    out = bytearray()
    try:
        while len(out) <= plain_length:
            piece = reader.read(plain_length + 1 - len(out))
            if not piece:
                break
            out += piece
    except zstandard.ZstdError as e:
        raise FormatError(f"blob: zstd frame does not decode ({e})") from None
    return bytes(out)


def decode_blob(encoded: bytes, plain_length: int, limit: int = MAX_CHUNK_SIZE) -> bytes:
    """``Encoded`` (Type ‖ Body) -> plaintext; checks the plain length (``<= limit`` first)."""
    if plain_length > limit:
        raise FormatError(f"blob: plain_length {plain_length} exceeds the reader limit {limit}")
    if not encoded:
        raise FormatError("blob: empty encoding")
    kind, body = encoded[0], encoded[1:]
    if kind == 0:
        plain = bytes(body)
    elif kind == 1:
        plain = _unzstd(body, plain_length)
    else:
        raise FormatError(f"blob: unknown encoding type 0x{kind:02x}")
    if len(plain) != plain_length:
        raise FormatError(f"blob: plain length {len(plain)} != recorded {plain_length}")
    return plain


# ---------------------------------------------------------------- packs


@dataclass(frozen=True)
class TocEntry:
    """One TOC entry of a pack (section 6)."""

    kind: int
    id: bytes
    offset: int
    stored_length: int
    plain_length: int


def parse_pack_header(header: bytes) -> None:
    """Check the 16-byte pack header."""
    if len(header) < HEADER_LEN:
        raise FormatError("pack: shorter than its header")
    if header[:8] != PACK_MAGIC:
        raise FormatError("pack: bad header magic")
    if header[8] != PACK_VERSION:
        raise FormatError(f"pack: unsupported version {header[8]}")


def parse_pack_trailer(trailer: bytes, pack_size: int) -> tuple[int, int]:
    """Last 12 bytes of a pack -> (toc_offset, toc_length)."""
    if pack_size < HEADER_LEN + TRAILER_LEN or len(trailer) != TRAILER_LEN:
        raise FormatError("pack: too short for header and trailer (truncated?)")
    if trailer[4:] != TOC_MAGIC:
        raise FormatError("pack: bad end magic (truncated?)")
    (toc_len,) = struct.unpack("<I", trailer[:4])
    toc_off = pack_size - TRAILER_LEN - toc_len
    if toc_off < HEADER_LEN:
        raise FormatError(f"pack: TOC length {toc_len} does not fit in the pack")
    return toc_off, toc_len


def parse_toc(plain: bytes, toc_offset: int, limits: BlobLimits = DEFAULT_LIMITS) -> list[TocEntry]:
    """``TocPlain`` -> entries; checks count, order, layout against ``toc_offset``, and limits."""
    if len(plain) < 4:
        raise FormatError("pack TOC: shorter than its count")
    (count,) = struct.unpack_from("<I", plain)
    if count < 1:
        raise FormatError("pack TOC: a pack holds at least one blob")
    if len(plain) != 4 + count * ENTRY_LEN:
        raise FormatError(f"pack TOC: {len(plain)} bytes do not hold {count} entries")
    if count > toc_offset - HEADER_LEN:
        raise FormatError(f"pack TOC: {count} entries do not fit in {toc_offset - HEADER_LEN} bytes")
    entries = []
    end_prev = HEADER_LEN
    for i in range(count):
        kind, bid, off, slen, plen = _ENTRY.unpack_from(plain, 4 + i * ENTRY_LEN)
        if kind not in (KIND_CHUNK, KIND_NODE):
            raise FormatError(f"pack TOC: entry {i} has unknown kind {kind}")
        if off < end_prev or off + slen > toc_offset or slen < 1:
            raise FormatError(f"pack TOC: entry {i} overlaps or lies outside the blob area")
        problem = limits.problem(kind, slen, plen)
        if problem:
            raise FormatError(f"pack TOC: entry {i} (id {bid.hex()}): {problem}")
        end_prev = off + slen
        entries.append(TocEntry(kind, bid, off, slen, plen))
    return entries


def build_toc_plain(entries: list[TocEntry]) -> bytes:
    """Inverse of :func:`parse_toc` (used by tests and tools)."""
    out = [struct.pack("<I", len(entries))]
    for e in entries:
        out.append(_ENTRY.pack(e.kind, e.id, e.offset, e.stored_length, e.plain_length))
    return b"".join(out)


# ---------------------------------------------------------------- tree nodes


@dataclass(frozen=True)
class Node:
    """A parsed tree node (section 7)."""

    level: int
    ids: list[bytes]


def parse_node(data: bytes, fanout: int = MAX_TREE_FANOUT) -> Node:
    """``Node`` bytes -> level and ids; the count is held against ``fanout`` and the bytes."""
    if len(data) < NODE_HEADER_LEN or data[:4] != NODE_MAGIC:
        raise FormatError("tree node: bad magic")
    level = data[4]
    if data[5:8] != bytes(3):
        raise FormatError("tree node: padding is not zero")
    (count,) = struct.unpack_from("<I", data, 8)
    if count > fanout:
        raise FormatError(f"tree node: {count} ids exceed the fanout {fanout}")
    if len(data) != NODE_HEADER_LEN + ID_LEN * count:
        raise FormatError(f"tree node: {len(data)} bytes do not hold {count} ids")
    ids = [data[NODE_HEADER_LEN + ID_LEN * k : NODE_HEADER_LEN + ID_LEN * (k + 1)] for k in range(count)]
    return Node(level, ids)


def build_node(level: int, ids: list[bytes]) -> bytes:
    """Inverse of :func:`parse_node`."""
    return NODE_MAGIC + bytes([level]) + bytes(3) + struct.pack("<I", len(ids)) + b"".join(ids)


def level_sizes(chunk_count: int, fanout: int) -> list[int]:
    """Number of nodes per level, leaves first (a volume of size 0 has one empty leaf)."""
    sizes = [max(1, -(-chunk_count // fanout))]
    while sizes[-1] > 1:
        sizes.append(-(-sizes[-1] // fanout))
    return sizes


def expected_count(level: int, index: int, chunk_count: int, fanout: int) -> int:
    """Number of ids node ``index`` of ``level`` must hold under the construction rule."""
    below = chunk_count if level == 0 else level_sizes(chunk_count, fanout)[level - 1]
    return max(0, min(fanout, below - index * fanout))


def node_coverage(level: int, index: int, chunk_count: int, fanout: int) -> tuple[int, int]:
    """Chunk positions ``[start, end)`` covered by node ``index`` of ``level``."""
    span = fanout ** (level + 1)
    return min(chunk_count, index * span), min(chunk_count, (index + 1) * span)


def chunk_count_for(size: int, chunk_size: int) -> int:
    """``ceil(size / chunk_size)``."""
    return -(-size // chunk_size)


def chunk_range(position: int, size: int, chunk_size: int) -> tuple[int, int]:
    """Volume byte range ``[start, end)`` of chunk ``position``."""
    start = position * chunk_size
    return start, min(start + chunk_size, size)
