"""Pure parsing of the repository format (docs/format.md, versions 1 and 2): the JSON objects.

Every function here takes bytes or plain values and returns parsed values or raises
:class:`FormatError`. Nothing here touches a file, a key or the clock. The binary structures
live in :mod:`verify.binary`, object names in :mod:`verify.names`, the reader limits in
:mod:`verify.limits`; they are re-exported here so callers can keep one import.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from .binary import (
    ENTRY_LEN,
    HEADER_LEN,
    NODE_MAGIC,
    PACK_MAGIC,
    PACK_VERSION,
    TOC_MAGIC,
    TRAILER_LEN,
    ZERO_ID,
    Node,
    TocEntry,
    build_node,
    build_toc_plain,
    chunk_count_for,
    chunk_range,
    decode_blob,
    expected_count,
    level_sizes,
    node_coverage,
    parse_node,
    parse_pack_header,
    parse_pack_trailer,
    parse_toc,
)
from .errors import FormatError
from .jsonobj import load_json_object, req_format, req_hex64, req_int, req_list, req_str
from .limits import (
    KIND_CHUNK,
    KIND_NODE,
    MAX_CHUNK_COUNT,
    MAX_CHUNK_SIZE,
    MAX_TREE_FANOUT,
    MIN_CHUNK_SIZE,
    NODE_HEADER_LEN,
    SCRYPT_MAX_MEMORY,
    SCRYPT_MAX_WORK,
    SEAL_OVERHEAD,
)
from .names import (
    AUDIT_SEQ_RE,
    GENERATION_RE,
    HEX32_RE,
    HEX64_RE,
    VOLUME_ID_RE,
    audit_name,
    generation_name,
    is_pack_name,
    pack_name,
    parse_quarantine_name,
    quarantine_name,
)

__all__ = [
    "AAD_GENERATION", "AAD_INDEX", "AAD_KEY", "AAD_TOC", "AUDIT_EVENTS", "AUDIT_SEQ_RE",
    "ENTRY_LEN", "GENERATION_RE", "HEADER_LEN", "HEX32_RE", "HEX64_RE", "KIND_CHUNK",
    "KIND_NODE", "NODE_HEADER_LEN", "NODE_MAGIC", "PACK_MAGIC", "PACK_VERSION", "SEAL_OVERHEAD",
    "TOC_MAGIC", "TRAILER_LEN", "VOLUME_ID_RE", "ZERO_ID", "Config", "FormatError", "IndexBlob",
    "KeyFile", "Node", "Record", "TocEntry", "audit_name", "build_node", "build_toc_plain",
    "chunk_count_for", "chunk_range", "decode_blob", "expected_count", "generation_name",
    "is_pack_name", "level_sizes", "load_json_object", "node_coverage", "pack_name",
    "parse_audit_entry", "parse_config", "parse_index", "parse_key_file", "parse_node",
    "parse_pack_header", "parse_pack_trailer", "parse_quarantine_name", "parse_record",
    "parse_toc", "quarantine_name",
]

AAD_KEY = b"drbdbackup-key-v1"
AAD_TOC = b"drbdbackup-toc-v1"
AAD_INDEX = b"drbdbackup-index-v1"
AAD_GENERATION = b"drbdbackup-generation-v1"

AUDIT_EVENTS = frozenset(
    {"init", "backup", "restore", "verify", "prune", "check", "failure", "quarantine", "lock", "key"}
)


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
    req_format(obj, (1, 2), "config")
    rid = req_hex64(obj, "repository_id", "config")
    cs = req_int(obj, "chunk_size", "config", 1)
    if cs & (cs - 1) or not MIN_CHUNK_SIZE <= cs <= MAX_CHUNK_SIZE:
        raise FormatError(f"config: chunk_size {cs} is not a power of two in [65536, 4194304]")
    fanout = req_int(obj, "tree_fanout", "config", 2, MAX_TREE_FANOUT)
    if obj.get("hash", "blake3") != "blake3":
        raise FormatError(f"config: unsupported hash {obj.get('hash')!r}")
    if obj.get("compression", "zstd") != "zstd":
        raise FormatError(f"config: unsupported compression {obj.get('compression')!r}")
    enc = obj.get("encryption")
    if enc not in ("none", "aes-256-gcm"):
        raise FormatError(f"config: unsupported encryption {enc!r}")
    return Config(rid, cs, fanout, enc)


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
    """Plain index JSON -> blob locations (types checked; bounds are the caller's, per entry)."""
    obj = load_json_object(data, "index")
    req_format(obj, (1,), "index")
    out = []
    for p in req_list(obj, "packs", "index"):
        if not isinstance(p, dict) or not isinstance(p.get("blobs"), list):
            raise FormatError("index: malformed pack entry")
        pid = req_hex64(p, "id", "index pack")
        for b in p["blobs"]:
            if not isinstance(b, dict):
                raise FormatError("index: malformed blob entry")
            kind = req_int(b, "kind", "index blob")
            if kind not in (KIND_CHUNK, KIND_NODE):
                raise FormatError(f"index blob: unknown kind {kind}")
            out.append(
                IndexBlob(
                    pid,
                    bytes.fromhex(req_hex64(b, "id", "index blob")),
                    kind,
                    req_int(b, "offset", "index blob", HEADER_LEN),
                    req_int(b, "length", "index blob", 1, 2**32 - 1),
                    req_int(b, "plain_length", "index blob", 0, 2**32 - 1),
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
    w = "generation record"
    obj = load_json_object(data, w)
    req_format(obj, (1, 2), w)
    size = req_int(obj, "size_bytes", w)
    cs = req_int(obj, "chunk_size", w, 1)
    count = req_int(obj, "chunk_count", w, 0, MAX_CHUNK_COUNT)
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
        repository_id=req_hex64(obj, "repository_id", w),
        volume_id=vid,
        generation=gen,
        size_bytes=size,
        chunk_size=cs,
        chunk_count=count,
        root=bytes.fromhex(req_hex64(obj, "root", w)),
        tree_height=req_int(obj, "tree_height", w, 1, 64),
        created=str(obj.get("created", "")),
        mode=mode,
        raw=obj,
    )


# ---------------------------------------------------------------- audit entries


def parse_audit_entry(data: bytes, seq: int) -> dict[str, Any]:
    """Parse audit entry ``seq`` and check its own fields (not the chain)."""
    what = f"audit entry {seq}"
    obj = load_json_object(data, "audit entry")
    if obj.get("seq") != seq or isinstance(obj.get("seq"), bool):
        raise FormatError(f"{what}: 'seq' field is {obj.get('seq')!r}")
    req_hex64(obj, "prev", what)
    req_str(obj, "time", what)
    event = obj.get("event")
    if not isinstance(event, str) or event not in AUDIT_EVENTS:
        raise FormatError(f"{what}: unknown event {event!r}")
    if not isinstance(obj.get("details", {}), dict):
        raise FormatError(f"{what}: 'details' must be an object")
    rec = obj.get("record")
    if rec is not None:
        if not isinstance(rec, dict):
            raise FormatError(f"{what}: 'record' must be an object")
        req_str(rec, "volume_id", what)
        req_str(rec, "generation", what)
        req_hex64(rec, "sha256", what)
    removed = obj.get("removed")
    if removed is not None and not (isinstance(removed, list)
                                    and all(isinstance(r, str) for r in removed)):
        raise FormatError(f"{what}: 'removed' must be a list of strings")
    if "sealed" in obj:
        req_str(obj, "sealed", what)
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
    obj = load_json_object(data, "key file")
    if obj.get("kdf") != "scrypt":
        raise FormatError(f"key file: unsupported kdf {obj.get('kdf')!r}")
    n = req_int(obj, "n", "key file", 2, 2**20)
    r = req_int(obj, "r", "key file", 1, 32)
    p = req_int(obj, "p", "key file", 1, 16)
    if n & (n - 1):
        raise FormatError("key file: scrypt n is not a power of two")
    if 128 * n * r > SCRYPT_MAX_MEMORY or n * r * p > SCRYPT_MAX_WORK:
        raise FormatError(f"key file: scrypt n={n} r={r} p={p} exceeds the reader limits")
    try:
        salt = base64.b64decode(req_str(obj, "salt", "key file"), validate=True)
        blob = base64.b64decode(req_str(obj, "data", "key file"), validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII string
        raise FormatError("key file: salt/data are not base64") from None
    if not 8 <= len(salt) <= 64:
        raise FormatError("key file: salt length out of range")
    if len(blob) != 64 + SEAL_OVERHEAD:
        raise FormatError("key file: wrapped key has the wrong length")
    return KeyFile(n, r, p, salt, blob)
