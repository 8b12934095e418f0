"""drbdbackup/repo/tree.py: any tree shape round-trips; changing one chunk id touches one path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.repo.crypto import Hasher
from drbdbackup.repo.tree import build_tree, decode_node, encode_node, read_chunk_ids


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), fanout=st.integers(2, 17))
def test_tree_roundtrip_any_shape(n: int, fanout: int) -> None:
    h = Hasher(None)
    ids = [h.id(i.to_bytes(4, "little")) for i in range(n)]
    root, height, nodes = build_tree(ids, fanout, h.id)
    store = dict(nodes)
    assert read_chunk_ids(root, height, store.__getitem__) == ids
    # every node but the last of its level is full
    level, top = decode_node(store[root])
    assert level == height - 1 and len(top) <= fanout

def test_tree_incremental_changes_only_one_path() -> None:
    h = Hasher(None)
    ids = [h.id(bytes([i % 256, i // 256])) for i in range(5000)]
    _r1, _h1, nodes1 = build_tree(ids, 64, h.id)
    ids[1234] = h.id(b"changed")
    _r2, _h2, nodes2 = build_tree(ids, 64, h.id)
    new = {nid for nid, _ in nodes2} - {nid for nid, _ in nodes1}
    assert len(new) == 3  # one leaf, one inner node, the root (height 3 for 5000/64)

def test_node_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        decode_node(b"XXXX" + bytes(8))
    data = bytearray(encode_node(0, [bytes(32)]))
    with pytest.raises(ValueError):
        decode_node(bytes(data[:-1]))
