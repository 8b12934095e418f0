"""Index files (format.md section 8) and the in-memory blob -> location map."""

from __future__ import annotations

import json
from dataclasses import dataclass

from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.pack import PackEntry


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
        self.files: list[str] = []

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


def decode_index(data: bytes) -> dict[str, list[PackEntry]]:
    """Parse an index file's plaintext; raises ValueError/KeyError on malformed input."""
    doc = json.loads(data)
    if doc.get("format") != 1:
        raise ValueError(f"unsupported index format {doc.get('format')!r}")
    out: dict[str, list[PackEntry]] = {}
    for pack in doc["packs"]:
        out[pack["id"]] = [
            PackEntry(
                int(b["kind"]),
                bytes.fromhex(b["id"]),
                int(b["offset"]),
                int(b["length"]),
                int(b["plain_length"]),
            )
            for b in pack["blobs"]
        ]
    return out
