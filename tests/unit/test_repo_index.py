"""drbdbackup/repo/index.py: index files round-trip."""

from __future__ import annotations

from drbdbackup.repo.index import decode_index, encode_index
from drbdbackup.repo.pack import PackEntry


def test_index_roundtrip() -> None:
    packs = {"ab" * 32: [PackEntry(0, b"\x01" * 32, 16, 10, 20), PackEntry(1, b"\x02" * 32, 26, 5, 5)]}
    assert decode_index(encode_index(packs)) == packs
