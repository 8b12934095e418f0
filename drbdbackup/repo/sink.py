"""The repository side of the pipeline's `ChunkSink`: ids, encoding, packs and the tree."""

from __future__ import annotations

from drbdbackup.repo.blob import KIND_DATA, KIND_TREE, encode_blob
from drbdbackup.repo.blobwriter import BlobWriter
from drbdbackup.repo.crypto import ZERO_ID
from drbdbackup.repo.repository import Repository
from drbdbackup.repo.tree import build_tree


class RepositorySink:
    """Stores a backup's new chunks and its tree in `repo` (packs written in the background)."""

    zero_id = ZERO_ID

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.chunk_size = repo.chunk_size
        self.writer: BlobWriter = repo.writer()
        self.writer.start_background()

    def identify(self, data: memoryview) -> bytes:
        cid = self.repo.hasher.id(data)
        return ZERO_ID if cid == self.repo.hasher.zero_id(len(data)) else cid

    def wants(self, chunk_id: bytes) -> bool:
        return self.writer.needs(chunk_id)

    def encode(self, chunk_id: bytes, data: memoryview) -> object:
        return encode_blob(data, chunk_id, self.repo.enc_key)

    def put(self, chunk_id: bytes, encoded: object, plain_length: int) -> None:
        assert isinstance(encoded, bytes)  # what `encode` returned
        self.writer.add(KIND_DATA, chunk_id, encoded, plain_length)

    def put_chunk_list(self, ids: list[bytes]) -> tuple[str, int]:
        root, height, nodes = build_tree(ids, self.repo.fanout, self.repo.hasher.id)
        for nid, data in nodes:
            if self.writer.needs(nid):
                self.writer.add(KIND_TREE, nid, encode_blob(data, nid, self.repo.enc_key), len(data))
        return root.hex(), height

    def commit(self) -> int:
        self.writer.commit()
        return self.writer.stored_bytes

    def abort(self) -> None:
        self.writer.abort()
