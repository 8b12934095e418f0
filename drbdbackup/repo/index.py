"""Index files (format.md section 8) and the in-memory blob -> location map."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from drbdbackup.repo.blob import MAX_CHUNK_SIZE, entry_problem
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.pack import HEADER_LEN, PackEntry
from drbdbackup.repo.records import HEX64_RE, JsonObjectError, load_json_object
from drbdbackup.repo.tree import MAX_FANOUT


@dataclass(frozen=True)
class Location:
    """One stored copy of a blob."""

    pack: str
    offset: int
    length: int
    plain_length: int
    kind: int


class Index:
    """All known blob locations, minus quarantined copies when asked."""

    def __init__(self) -> None:
        self.locations: dict[bytes, list[Location]] = {}
        self.quarantined: set[tuple[bytes, str]] = set()
        self.files: list[str] = []  # index files read
        self.unreadable: dict[str, str] = {}  # index file -> why it was not read

    def add(self, pack: str, entry: PackEntry) -> None:
        loc = Location(pack, entry.offset, entry.length, entry.plain_length, entry.kind)
        locs = self.locations.setdefault(entry.id, [])
        if loc not in locs:
            locs.append(loc)

    def good_locations(self, blob_id: bytes) -> list[Location]:
        return [
            loc
            for loc in self.locations.get(blob_id, ())
            if (blob_id, loc.pack) not in self.quarantined
        ]

    def has_good(self, blob_id: bytes) -> bool:
        """True if the blob has a copy that is not quarantined (safe to dedup against)."""
        return bool(self.good_locations(blob_id))

    def unavailable_positions(self, chunk_ids: list[bytes]) -> list[int]:
        """Chunk positions whose blob has no good copy (zero markers are never stored)."""
        return [
            i for i, cid in enumerate(chunk_ids) if cid != ZERO_ID and not self.has_good(cid)
        ]

    def packs(self) -> set[str]:
        return {loc.pack for locs in self.locations.values() for loc in locs}

    def __len__(self) -> int:
        return len(self.locations)


def encode_index(packs: dict[str, list[PackEntry]]) -> bytes:
    doc = {
        "format": 1,
        "packs": [
            {
                "id": pack_id,
                "blobs": [
                    {
                        "id": e.id.hex(),
                        "kind": e.kind,
                        "offset": e.offset,
                        "length": e.length,
                        "plain_length": e.plain_length,
                    }
                    for e in entries
                ],
            }
            for pack_id, entries in sorted(packs.items())
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


_ENTRY_TEXT = len('{"id":"","kind":,"offset":,"length":,"plain_length":},') + 64
_PACK_TEXT = len('{"id":"","blobs":[]},') + 64


def _entry_text(e: PackEntry) -> int:
    """Length of the entry's JSON in an index file (as encode_index writes it)."""
    return _ENTRY_TEXT + sum(len(str(v)) for v in (e.kind, e.offset, e.length, e.plain_length))


def split_index(
    packs: dict[str, list[PackEntry]], max_bytes: int
) -> list[dict[str, list[PackEntry]]]:
    """`packs` in parts whose index files are at most about `max_bytes` of JSON each (a pack's
    entries may be spread over several parts; at least one entry per part)."""
    parts: list[dict[str, list[PackEntry]]] = [{}]
    used = len('{"format":1,"packs":[]}')
    for pack_id, entries in sorted(packs.items()):
        for e in entries:
            cost = _entry_text(e) + (0 if pack_id in parts[-1] else _PACK_TEXT)
            if used + cost > max_bytes and parts[-1]:
                parts.append({})
                used = len('{"format":1,"packs":[]}')
                cost = _entry_text(e) + _PACK_TEXT
            parts[-1].setdefault(pack_id, []).append(e)
            used += cost
    return [p for p in parts if p]


def _u(doc: dict[str, Any], key: str, bits: int) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise JsonObjectError(f"index file: blob {key} must be an unsigned {bits}-bit integer")
    return value


def _entry(b: object, chunk_size: int, fanout: int) -> PackEntry:
    if not isinstance(b, dict) or not isinstance(b.get("id"), str) or not HEX64_RE.match(b["id"]):
        raise JsonObjectError("index file: a blob entry is not an object with a 64-hex id")
    e = PackEntry(_u(b, "kind", 8), bytes.fromhex(b["id"]), _u(b, "offset", 64),
                  _u(b, "length", 32), _u(b, "plain_length", 32))
    problem = entry_problem(e.kind, e.length, e.plain_length, chunk_size, fanout)
    if problem is None and (e.offset < HEADER_LEN or e.length < 1):
        problem = "lies outside any pack's blob area"
    if problem:
        raise JsonObjectError(f"index file: blob {b['id']}: {problem}")
    return e


def decode_index(
    data: bytes, *, chunk_size: int = MAX_CHUNK_SIZE, fanout: int = MAX_FANOUT
) -> dict[str, list[PackEntry]]:
    """Parse an index file's plaintext; raises ValueError (JsonObjectError) on malformed input:
    too large or deep, wrong types, or an entry beyond the limits of format.md section 17."""
    doc = load_json_object(data, "index file")
    if isinstance(doc.get("format"), bool) or doc.get("format") != 1:
        raise JsonObjectError(f"unsupported index format {doc.get('format')!r}")
    packs = doc.get("packs")
    if not isinstance(packs, list):
        raise JsonObjectError("index file: packs must be a list")
    out: dict[str, list[PackEntry]] = {}
    for pack in packs:
        if not isinstance(pack, dict) or not isinstance(pack.get("blobs"), list):
            raise JsonObjectError("index file: a pack entry is not an object with a blob list")
        pid = pack.get("id")
        if not isinstance(pid, str) or not HEX64_RE.match(pid):
            raise JsonObjectError("index file: a pack id is not 64 hex digits")
        out[pid] = [_entry(b, chunk_size, fanout) for b in pack["blobs"]]
    return out
