"""The repository: config, keys, index, blob reads and writes, generation records."""

from __future__ import annotations

import json
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
    UnsupportedFormat,
    UsageError,
    WrongPassword,
)
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.blob import BlobError, decode_blob
from drbdbackup.repo.crypto import (
    GENERATION_AAD,
    INDEX_AAD,
    Hasher,
    MasterKey,
    OpenFailed,
    open_sealed,
    plain_hash,
    seal,
    unwrap_master_key,
    wrap_master_key,
)
from drbdbackup.repo.index import Index, decode_index, encode_index
from drbdbackup.repo.pack import PackEntry, pack_name
from drbdbackup.repo.records import (
    GENERATION_RE,
    GenerationRecord,
    check_volume_id,
    iso,
    now,
    record_name,
)
from drbdbackup.repo.tree import DEFAULT_FANOUT, decode_node, read_chunk_ids

if TYPE_CHECKING:
    from drbdbackup.repo.blobwriter import BlobWriter

FORMAT_VERSION = 2  # what new repositories get (format.md section 3)
READABLE_FORMATS = (1, 2)
MIN_CHUNK, MAX_CHUNK, DEFAULT_CHUNK = 64 << 10, 4 << 20, 1 << 20
ENCRYPTIONS = ("none", "aes-256-gcm")
QUARANTINE_RE = re.compile(r"^(?P<blob>[0-9a-f]{64})-(?P<pack>[0-9a-f]{64})$")  # format.md section 11


def validate_chunk_size(size: int) -> int:
    if size < MIN_CHUNK or size > MAX_CHUNK or size & (size - 1):
        raise UsageError(
            f"chunk size {size} out of range: a power of two from 64KiB to 4MiB is required"
        )
    return size


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
            raw = backend.get("config")
        except ObjectNotFound:
            raise NotARepository(f"{backend.location} is not a drbdbackup repository") from None
        try:
            config = json.loads(raw)
            fmt = config["format"]
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"repository config at {backend.location} is damaged") from None
        if fmt not in READABLE_FORMATS:
            raise UnsupportedFormat(
                f"repository format {fmt!r} is not supported (this build reads formats "
                f"{', '.join(map(str, READABLE_FORMATS))})"
            )
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

    def load_index(self) -> Index:
        """Read every index file and every quarantine record."""
        index = Index()
        for name in self.backend.list("index/"):
            for pack_id, entries in self.read_index_file(name).items():
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
        raw = self.backend.get(name)
        if plain_hash(raw).hex() != name.rsplit("/", 1)[-1]:
            raise IntegrityError(f"index file {name} does not match its name (damaged)")
        try:
            plain = raw if self.enc_key is None else open_sealed(self.enc_key, raw, INDEX_AAD)
            return decode_index(plain)
        except (OpenFailed, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"index file {name} is damaged: {exc}") from None

    def write_index_file(self, packs: dict[str, list[PackEntry]]) -> str:
        plain = encode_index(packs)
        stored = plain if self.enc_key is None else seal(self.enc_key, plain, INDEX_AAD)
        name = f"index/{plain_hash(stored).hex()}"
        self.backend.put(name, stored)
        return name

    # ---- blobs ----------------------------------------------------------------------------

    def read_blob(self, blob_id: bytes) -> bytes:
        """Load, decode and verify a blob from its first good location."""
        locations = self.index.good_locations(blob_id)
        if not locations:
            raise IntegrityError(f"blob {blob_id.hex()} is missing from the repository")
        errors = []
        for loc in locations:
            try:
                stored = self.backend.get_range(pack_name(loc.pack), loc.offset, loc.length)
                data = decode_blob(stored, blob_id, self.enc_key, loc.plain_length)
            except (BlobError, ObjectNotFound) as exc:
                errors.append(f"pack {loc.pack}: {exc}")
                continue
            if self.hasher.id(data) != blob_id:
                errors.append(f"pack {loc.pack}: content does not match id")
                continue
            return data
        raise IntegrityError(f"blob {blob_id.hex()} is damaged: {'; '.join(errors)}")

    def writer(self) -> BlobWriter:
        from drbdbackup.repo.blobwriter import BlobWriter

        return BlobWriter(self)

    # ---- generations ----------------------------------------------------------------------

    def volumes(self) -> list[str]:
        return sorted({n.split("/")[1] for n in self.backend.list("generations/") if n.count("/") == 2})

    def generation_ids(self, volume_id: str) -> list[str]:
        prefix = f"generations/{volume_id}/"
        return sorted(
            n[len(prefix) :] for n in self.backend.list(prefix) if GENERATION_RE.match(n[len(prefix) :])
        )

    def read_record(self, volume_id: str, generation: str) -> GenerationRecord:
        name = record_name(volume_id, generation)
        try:
            raw = self.backend.get(name)
        except ObjectNotFound:
            raise UnknownGeneration(f"no generation {generation} for volume {volume_id}") from None
        try:
            plain = raw if self.enc_key is None else open_sealed(self.enc_key, raw, GENERATION_AAD)
            rec = GenerationRecord.from_json(plain)
        except (OpenFailed, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"generation record {name} is damaged: {exc}") from None
        if rec.repository_id != self.id or rec.volume_id != volume_id or rec.generation != generation:
            raise IntegrityError(f"generation record {name} does not belong here (ids mismatch)")
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
        """The generation's chunk-id list, read from its tree."""
        try:
            ids = read_chunk_ids(bytes.fromhex(rec.root), rec.tree_height, self.read_blob)
        except ValueError as exc:
            raise IntegrityError(
                f"tree of {rec.volume_id}/{rec.generation} is damaged: {exc}"
            ) from None
        if len(ids) != rec.chunk_count:
            raise IntegrityError(
                f"tree of {rec.volume_id}/{rec.generation} lists {len(ids)} chunks, record says {rec.chunk_count}"
            )
        return ids

    def chunk_ids_of_leaf(self, node_id: bytes) -> list[bytes]:
        level, ids = decode_node(self.read_blob(node_id))
        if level != 0:
            raise IntegrityError(f"tree node {node_id.hex()} is not a leaf")
        return ids


def _open_any_key(backend: Backend, passphrase: str) -> MasterKey:
    names = backend.list("keys/")
    if not names:
        raise IntegrityError("repository is encrypted but has no key files")
    for name in names:
        try:
            return unwrap_master_key(json.loads(backend.get(name)), passphrase)
        except (OpenFailed, ValueError, KeyError, TypeError):
            continue
    raise WrongPassword("wrong passphrase: no key file of this repository opens with it")
