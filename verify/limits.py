"""Reader limits (docs/format.md section 17): checked before anything is allocated.

A reader never sizes a buffer, a list or a decompression from a number it read without first
holding that number against these limits.
"""

from __future__ import annotations

from dataclasses import dataclass

KIND_CHUNK = 0
KIND_NODE = 1
NODE_HEADER_LEN = 12
ID_LEN = 32
SEAL_OVERHEAD = 28

MIN_CHUNK_SIZE = 64 << 10
MAX_CHUNK_SIZE = 4 << 20
MAX_TREE_FANOUT = 1 << 16
MAX_CHUNK_COUNT = 1 << 32
SCRYPT_MAX_MEMORY = 256 << 20  # 128 * n * r bytes
SCRYPT_MAX_WORK = 1 << 23  # n * r * p

JSON_MAX_DEPTH = 32
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
JSON_MAX_BYTES: dict[str, int] = {
    "config": 64 * KIB,
    "key file": 64 * KIB,
    "lock": 64 * KIB,
    "quarantine record": 64 * KIB,
    "generation record": 1 * MIB,
    "audit entry": 16 * MIB,
    "index": 2 * GIB,
}


def max_node_bytes(fanout: int) -> int:
    """Plain length of a full tree node."""
    return NODE_HEADER_LEN + ID_LEN * fanout


@dataclass(frozen=True)
class BlobLimits:
    """Largest blobs one repository can hold (from its config; defaults: the format's maxima)."""

    chunk_size: int = MAX_CHUNK_SIZE
    tree_fanout: int = MAX_TREE_FANOUT

    def max_plain(self, kind: int) -> int:
        """Largest ``plain_length`` a blob of ``kind`` may have."""
        return self.chunk_size if kind == KIND_CHUNK else max_node_bytes(self.tree_fanout)

    def problem(self, kind: int, stored_length: int, plain_length: int) -> str | None:
        """Why a (kind, stored length, plain length) triple is impossible, or None."""
        if kind not in (KIND_CHUNK, KIND_NODE):
            return f"unknown blob kind {kind}"
        limit = self.max_plain(kind)
        what = "the chunk size" if kind == KIND_CHUNK else "the largest tree node"
        if plain_length > limit:
            return f"plain_length {plain_length} exceeds {what} ({limit})"
        if stored_length > plain_length + 1 + SEAL_OVERHEAD:
            return f"stored length {stored_length} exceeds plain_length {plain_length} + 29"
        return None


DEFAULT_LIMITS = BlobLimits()
