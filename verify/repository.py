"""An opened repository: config, keys, the union of index files, quarantine, pack tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container
from dataclasses import dataclass

import blake3

from .errors import FatalIntegrity
from .format import (
    AAD_GENERATION,
    AAD_INDEX,
    AAD_TOC,
    GENERATION_RE,
    HEADER_LEN,
    HEX32_RE,
    HEX64_RE,
    TRAILER_LEN,
    VOLUME_ID_RE,
    Config,
    FormatError,
    IndexBlob,
    Record,
    decode_blob,
    generation_name,
    pack_name,
    parse_config,
    parse_index,
    parse_pack_header,
    parse_pack_trailer,
    parse_quarantine_name,
    parse_record,
    parse_toc,
)
from .keys import Crypto, SealError, unwrap_master_key
from .limits import JSON_MAX_BYTES, SEAL_OVERHEAD, BlobLimits
from .results import Finding
from .store import ObjectMissing, ObjectReader, Store, get_capped


@dataclass
class PackState:
    """Structure verdict for one pack; ``damage`` None means the pack table is sound."""

    packid: str
    damage: str | None = None
    missing: bool = False


class Repository:
    """Read side of one repository, with every repository-wide finding collected."""

    def __init__(self, store: Store, passphrase: str | None) -> None:
        self.store = store
        self.findings: list[Finding] = []
        try:
            self.config: Config = parse_config(get_capped(store, "config", JSON_MAX_BYTES["config"]))
        except ObjectMissing:
            raise FatalIntegrity("repository has no config object") from None
        except FormatError as e:
            raise FatalIntegrity(f"{e}") from None
        self.limits = BlobLimits(self.config.chunk_size, self.config.tree_fanout)
        if self.config.encryption == "none":
            self.crypto = Crypto(None)
        else:
            self.crypto = Crypto(unwrap_master_key(self._key_files(), passphrase))
        self.locations: dict[bytes, list[IndexBlob]] = defaultdict(list)
        self.by_pack: dict[str, list[IndexBlob]] = defaultdict(list)
        self._load_indexes()
        self.quarantined: set[tuple[str, str]] = set()
        for name in store.list("quarantine"):
            q = parse_quarantine_name(name)
            if q:
                self.quarantined.add(q)
        self.packs: dict[str, PackState] = {}

    def _key_files(self) -> list[bytes]:
        """Key files that exist and are within the size limit (others cannot open anything)."""
        out = []
        for name in self.store.list("keys"):
            if HEX32_RE.match(name[len("keys/") :]):
                try:
                    out.append(get_capped(self.store, name, JSON_MAX_BYTES["key file"]))
                except (ObjectMissing, FormatError):
                    continue
        return out

    # ------------------------------------------------------------ indexes

    def _load_indexes(self) -> None:
        cap = JSON_MAX_BYTES["index"] + SEAL_OVERHEAD
        for name in self.store.list("index"):
            iid = name[len("index/") :]
            if not HEX64_RE.match(iid):
                continue
            try:
                stored = get_capped(self.store, name, cap)
            except ObjectMissing:
                continue
            except FormatError as e:
                self.findings.append(Finding("index-unreadable", str(e), object=name))
                continue
            if blake3.blake3(stored).hexdigest() != iid:
                self.findings.append(
                    Finding("index-hash", "index content hash differs from its name; "
                            "its entries are not used", object=name)
                )
                continue
            try:
                blobs = parse_index(self.crypto.open(stored, AAD_INDEX))
            except (SealError, FormatError) as e:
                self.findings.append(Finding("index-unreadable", str(e), object=name))
                continue
            for b in blobs:
                problem = self.limits.problem(b.kind, b.length, b.plain_length)
                if problem:  # kept: reading the copy fails with this reason, naming its pack
                    self.findings.append(Finding("index-entry", f"index lists an impossible blob: "
                                                 f"{problem}", object=name, chunk_id=b.id.hex()))
                self.locations[b.id].append(b)
                self.by_pack[b.pack].append(b)

    # ------------------------------------------------------------ generations

    def generations(self) -> dict[str, list[str]]:
        """volume_id -> generation ids, oldest first."""
        out: dict[str, list[str]] = defaultdict(list)
        for name in self.store.list("generations"):
            parts = name.split("/")
            if len(parts) == 3 and VOLUME_ID_RE.match(parts[1]) and GENERATION_RE.match(parts[2]):
                out[parts[1]].append(parts[2])
        return {v: sorted(g) for v, g in sorted(out.items())}

    def read_record(self, volume_id: str, gen: str) -> Record:
        """Open, parse and cross-check a record; raises FormatError/SealError/ObjectMissing."""
        cap = JSON_MAX_BYTES["generation record"] + SEAL_OVERHEAD
        stored = get_capped(self.store, generation_name(volume_id, gen), cap)
        rec = parse_record(self.crypto.open(stored, AAD_GENERATION))
        if rec.repository_id != self.config.repository_id:
            raise FormatError("repository_id differs from the config's (record from another repository)")
        if rec.volume_id != volume_id or rec.generation != gen:
            raise FormatError("volume_id/generation fields differ from the object name")
        if rec.chunk_size != self.config.chunk_size:
            raise FormatError(f"chunk_size {rec.chunk_size} differs from the config's")
        return rec

    # ------------------------------------------------------------ packs

    def pack_state(self, packid: str) -> PackState:
        """Structure-check a pack once: exists, header, trailer, TOC opens/parses, agrees with index."""
        st = self.packs.get(packid)
        if st is not None:
            return st
        st = PackState(packid)
        self.packs[packid] = st
        try:
            reader = self.store.open(pack_name(packid))
        except ObjectMissing:
            st.damage, st.missing = "pack is missing", True
            return st
        try:
            st.damage = self._check_pack(reader, packid)
        finally:
            reader.close()
        return st

    def _check_pack(self, reader: ObjectReader, packid: str) -> str | None:
        try:
            parse_pack_header(reader.pread(0, HEADER_LEN))
            toc_off, toc_len = parse_pack_trailer(
                reader.pread(max(0, reader.size - TRAILER_LEN), TRAILER_LEN), reader.size
            )
            try:
                plain = self.crypto.open(reader.pread(toc_off, toc_len), AAD_TOC)
            except SealError:
                return "pack TOC does not open (GCM tag mismatch)"
            entries = parse_toc(plain, toc_off, self.limits)
        except FormatError as e:
            return str(e)
        toc = {(e.kind, e.id, e.offset, e.stored_length, e.plain_length) for e in entries}
        for b in self.by_pack.get(packid, []):
            if (b.kind, b.id, b.offset, b.length, b.plain_length) not in toc:
                return f"pack TOC disagrees with the index for blob {b.id.hex()}"
        return None

    def mark_pack_damaged(self, packid: str, reason: str) -> None:
        st = self.packs.setdefault(packid, PackState(packid))
        if st.damage is None:
            st.damage = reason

    def good_locations(self, bid: bytes, bad: Container[tuple[bytes, str]]) -> list[IndexBlob]:
        """Locations of a blob that are not quarantined, not known bad, in a sound pack."""
        out = []
        hexid = None
        for loc in self.locations.get(bid, ()):
            if (bid, loc.pack) in bad:
                continue
            if self.quarantined:
                hexid = hexid or bid.hex()
                if (hexid, loc.pack) in self.quarantined:
                    continue
            if self.pack_state(loc.pack).damage is None:
                out.append(loc)
        return out

    def check_bounds(self, loc: IndexBlob) -> None:
        """Raise FormatError when a location's lengths exceed the repository's limits."""
        problem = self.limits.problem(loc.kind, loc.length, loc.plain_length)
        if problem:
            raise FormatError(f"blob: {problem}")

    def decode(self, loc: IndexBlob, stored: bytes) -> bytes:
        """Stored blob bytes -> verified plaintext; raises FormatError/SealError."""
        self.check_bounds(loc)
        if len(stored) != loc.length:
            raise FormatError(f"blob: read {len(stored)} of {loc.length} bytes (truncated pack?)")
        encoded = self.crypto.open(stored, loc.id)
        plain = decode_blob(encoded, loc.plain_length, self.limits.max_plain(loc.kind))
        if self.crypto.id(plain) != loc.id:
            raise FormatError("blob: content hash differs from its id")
        return plain

    def read_blob_at(self, loc: IndexBlob) -> bytes:
        """pread one blob copy and verify it; raises FormatError/SealError/ObjectMissing."""
        self.check_bounds(loc)
        reader = self.store.open(pack_name(loc.pack))
        try:
            return self.decode(loc, reader.pread(loc.offset, loc.length))
        finally:
            reader.close()
