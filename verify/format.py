"""Pure parsing of the repository format (docs/format.md, version 1).

Every function here takes bytes or plain values and returns parsed values or raises
:class:`FormatError`. Nothing here touches a file, a key or the clock.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import zstandard

ZERO_ID = bytes(32)
PACK_MAGIC = b"DRBDPACK"
TOC_MAGIC = b"DRBDTOC1"
NODE_MAGIC = b"DRBT"
PACK_VERSION = 1
HEADER_LEN = 16
TRAILER_LEN = 12  # TocLength (u32) + EndMagic (8)
ENTRY_LEN = 49
NODE_HEADER_LEN = 12
SEAL_OVERHEAD = 28
KIND_CHUNK = 0
KIND_NODE = 1

AAD_KEY = b"drbdbackup-key-v1"
AAD_TOC = b"drbdbackup-toc-v1"
AAD_INDEX = b"drbdbackup-index-v1"
AAD_GENERATION = b"drbdbackup-generation-v1"

HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")
VOLUME_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
GENERATION_RE = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}$")
AUDIT_SEQ_RE = re.compile(r"^\d{12}$")
AUDIT_EVENTS = frozenset(
    {"init", "backup", "restore", "verify", "prune", "check", "failure", "quarantine"}
)


class FormatError(ValueError):
    """Bytes that do not follow docs/format.md."""


# ---------------------------------------------------------------- object names


def is_pack_name(name: str) -> bool:
    """``packs/<id[0:2]>/<packid>``."""
    parts = name.split("/")
    return (
        len(parts) == 3
        and parts[0] == "packs"
        and bool(HEX64_RE.match(parts[2]))
        and parts[1] == parts[2][:2]
    )


def pack_name(packid: str) -> str:
    """Object name of a pack."""
    return f"packs/{packid[:2]}/{packid}"


def generation_name(volume_id: str, gen: str) -> str:
    """Object name of a generation record."""
    return f"generations/{volume_id}/{gen}"


def audit_name(seq: int) -> str:
    """Object name of audit entry ``seq``."""
    return f"audit/{seq:012d}"


def quarantine_name(chunk_id: str, packid: str) -> str:
    """Object name of a quarantine record."""
    return f"quarantine/{chunk_id}-{packid}"


def parse_quarantine_name(name: str) -> tuple[str, str] | None:
    """``quarantine/<id>-<packid>`` -> (id, packid), or None if not such a name."""
    if not name.startswith("quarantine/"):
        return None
    rest = name[len("quarantine/") :]
    if len(rest) != 129 or rest[64] != "-":
        return None
    cid, pid = rest[:64], rest[65:]
    if HEX64_RE.match(cid) and HEX64_RE.match(pid):
        return cid, pid
    return None


# ---------------------------------------------------------------- JSON helpers


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Decode UTF-8 JSON that must be an object."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{what}: not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: JSON is not an object")
    return obj


def _int(obj: dict[str, Any], key: str, what: str, minimum: int = 0) -> int:
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise FormatError(f"{what}: {key!r} must be an integer >= {minimum}")
    return v


def _hex64(obj: dict[str, Any], key: str, what: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not HEX64_RE.match(v):
        raise FormatError(f"{what}: {key!r} must be 64 lower-case hex characters")
    return v


# ---------------------------------------------------------------- config


@dataclass(frozen=True)
class Config:
    """Parsed ``config`` object (section 3)."""

    repository_id: str
    chunk_size: int
    tree_fanout: int
    encryption: str


def parse_config(data: bytes) -> Config:
    """Parse and validate ``config``."""
    obj = load_json_object(data, "config")
    if obj.get("format") not in (1, 2):
        raise FormatError(f"config: unsupported format {obj.get('format')!r} (this reader knows 1 and 2)")
    rid = _hex64(obj, "repository_id", "config")
    cs = _int(obj, "chunk_size", "config", 1)
    if cs & (cs - 1) or not 65536 <= cs <= 4194304:
        raise FormatError(f"config: chunk_size {cs} is not a power of two in [65536, 4194304]")
    fanout = _int(obj, "tree_fanout", "config", 2)
    if obj.get("hash", "blake3") != "blake3":
        raise FormatError(f"config: unsupported hash {obj.get('hash')!r}")
    if obj.get("compression", "zstd") != "zstd":
        raise FormatError(f"config: unsupported compression {obj.get('compression')!r}")
    enc = obj.get("encryption")
    if enc not in ("none", "aes-256-gcm"):
        raise FormatError(f"config: unsupported encryption {enc!r}")
    return Config(rid, cs, fanout, enc)


# ---------------------------------------------------------------- blobs


def decode_blob(encoded: bytes, plain_length: int) -> bytes:
    """``Encoded`` (Type ‖ Body) -> plaintext; checks the plain length."""
    if not encoded:
        raise FormatError("blob: empty encoding")
    kind, body = encoded[0], encoded[1:]
    if kind == 0:
        plain = bytes(body)
    elif kind == 1:
        try:
            plain = zstandard.ZstdDecompressor().decompress(body, max_output_size=plain_length)
        except zstandard.ZstdError as e:
            raise FormatError(f"blob: zstd frame does not decode ({e})") from None
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


def parse_toc(plain: bytes, toc_offset: int) -> list[TocEntry]:
    """``TocPlain`` -> entries; checks count, order and layout against ``toc_offset``."""
    if len(plain) < 4:
        raise FormatError("pack TOC: shorter than its count")
    (count,) = struct.unpack_from("<I", plain)
    if count < 1:
        raise FormatError("pack TOC: a pack holds at least one blob")
    if len(plain) != 4 + count * ENTRY_LEN:
        raise FormatError(f"pack TOC: {len(plain)} bytes do not hold {count} entries")
    entries = []
    end_prev = HEADER_LEN
    for i in range(count):
        kind, bid, off, slen, plen = struct.unpack_from("<B32sQII", plain, 4 + i * ENTRY_LEN)
        if kind not in (KIND_CHUNK, KIND_NODE):
            raise FormatError(f"pack TOC: entry {i} has unknown kind {kind}")
        if off < end_prev or off + slen > toc_offset or slen < 1:
            raise FormatError(f"pack TOC: entry {i} overlaps or lies outside the blob area")
        end_prev = off + slen
        entries.append(TocEntry(kind, bid, off, slen, plen))
    return entries


def build_toc_plain(entries: list[TocEntry]) -> bytes:
    """Inverse of :func:`parse_toc` (used by tests and tools)."""
    out = [struct.pack("<I", len(entries))]
    for e in entries:
        out.append(struct.pack("<B32sQII", e.kind, e.id, e.offset, e.stored_length, e.plain_length))
    return b"".join(out)


# ---------------------------------------------------------------- tree nodes


@dataclass(frozen=True)
class Node:
    """A parsed tree node (section 7)."""

    level: int
    ids: list[bytes]


def parse_node(data: bytes) -> Node:
    """``Node`` bytes -> level and ids."""
    if len(data) < NODE_HEADER_LEN or data[:4] != NODE_MAGIC:
        raise FormatError("tree node: bad magic")
    level = data[4]
    if data[5:8] != bytes(3):
        raise FormatError("tree node: padding is not zero")
    (count,) = struct.unpack_from("<I", data, 8)
    if len(data) != NODE_HEADER_LEN + 32 * count:
        raise FormatError(f"tree node: {len(data)} bytes do not hold {count} ids")
    ids = [data[NODE_HEADER_LEN + 32 * k : NODE_HEADER_LEN + 32 * (k + 1)] for k in range(count)]
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


# ---------------------------------------------------------------- index files


@dataclass(frozen=True)
class IndexBlob:
    """One blob location listed by an index file (section 8)."""

    pack: str
    id: bytes
    kind: int
    offset: int
    length: int
    plain_length: int


def parse_index(data: bytes) -> list[IndexBlob]:
    """Plain index JSON -> blob locations."""
    obj = load_json_object(data, "index")
    if obj.get("format") != 1:
        raise FormatError(f"index: unsupported format {obj.get('format')!r}")
    packs = obj.get("packs")
    if not isinstance(packs, list):
        raise FormatError("index: 'packs' must be a list")
    out = []
    for p in packs:
        if not isinstance(p, dict) or not isinstance(p.get("blobs"), list):
            raise FormatError("index: malformed pack entry")
        pid = _hex64(p, "id", "index pack")
        for b in p["blobs"]:
            if not isinstance(b, dict):
                raise FormatError("index: malformed blob entry")
            kind = _int(b, "kind", "index blob")
            if kind not in (KIND_CHUNK, KIND_NODE):
                raise FormatError(f"index blob: unknown kind {kind}")
            out.append(
                IndexBlob(
                    pid,
                    bytes.fromhex(_hex64(b, "id", "index blob")),
                    kind,
                    _int(b, "offset", "index blob", HEADER_LEN),
                    _int(b, "length", "index blob", 1),
                    _int(b, "plain_length", "index blob"),
                )
            )
    return out


# ---------------------------------------------------------------- generation records


@dataclass(frozen=True)
class Record:
    """The fields of a generation record this reader relies on (section 9)."""

    repository_id: str
    volume_id: str
    generation: str
    size_bytes: int
    chunk_size: int
    chunk_count: int
    root: bytes
    tree_height: int
    created: str
    mode: str
    raw: dict[str, Any]


def parse_record(data: bytes) -> Record:
    """Plain record JSON -> :class:`Record` (self-consistency checked; cross-checks are the caller's)."""
    obj = load_json_object(data, "generation record")
    w = "generation record"
    if obj.get("format") not in (1, 2):
        raise FormatError(f"{w}: unsupported format {obj.get('format')!r}")
    size = _int(obj, "size_bytes", w)
    cs = _int(obj, "chunk_size", w, 1)
    count = _int(obj, "chunk_count", w)
    if count != chunk_count_for(size, cs):
        raise FormatError(f"{w}: chunk_count {count} != ceil({size} / {cs})")
    vid, gen = obj.get("volume_id"), obj.get("generation")
    if not isinstance(vid, str) or not VOLUME_ID_RE.match(vid):
        raise FormatError(f"{w}: bad volume_id")
    if not isinstance(gen, str) or not GENERATION_RE.match(gen):
        raise FormatError(f"{w}: bad generation")
    mode = obj.get("mode")
    if mode not in ("full", "incremental"):
        raise FormatError(f"{w}: bad mode {mode!r}")
    return Record(
        repository_id=_hex64(obj, "repository_id", w),
        volume_id=vid,
        generation=gen,
        size_bytes=size,
        chunk_size=cs,
        chunk_count=count,
        root=bytes.fromhex(_hex64(obj, "root", w)),
        tree_height=_int(obj, "tree_height", w, 1),
        created=str(obj.get("created", "")),
        mode=mode,
        raw=obj,
    )


# ---------------------------------------------------------------- audit entries


def parse_audit_entry(data: bytes, seq: int) -> dict[str, Any]:
    """Parse audit entry ``seq`` and check its own fields (not the chain)."""
    obj = load_json_object(data, f"audit entry {seq}")
    if obj.get("seq") != seq:
        raise FormatError(f"audit entry {seq}: 'seq' field is {obj.get('seq')!r}")
    _hex64(obj, "prev", f"audit entry {seq}")
    if obj.get("event") not in AUDIT_EVENTS:
        raise FormatError(f"audit entry {seq}: unknown event {obj.get('event')!r}")
    return obj


# ---------------------------------------------------------------- key files


@dataclass(frozen=True)
class KeyFile:
    """Parsed ``keys/<keyid>`` (section 4.1)."""

    n: int
    r: int
    p: int
    salt: bytes
    data: bytes


def parse_key_file(data: bytes) -> KeyFile:
    """Parse a key file; bounds scrypt parameters so a damaged file cannot exhaust memory."""
    import base64
    import binascii

    obj = load_json_object(data, "key file")
    if obj.get("kdf") != "scrypt":
        raise FormatError(f"key file: unsupported kdf {obj.get('kdf')!r}")
    n, r, p = (_int(obj, k, "key file", 1) for k in ("n", "r", "p"))
    if n & (n - 1) or n < 2 or n > 2**20 or r > 32 or p > 16:
        raise FormatError("key file: scrypt parameters out of range")
    try:
        salt = base64.b64decode(obj["salt"], validate=True)
        blob = base64.b64decode(obj["data"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise FormatError("key file: salt/data are not base64") from None
    if len(blob) != 64 + SEAL_OVERHEAD:
        raise FormatError("key file: wrapped key has the wrong length")
    return KeyFile(n, r, p, salt, blob)
