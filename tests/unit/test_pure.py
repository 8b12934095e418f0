"""Pure logic: trees, packs, blobs, change maps, validity, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.repo.blob import BlobError, decode_blob, encode_blob
from drbdbackup.repo.crypto import Hasher, MasterKey, OpenFailed, unwrap_master_key, wrap_master_key
from drbdbackup.repo.index import decode_index, encode_index
from drbdbackup.repo.pack import PackEntry, PackFormatError, PackWriter, split_pack
from drbdbackup.repo.prune import select_keep
from drbdbackup.repo.tree import build_tree, decode_node, encode_node, read_chunk_ids
from drbdbackup.tracking.changemap import (
    changed_positions,
    positions_for_ranges,
    ranges_for_positions,
)
from drbdbackup.tracking.validity import Lineage, judge


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


@pytest.mark.parametrize("encrypted", [False, True])
def test_blob_roundtrip_and_tamper(encrypted: bool) -> None:
    key = MasterKey.generate() if encrypted else None
    h = Hasher(key.id_key if key else None)
    for plain in (b"a" * 100000, bytes(range(256)) * 10, b""):
        bid = h.id(plain)
        stored = encode_blob(plain, bid, key.enc_key if key else None)
        assert decode_blob(stored, bid, key.enc_key if key else None, len(plain)) == plain
    plain = b"compressible " * 1000
    bid = h.id(plain)
    stored = bytearray(encode_blob(plain, bid, key.enc_key if key else None))
    assert len(stored) < len(plain)
    stored[len(stored) // 2] ^= 0xFF
    try:
        out = decode_blob(bytes(stored), bid, key.enc_key if key else None, len(plain))
    except BlobError:
        return
    assert h.id(out) != bid  # unencrypted raw tamper is caught by the id check


def test_keyed_ids_differ_from_plain() -> None:
    key = MasterKey.generate()
    assert Hasher(key.id_key).id(b"x") != Hasher(None).id(b"x")


def test_key_wrap_wrong_passphrase() -> None:
    key = MasterKey.generate()
    kf = wrap_master_key(key, "right", "now")
    assert unwrap_master_key(kf, "right") == key
    with pytest.raises(OpenFailed):
        unwrap_master_key(kf, "wrong")
    assert "right" not in str(kf)


@pytest.mark.parametrize("encrypted", [False, True])
def test_pack_roundtrip_and_damage(tmp_path, encrypted: bool) -> None:
    key = MasterKey.generate().enc_key if encrypted else None
    w = PackWriter(str(tmp_path), key)
    blobs = [(bytes([i]) * 32, bytes([i]) * (100 + i)) for i in range(5)]
    for bid, data in blobs:
        w.add(0, bid, data, len(data))
    _pid, path, entries = w.finish()
    with open(path, "rb") as f:
        raw = f.read()
    assert split_pack(raw, key) == entries
    for e, (bid, data) in zip(entries, blobs, strict=True):
        assert raw[e.offset : e.offset + e.length] == data and e.id == bid
    with pytest.raises(PackFormatError):
        split_pack(raw[:-3], key)
    if encrypted:
        bad = bytearray(raw)
        bad[-20] ^= 0xFF  # inside the sealed TOC
        with pytest.raises(PackFormatError):
            split_pack(bytes(bad), key)


def test_index_roundtrip() -> None:
    packs = {"ab" * 32: [PackEntry(0, b"\x01" * 32, 16, 10, 20), PackEntry(1, b"\x02" * 32, 26, 5, 5)]}
    assert decode_index(encode_index(packs)) == packs


def test_changemap_functions() -> None:
    cs, size = 1 << 20, (10 << 20) + 5
    assert positions_for_ranges([(0, 1), ((2 << 20) - 1, 2), (size + 10, 5)], cs, size) == {0, 1, 2}
    assert ranges_for_positions([0, 1, 3, 10], cs, size) == [(0, 2 << 20), (3 << 20, cs), (10 << 20, 5)]
    a = [b"a", b"b", b"c"]
    assert changed_positions(a, [b"a", b"x", b"c"]) == [1]
    assert changed_positions(None, a) == [0, 1, 2]
    assert changed_positions(a, a[:2]) == [0, 1]


@pytest.mark.parametrize(
    "change,code",
    [
        ({}, "valid"),
        ({"parent_exists": False}, "no-parent"),
        ({"forced_full": True}, "forced-full"),
        ({"parent_intact": False}, "parent-damaged"),
        ({"size_now": 2}, "size-changed"),
        ({"chunk_size_now": 2}, "chunk-size-changed"),
        ({"resource_uuid_matches": False}, "resource-recreated"),
        ({"parent_snapshot_exists": False}, "parent-snapshot-missing"),
        ({"parent_snapshot_uuid_matches": False}, "parent-snapshot-replaced"),
        ({"same_placement": False, "placement_change": "node a -> b"}, "storage-migrated"),
        ({"replica_up_to_date": False}, "replica-not-uptodate"),
    ],
)
def test_validity_rules(change: dict, code: str) -> None:
    base = {"parent_exists": True, "size_now": 1, "size_parent": 1, "chunk_size_now": 1, "chunk_size_parent": 1}
    v = judge(Lineage(**{**base, **change}))
    assert v.code == code
    assert v.usable == (code == "valid")
    assert (v.reason is None) == (code == "valid")


def test_select_keep() -> None:
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    gens = [(f"g{i:02d}", t0 + timedelta(hours=12 * i)) for i in range(20)]  # two per day
    assert select_keep(gens, 3) == {"g19", "g18", "g17"}
    daily = select_keep(gens, 1, keep_daily=4)
    assert daily == {"g19", "g18", "g16", "g14"}  # newest of each of the last 4 days
    weekly = select_keep(gens, 0, keep_weekly=2)
    assert len(weekly) == 2 and "g19" in weekly


def test_incompressible_probe() -> None:
    import random

    from drbdbackup.repo.blob import looks_incompressible

    rnd = random.Random(1)
    noise = rnd.randbytes(1 << 20)
    text = (b"lorem ipsum dolor sit amet " * 40000)[: 1 << 20]
    assert looks_incompressible(noise)
    assert not looks_incompressible(text)
    mixed = bytearray(text)
    mixed[len(mixed) // 2 - 32768 : len(mixed) // 2 + 32768] = rnd.randbytes(65536)
    assert not looks_incompressible(bytes(mixed))  # mostly text: still compressed
    assert not looks_incompressible(noise[:4096])  # small blobs are always tried
