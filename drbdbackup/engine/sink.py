"""The narrow interface the backup pipeline writes through (the repository implements it).

The pipeline never sees packs, keys or compression: it asks the sink for ids, hands it chunks to
encode (in worker threads) and stores them in order.
"""

from __future__ import annotations

from typing import Protocol


class ChunkSink(Protocol):
    """Where a backup's chunks and its chunk list go."""

    chunk_size: int
    zero_id: bytes  # what `identify` returns for an all-zero chunk (never stored)

    def identify(self, data: memoryview) -> bytes:
        """The chunk's id (`zero_id` for all zeros). Thread-safe."""
        ...

    def wants(self, chunk_id: bytes) -> bool:
        """True unless the chunk is stored already or was put in this run. Thread-safe."""
        ...

    def encode(self, chunk_id: bytes, data: memoryview) -> object:
        """Prepare a chunk for `put` (compress, seal); opaque to the caller. Thread-safe."""
        ...

    def put(self, chunk_id: bytes, encoded: object, plain_length: int) -> None:
        """Store a prepared chunk (called in one thread, in order)."""
        ...

    def put_chunk_list(self, ids: list[bytes]) -> tuple[str, int]:
        """Store the volume's chunk list; return (root digest hex, tree height)."""
        ...

    def commit(self) -> int:
        """Make everything put visible to readers; return the bytes stored by this run."""
        ...

    def abort(self) -> None:
        """Drop what is not committed."""
        ...
