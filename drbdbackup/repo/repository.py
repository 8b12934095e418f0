"""The repository: config, keys, index, blob reads and writes, generation records."""

from __future__ import annotations

import json
import os
import queue
import secrets
import threading

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
from drbdbackup.repo import audit
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
from drbdbackup.repo.pack import PackEntry, PackWriter, pack_name
from drbdbackup.repo.records import (
    GENERATION_RE,
    GenerationRecord,
    check_volume_id,
    iso,
    now,
    record_name,
)
from drbdbackup.repo.tree import DEFAULT_FANOUT, decode_node, read_chunk_ids

FORMAT_VERSION = 1
MIN_CHUNK, MAX_CHUNK, DEFAULT_CHUNK = 64 << 10, 4 << 20, 1 << 20
ENCRYPTIONS = ("none", "aes-256-gcm")


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
        repo = cls(backend, config, master)
        audit.append(
            backend,
            "init",
            {"repository_id": config["repository_id"], "chunk_size": chunk_size, "encryption": encryption},
        )
        return repo

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
        if fmt != FORMAT_VERSION:
            raise UnsupportedFormat(
                f"repository format {fmt} is not supported (this build reads format {FORMAT_VERSION})"
            )
        master = None
        if config.get("encryption", "none") != "none":
            if not passphrase:
                raise PasswordRequired(
                    "repository is encrypted: set DRBDBACKUP_PASSWORD or --password-file"
                )
            master = _open_any_key(backend, passphrase)
        return cls(backend, config, master)

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
            base = name.rsplit("/", 1)[-1]
            if len(base) == 129 and base[64] == "-":
                index.quarantined.add((bytes.fromhex(base[:64]), base[65:]))
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

    def audit(self, event: str, details: dict) -> None:
        audit.append(self.backend, event, details)


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


class BlobWriter:
    """Packs new blobs; `commit` uploads the last pack and writes one index file.

    With `start_background()`, pack writing (file write, pack hash, upload) runs in its own
    thread so it overlaps with hashing and compression; errors surface at the next `add` or at
    `commit`.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.pack: PackWriter | None = None
        self.written: dict[str, list[PackEntry]] = {}
        self.added: set[bytes] = set()
        self.stored_bytes = 0
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def needs(self, blob_id: bytes) -> bool:
        """True unless the blob has a good copy already or was added in this run."""
        return blob_id not in self.added and not self.repo.index.has_good(blob_id)

    def add(self, kind: int, blob_id: bytes, stored: bytes, plain_length: int) -> None:
        if blob_id in self.added:
            return
        if self._error is not None:
            raise self._error
        self.added.add(blob_id)
        self.stored_bytes += len(stored)
        if self._queue is not None:
            self._queue.put((kind, blob_id, stored, plain_length))
        else:
            self._append(kind, blob_id, stored, plain_length)

    def _append(self, kind: int, blob_id: bytes, stored: bytes, plain_length: int) -> None:
        if self.pack is None:
            self.pack = PackWriter(self.repo.backend.staging_dir(), self.repo.enc_key)
        self.pack.add(kind, blob_id, stored, plain_length)
        if self.pack.full:
            self._flush_pack()

    def start_background(self, depth: int = 24) -> None:
        """Write packs in a background thread (bounded queue: memory stays bounded)."""
        self._queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run_background, name="packer", daemon=True)
        self._thread.start()

    def _run_background(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._append(*item)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def _stop_background(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self._queue = self._thread = None

    def _flush_pack(self) -> None:
        assert self.pack is not None
        pack_id, path, entries = self.pack.finish()
        try:
            self.repo.backend.put_file(pack_name(pack_id), path)
        except BaseException:
            self.pack.abort()  # removes the staged file if the backend did not consume it
            self.pack = None
            raise
        self.pack = None
        self.written[pack_id] = entries

    def commit_packs(self) -> None:
        """Upload the open pack (if it holds anything)."""
        self._stop_background()
        if self._error is not None:
            raise self._error
        if self.pack is not None and self.pack.entries:
            self._flush_pack()
        elif self.pack is not None:
            self.pack.abort()
            self.pack = None

    def commit(self) -> list[str]:
        """Upload the open pack, write the index file, add it all to the in-memory index."""
        self.commit_packs()
        names = []
        if self.written:
            names.append(self.repo.write_index_file(self.written))
            for pack_id, entries in self.written.items():
                for e in entries:
                    self.repo.index.add(pack_id, e)
        return names

    def abort(self) -> None:
        self._stop_background()
        if self.pack is not None:
            self.pack.abort()
            self.pack = None


def staging_cleanup(backend: Backend, older_than_s: float = 3600) -> int:
    """Remove stale staged files (crash leftovers) from a local backend's staging dir."""
    import time

    path = backend.staging_dir()
    removed = 0
    for name in os.listdir(path):
        full = os.path.join(path, name)
        try:
            if time.time() - os.stat(full).st_mtime > older_than_s:
                os.unlink(full)
                removed += 1
        except OSError:
            continue
    return removed
