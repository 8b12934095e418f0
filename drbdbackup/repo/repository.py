"""The repository: config, keys, index, blob reads and writes, generation records."""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import TYPE_CHECKING

from drbdbackup.errors import (
    IntegrityError,
    NotARepository,
    ObjectNotFound,
    PasswordRequired,
    RepositoryExists,
    UnknownGeneration,
    UnknownVolume,
    UsageError,
    WrongPassword,
)
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.blob import BlobError, decode_blob, max_plain_length
from drbdbackup.repo.capped import read_capped
from drbdbackup.repo.config import (
    DEFAULT_CHUNK,
    ENCRYPTIONS,
    FORMAT_VERSION,
    parse_config,
    validate_chunk_size,
)
from drbdbackup.repo.crypto import (
    GENERATION_AAD,
    INDEX_AAD,
    ZERO_ID,
    Hasher,
    MasterKey,
    OpenFailed,
    open_sealed,
    plain_hash,
    seal,
    unwrap_master_key,
    wrap_master_key,
)
from drbdbackup.repo.index import Index, decode_index, encode_index, split_index
from drbdbackup.repo.pack import PackEntry, pack_name
from drbdbackup.repo.records import (
    GENERATION_RE,
    VOLUME_ID_RE,
    GenerationRecord,
    JsonObjectError,
    check_volume_id,
    iso,
    now,
    record_name,
)
from drbdbackup.repo.tree import DEFAULT_FANOUT, decode_node, read_chunk_ids

if TYPE_CHECKING:
    from drbdbackup.repo.blobwriter import BlobWriter

QUARANTINE_RE = re.compile(r"^(?P<blob>[0-9a-f]{64})-(?P<pack>[0-9a-f]{64})$")  # format.md section 11
INDEX_NAME_RE = re.compile(r"^index/[0-9a-f]{64}$")
KEY_NAME_RE = re.compile(r"^keys/[0-9a-f]{32}$")
INDEX_SPLIT_BYTES = 64 << 20  # writers split index files here (format.md section 17)
log = logging.getLogger("drbdbackup")


class Repository:
    """An opened repository. Not thread-safe for writes; reads may run in worker threads."""

    def __init__(self, backend: Backend, config: dict, master: MasterKey | None) -> None:
        self.backend = backend
        self.config = config
        self.master = master
        self.enc_key = master.enc_key if master else None
        self.hasher = Hasher(master.id_key if master else None)
        self.chunk_size: int = config["chunk_size"]
        self.fanout: int = config.get("tree_fanout", DEFAULT_FANOUT)
        self.id: str = config["repository_id"]
        self.index = Index()

    # ---- creating and opening -------------------------------------------------------------

    @classmethod
    def init(
        cls,
        backend: Backend,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        encryption: str = "none",
        passphrase: str | None = None,
    ) -> Repository:
        validate_chunk_size(chunk_size)
        if encryption not in ENCRYPTIONS:
            raise UsageError(f"unknown encryption {encryption!r}: use none or aes-256-gcm")
        if backend.exists("config"):
            raise RepositoryExists(f"a repository already exists at {backend.location}")
        master = None
        created = iso(now())
        if encryption != "none":
            if not passphrase:
                raise PasswordRequired(
                    "encryption needs a passphrase: set DRBDBACKUP_PASSWORD or --password-file"
                )
            master = MasterKey.generate()
            keyfile = wrap_master_key(master, passphrase, created)
            backend.put(f"keys/{secrets.token_hex(16)}", json.dumps(keyfile).encode())
        config = {
            "format": FORMAT_VERSION,
            "repository_id": secrets.token_hex(32),
            "created": created,
            "chunk_size": chunk_size,
            "tree_fanout": DEFAULT_FANOUT,
            "hash": "blake3",
            "compression": "zstd",
            "encryption": encryption,
        }
        backend.put("config", json.dumps(config, indent=1).encode(), exclusive=True)
        return cls(backend, config, master)

    @classmethod
    def open(cls, backend: Backend, passphrase: str | None = None) -> Repository:
        try:
            raw = read_capped(backend, "config", "config")
        except ObjectNotFound:
            raise NotARepository(f"{backend.location} is not a drbdbackup repository") from None
        except JsonObjectError as exc:
            raise IntegrityError(f"repository config at {backend.location} is damaged: {exc}") from None
        config = parse_config(raw, backend.location)
        master = None
        if config.get("encryption", "none") != "none":
            if not passphrase:
                raise PasswordRequired(
                    "repository is encrypted: set DRBDBACKUP_PASSWORD or --password-file"
                )
            master = _open_any_key(backend, passphrase)
        return cls(backend, config, master)

    def ensure_current_format(self) -> None:
        """Before writing a generation: migrate a version-1 config in place (format.md section 3)."""
        if self.config["format"] != FORMAT_VERSION:
            self.config = {**self.config, "format": FORMAT_VERSION}
            self.backend.put("config", json.dumps(self.config, indent=1).encode())

    # ---- index ----------------------------------------------------------------------------

    def load_index(self, *, warn: bool = False) -> Index:
        """Read every index file and every quarantine record.

        An index file that does not read (damaged, too large or deep, not named by its hash) is
        a finding, not an error: it lands in `index.unreadable` with its reason (logged as a
        warning with `warn`), and the blobs only it lists count as missing: a generation that
        needs one fails naming the file, writers store such blobs again, and prune refuses to
        run (it would drop the file's references)."""
        index = Index()
        for name in self.backend.list("index/"):
            if not INDEX_NAME_RE.match(name):
                continue  # not an index file's name (format.md section 2): never read
            try:
                packs = self.read_index_file(name)
            except ObjectNotFound:
                continue  # removed since the listing (a prune replaced it)
            except IntegrityError as exc:
                index.unreadable[name] = str(exc)
                if warn:
                    log.warning("%s; blobs only it lists count as missing", exc)
                continue
            for pack_id, entries in packs.items():
                for e in entries:
                    index.add(pack_id, e)
            index.files.append(name)
        for name in self.backend.list("quarantine/"):
            m = QUARANTINE_RE.match(name.rsplit("/", 1)[-1])
            if m:
                index.quarantined.add((bytes.fromhex(m.group("blob")), m.group("pack")))
        self.index = index
        return index

    def read_index_file(self, name: str) -> dict[str, list[PackEntry]]:
        """One index file, bounded and checked against this repository's limits; raises
        IntegrityError naming it when it is damaged."""
        try:
            raw = read_capped(self.backend, name, "index file", sealed=self.enc_key is not None)
        except JsonObjectError as exc:
            raise IntegrityError(f"index file {name} is unreadable: {exc}") from None
        if plain_hash(raw).hex() != name.rsplit("/", 1)[-1]:
            raise IntegrityError(f"index file {name} is unreadable: it does not match its name")
        try:
            plain = raw if self.enc_key is None else open_sealed(self.enc_key, raw, INDEX_AAD)
            return decode_index(plain, chunk_size=self.chunk_size, fanout=self.fanout)
        except (OpenFailed, ValueError) as exc:
            raise IntegrityError(f"index file {name} is unreadable: {exc}") from None

    def write_index_file(self, packs: dict[str, list[PackEntry]]) -> str:
        """One index file listing `packs` (callers with many entries use write_index_files)."""
        plain = encode_index(packs)
        stored = plain if self.enc_key is None else seal(self.enc_key, plain, INDEX_AAD)
        name = f"index/{plain_hash(stored).hex()}"
        self.backend.put(name, stored)
        return name

    def write_index_files(
        self, packs: dict[str, list[PackEntry]], max_bytes: int | None = None
    ) -> list[str]:
        """Index files listing `packs`, each at most about `max_bytes` (by default
        INDEX_SPLIT_BYTES) of plain JSON."""
        parts = split_index(packs, max_bytes or INDEX_SPLIT_BYTES)
        return [self.write_index_file(part) for part in parts]

    def unreadable_note(self) -> str:
        """'index file X is unreadable: why' (and how many more), for messages about missing
        blobs; empty when every index file reads."""
        if not self.index.unreadable:
            return ""
        name = min(self.index.unreadable)
        more = len(self.index.unreadable) - 1
        return self.index.unreadable[name] + (f" (and {more} more index file(s))" if more else "")

    # ---- blobs ----------------------------------------------------------------------------

    def read_blob(self, blob_id: bytes) -> bytes:
        """Load, decode and verify a blob from its first good location."""
        locations = self.index.good_locations(blob_id)
        if not locations:
            raise IntegrityError(self._missing(f"blob {blob_id.hex()}", blob_id))
        errors = []
        for loc in locations:
            try:
                stored = self.backend.get_range(pack_name(loc.pack), loc.offset, loc.length)
                limit = max_plain_length(loc.kind, self.chunk_size, self.fanout)
                data = decode_blob(stored, blob_id, self.enc_key, loc.plain_length, limit=limit)
            except (BlobError, ObjectNotFound) as exc:
                errors.append(f"pack {loc.pack}: {exc}")
                continue
            if self.hasher.id(data) != blob_id:
                errors.append(f"pack {loc.pack}: content does not match id")
                continue
            return data
        raise IntegrityError(f"blob {blob_id.hex()} is damaged: {'; '.join(errors)}")

    def _missing(self, what: str, blob_id: bytes) -> str:
        """The one line for a blob without a good copy; it names the unreadable index files
        when no readable one lists the blob (its data may depend on them)."""
        if blob_id not in self.index.locations and self.index.unreadable:
            return f"{what} is listed by no readable index file; {self.unreadable_note()}"
        return f"{what} is missing from the repository"

    def writer(self) -> BlobWriter:
        from drbdbackup.repo.blobwriter import BlobWriter

        return BlobWriter(self)

    # ---- generations ----------------------------------------------------------------------

    def volumes(self) -> list[str]:
        names = (n.split("/") for n in self.backend.list("generations/"))
        return sorted({p[1] for p in names if len(p) == 3 and VOLUME_ID_RE.match(p[1])})

    def generation_ids(self, volume_id: str) -> list[str]:
        prefix = f"generations/{volume_id}/"
        return sorted(
            n[len(prefix) :] for n in self.backend.list(prefix) if GENERATION_RE.match(n[len(prefix) :])
        )

    def read_record(self, volume_id: str, generation: str) -> GenerationRecord:
        name = record_name(volume_id, generation)
        try:
            raw = read_capped(self.backend, name, "generation record", sealed=self.enc_key is not None)
        except ObjectNotFound:
            raise UnknownGeneration(f"no generation {generation} for volume {volume_id}") from None
        except JsonObjectError as exc:
            raise IntegrityError(f"generation record {name} is damaged: {exc}") from None
        try:
            plain = raw if self.enc_key is None else open_sealed(self.enc_key, raw, GENERATION_AAD)
            rec = GenerationRecord.from_json(plain)
        except (OpenFailed, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"generation record {name} is damaged: {exc}") from None
        if rec.repository_id != self.id or rec.volume_id != volume_id or rec.generation != generation:
            raise IntegrityError(f"generation record {name} does not belong here (ids mismatch)")
        if rec.chunk_size != self.chunk_size:
            raise IntegrityError(f"generation record {name} is damaged: chunk_size {rec.chunk_size} "
                                 f"differs from the repository's {self.chunk_size}")
        return rec

    def write_record(self, rec: GenerationRecord) -> None:
        plain = rec.to_json()
        stored = plain if self.enc_key is None else seal(self.enc_key, plain, GENERATION_AAD)
        self.backend.put(record_name(rec.volume_id, rec.generation), stored)

    def resolve_generation(self, volume_id: str, generation: str | None) -> GenerationRecord:
        check_volume_id(volume_id)
        gens = self.generation_ids(volume_id)
        if not gens:
            raise UnknownVolume(f"volume {volume_id} has no generations in this repository")
        if generation in (None, "latest"):
            return self.read_record(volume_id, gens[-1])
        if generation not in gens:
            raise UnknownGeneration(f"no generation {generation} for volume {volume_id}")
        return self.read_record(volume_id, generation)

    def latest_record(self, volume_id: str) -> GenerationRecord | None:
        """The newest generation's record, or None when there is none or it does not read."""
        gens = self.generation_ids(volume_id)
        if not gens:
            return None
        try:
            return self.read_record(volume_id, gens[-1])
        except IntegrityError:
            return None

    def chunk_ids(self, rec: GenerationRecord) -> list[bytes]:
        """The generation's chunk-id list, read from its tree (at most `chunk_count` ids).

        While an index file is unreadable, a generation with a chunk no readable index file
        lists is refused naming that file: its data may depend on it."""
        label = f"{rec.volume_id}/{rec.generation}"
        try:
            ids = read_chunk_ids(bytes.fromhex(rec.root), rec.tree_height, self.read_blob,
                                 fanout=self.fanout, chunk_count=rec.chunk_count)
        except ValueError as exc:
            raise IntegrityError(f"tree of {label} is damaged: {exc}") from None
        if len(ids) != rec.chunk_count:
            raise IntegrityError(
                f"tree of {label} lists {len(ids)} chunks, record says {rec.chunk_count}"
            )
        if self.index.unreadable:
            self._refuse_unlisted(ids, rec, label)
        return ids

    def _refuse_unlisted(self, ids: list[bytes], rec: GenerationRecord, label: str) -> None:
        known = self.index.locations
        unlisted = [i for i, cid in enumerate(ids) if cid != ZERO_ID and cid not in known]
        if unlisted:
            raise IntegrityError(
                f"{len(unlisted)} chunk(s) of {label} are listed by no readable index file, "
                f"first at byte offset {unlisted[0] * rec.chunk_size}; {self.unreadable_note()}"
            )

    def chunk_ids_of_leaf(self, node_id: bytes) -> list[bytes]:
        try:
            level, ids = decode_node(self.read_blob(node_id), self.fanout)
        except ValueError as exc:
            raise IntegrityError(f"tree node {node_id.hex()} is damaged: {exc}") from None
        if level != 0:
            raise IntegrityError(f"tree node {node_id.hex()} is not a leaf")
        return ids


def _open_any_key(backend: Backend, passphrase: str) -> MasterKey:
    names = [n for n in backend.list("keys/") if KEY_NAME_RE.match(n)]
    if not names:
        raise IntegrityError("repository is encrypted but has no key files")
    damaged: list[str] = []
    for name in names:
        try:
            return unwrap_master_key(read_capped(backend, name, "key file"), passphrase)
        except OpenFailed:
            continue
        except ValueError as exc:  # too large, too deep, malformed, absurd scrypt parameters
            damaged.append(f"{name}: {exc}")
        except ObjectNotFound:
            continue
    why = f" ({len(damaged)} key file(s) damaged, first {damaged[0]})" if damaged else ""
    raise WrongPassword(f"wrong passphrase: no key file of this repository opens with it{why}")
