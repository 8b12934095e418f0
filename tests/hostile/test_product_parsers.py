"""drbdbackup's own parsers (repo/blob, index, tree, pack, records, crypto) refuse hostile bytes
with their module's error type, quickly and without allocating what the bytes claim (issue 20)."""

from __future__ import annotations

import base64
import json
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from drbdbackup.repo.blob import BlobError, decode_blob, encode_blob, max_plain_length
from drbdbackup.repo.crypto import (
    Hasher,
    KeyFileError,
    MasterKey,
    OpenFailed,
    unwrap_master_key,
    wrap_master_key,
)
from drbdbackup.repo.index import decode_index, encode_index
from drbdbackup.repo.pack import PackEntry, PackFormatError, PackWriter, parse_toc, split_pack
from drbdbackup.repo.records import GenerationRecord, JsonObjectError, load_json_object
from drbdbackup.repo.tree import (
    TreeFormatError,
    build_tree,
    decode_node,
    encode_node,
    read_chunk_ids,
)
from tests.hostile.hostile import HUGE, nested_arrays, zero_frame

MIB = 1 << 20


@contextmanager
def cheap(max_mib: float = 16, max_s: float = 2.0) -> Iterator[None]:
    """The block allocates at most `max_mib` MiB (tracemalloc peak) and runs within `max_s`."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        yield
    finally:
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed = time.monotonic() - start
    assert peak < max_mib * MIB, f"peak allocation {peak / MIB:.1f} MiB"
    assert elapsed < max_s, f"took {elapsed:.2f} s"


def rejects(exc: type[BaseException], fn: Callable[[], object]) -> str:
    with cheap(), pytest.raises(exc) as info:
        fn()
    return str(info.value)


# ---------------------------------------------------------------- blobs


def test_blob_plain_length_beyond_any_chunk_is_refused_before_decompressing() -> None:
    frame = b"\x01" + zero_frame()
    msg = rejects(BlobError, lambda: decode_blob(frame, bytes(32), None, HUGE))
    assert "plain length" in msg


def test_zstd_output_is_capped_at_plain_length_whatever_the_frame_header_says() -> None:
    frame = b"\x01" + zero_frame()  # header: 4e9 bytes of content
    rejects(BlobError, lambda: decode_blob(frame, bytes(32), None, MIB))
    rejects(BlobError, lambda: decode_blob(frame, bytes(32), None, MIB, limit=64 << 10))


def test_stored_length_beyond_plain_length_is_refused() -> None:
    rejects(BlobError, lambda: decode_blob(b"\x00" + bytes(100), bytes(32), None, 10))


def test_blob_roundtrip_still_works_at_the_limits() -> None:
    h = Hasher(None)
    for kind, plain in ((0, bytes(range(256)) * (4 * 4096)), (1, encode_node(0, [bytes(32)] * 4096))):
        bid = h.id(plain)
        stored = encode_blob(plain, bid, None)
        limit = max_plain_length(kind, 4 * MIB, 4096)
        assert decode_blob(stored, bid, None, len(plain), limit=limit) == plain


# ---------------------------------------------------------------- index files


def _index(**blob: object) -> bytes:
    b = {"id": "ab" * 32, "kind": 0, "offset": 16, "length": 122_000, "plain_length": 1 << 20}
    b.update(blob)
    return json.dumps({"format": 1, "packs": [{"id": "cd" * 32, "blobs": [b]}]}).encode()


def test_index_of_nested_arrays_is_a_value_error_not_a_recursion_error() -> None:
    msg = rejects(ValueError, lambda: decode_index(nested_arrays()))
    assert "deeper" in msg
    rejects(ValueError, lambda: decode_index(b'{"format": 1, "packs": ' + nested_arrays() + b"}"))


@pytest.mark.parametrize("blob", [
    {"plain_length": HUGE}, {"plain_length": 5 << 20}, {"kind": 1, "plain_length": 3 << 20},
    {"length": 2_000_000}, {"kind": 7}, {"kind": "0"}, {"offset": 3}, {"offset": -1},
    {"length": True}, {"id": "AB" * 32}, {"id": 5}, {"plain_length": 1.5},
])
def test_index_entries_beyond_the_limits_or_of_the_wrong_type(blob: dict[str, object]) -> None:
    rejects(ValueError, lambda: decode_index(_index(**blob)))


def test_index_limits_follow_the_repository() -> None:
    data = _index(plain_length=1 << 20, length=1000)
    assert decode_index(data)  # within the format's maxima
    rejects(ValueError, lambda: decode_index(data, chunk_size=65536))


@pytest.mark.parametrize("doc", [
    [], {"format": True, "packs": []}, {"format": 1, "packs": {}},
    {"format": 1, "packs": [{"id": "x", "blobs": []}]}, {"format": 1, "packs": [{"id": "cd" * 32}]},
])
def test_index_wrong_types(doc: object) -> None:
    rejects(ValueError, lambda: decode_index(json.dumps(doc).encode()))


def test_index_roundtrip_unchanged() -> None:
    packs = {"ab" * 32: [PackEntry(0, b"\x01" * 32, 16, 10, 20), PackEntry(1, b"\x02" * 32, 26, 5, 5)]}
    assert decode_index(encode_index(packs)) == packs


# ---------------------------------------------------------------- tree nodes


def test_node_count_beyond_fanout_or_bytes() -> None:
    huge = b"DRBT" + bytes(4) + struct.pack("<I", 2**32 - 1)
    rejects(TreeFormatError, lambda: decode_node(huge))
    five = encode_node(0, [bytes(32)] * 5)
    rejects(TreeFormatError, lambda: decode_node(five, fanout=4))
    rejects(TreeFormatError, lambda: decode_node(five[:-1]))
    assert decode_node(five, fanout=5)[1] == [bytes(32)] * 5


def test_a_tree_repeating_one_subtree_cannot_inflate_the_chunk_list() -> None:
    """A root of 4096 copies of a full leaf claims 16M chunks; the record says 4."""
    leaf = encode_node(0, [b"\x01" * 32] * 4096)
    h = Hasher(None)
    lid = h.id(leaf)
    root = encode_node(1, [lid] * 4096)
    nodes = {lid: leaf, h.id(root): root}
    msg = rejects(TreeFormatError, lambda: read_chunk_ids(h.id(root), 2, nodes.__getitem__,
                                                          fanout=4096, chunk_count=4))
    assert "more than" in msg
    rejects(TreeFormatError, lambda: read_chunk_ids(h.id(root), 10**6, nodes.__getitem__))


def test_tree_roundtrip_with_bounds() -> None:
    h = Hasher(None)
    ids = [h.id(i.to_bytes(4, "little")) for i in range(100)]
    root, height, nodes = build_tree(ids, 8, h.id)
    assert read_chunk_ids(root, height, dict(nodes).__getitem__, fanout=8, chunk_count=100) == ids


# ---------------------------------------------------------------- packs


def _pack(tmp_path: object, key: bytes | None = None) -> tuple[bytes, list[PackEntry]]:
    w = PackWriter(str(tmp_path), key)
    w.add(0, b"\x01" * 32, b"\x00" + b"x" * 100, 100)
    _pid, path, entries = w.finish()
    with open(path, "rb") as f:
        return f.read(), entries


def _with_toc(pack: bytes, toc: bytes) -> bytes:
    (toc_len,) = struct.unpack("<I", pack[-12:-8])
    body = pack[: len(pack) - 12 - toc_len]
    return body + toc + struct.pack("<I", len(toc)) + b"DRBDTOC1"


def test_toc_claiming_2_32_minus_1_entries(tmp_path: object) -> None:
    pack, _e = _pack(tmp_path)
    lying = _with_toc(pack, struct.pack("<I", 2**32 - 1) + bytes(49))
    rejects(PackFormatError, lambda: split_pack(lying, None))
    rejects(PackFormatError, lambda: parse_toc(struct.pack("<I", 2**32 - 1) + bytes(49), None))


def test_toc_entry_beyond_the_limits_or_the_pack(tmp_path: object) -> None:
    pack, (e,) = _pack(tmp_path)

    def toc(kind: int = 0, offset: int = e.offset, length: int = e.length, plain: int = 100) -> bytes:
        return struct.pack("<I", 1) + struct.pack("<B32sQII", kind, e.id, offset, length, plain)

    for bad in (toc(plain=HUGE), toc(kind=1, plain=3 << 20), toc(kind=9), toc(length=4000),
                toc(offset=4), toc(offset=2**63)):
        rejects(PackFormatError, lambda bad=bad: split_pack(_with_toc(pack, bad), None))
    rejects(PackFormatError, lambda: parse_toc(toc(), None, chunk_size=65536, fanout=2,
                                               toc_start=20))
    assert split_pack(_with_toc(pack, toc()), None) == [e]


def test_toc_of_zero_entries_is_refused(tmp_path: object) -> None:
    pack, _e = _pack(tmp_path)
    rejects(PackFormatError, lambda: split_pack(_with_toc(pack, struct.pack("<I", 0)), None))


# ---------------------------------------------------------------- generation records


def _record(**kw: object) -> bytes:
    doc = {"format": 2, "repository_id": "ab" * 32, "volume_id": "vm-1",
           "generation": "20261125T124000123456Z-1a2b3c4d", "created": "2026-11-25T12:40:00+00:00",
           "parent": None, "mode": "full", "tracker": "checksum", "map_validity": "no-parent",
           "fallback_reason": None, "size_bytes": 4 << 20, "chunk_size": 1 << 20, "chunk_count": 4,
           "root": "cd" * 32, "tree_height": 1, "source": {"kind": "file", "path": "/x"},
           "stats": {"read_bytes": 1, "duration_s": 0.5}}
    doc.update(kw)
    return json.dumps({k: v for k, v in doc.items() if v != "DROP"}).encode()


def test_record_parses() -> None:
    rec = GenerationRecord.from_json(_record())
    assert (rec.volume_id, rec.chunk_count, rec.format) == ("vm-1", 4, 2)
    assert GenerationRecord.from_json(_record(format=1, labels={"vm": "web"})).labels == {"vm": "web"}


@pytest.mark.parametrize("kw", [
    {"format": 3}, {"format": True}, {"root": "zz"}, {"repository_id": 7}, {"size_bytes": "4"},
    {"chunk_count": 5}, {"chunk_size": 3}, {"size_bytes": -1}, {"tree_height": 0},
    {"tree_height": 10**9}, {"volume_id": "../x"}, {"generation": "latest"}, {"created": None},
    {"parent": 5}, {"source": []}, {"stats": {"read_bytes": "1"}}, {"labels": {"a": 1}},
    {"linstor": "x"}, {"group_members": "x"}, {"root": "DROP"}, {"created": "DROP"},
    {"size_bytes": (2**40) << 20, "chunk_count": 2**40},
])
def test_record_wrong_types_and_values(kw: dict[str, object]) -> None:
    rejects(ValueError, lambda: GenerationRecord.from_json(_record(**kw)))


def test_record_of_nested_arrays_or_too_large() -> None:
    rejects(ValueError, lambda: GenerationRecord.from_json(nested_arrays()))
    rejects(ValueError, lambda: GenerationRecord.from_json(_record(tracker="x" * (2 << 20))))
    rejects(ValueError, lambda: GenerationRecord.from_json(b"\xff\xfe{}"))


def test_json_loader_caps_every_object_kind() -> None:
    with pytest.raises(JsonObjectError):
        load_json_object(b"{}" + b" " * (64 << 10), "lock")
    assert load_json_object(b'{"a": [[["]]]]"]]]}', "config") == {"a": [[["]]]]"]]]}
    assert load_json_object(b'{"a": "\\\\", "b": "\\"["}', "config") == {"a": "\\", "b": '"['}


# ---------------------------------------------------------------- key files


def _keyfile(**kw: object) -> dict[str, object]:
    kf = wrap_master_key(MasterKey.generate(), "pw", "now")
    kf.update(kw)
    return kf


@pytest.mark.parametrize("kw", [
    {"n": 2**30}, {"n": 2**20, "r": 32}, {"n": 2**20, "r": 8, "p": 16}, {"r": 10**9},
    {"p": 0}, {"n": 1000}, {"n": "32768"}, {"n": True}, {"salt": 5}, {"salt": "!!"},
    {"salt": base64.b64encode(b"s" * 4096).decode()}, {"data": base64.b64encode(b"d").decode()},
])
def test_key_file_with_absurd_or_malformed_parameters(kw: dict[str, object]) -> None:
    rejects(KeyFileError, lambda: unwrap_master_key(_keyfile(**kw), "pw"))


def test_key_file_bytes_are_bounded_json() -> None:
    rejects(ValueError, lambda: unwrap_master_key(nested_arrays(), "pw"))
    rejects(ValueError, lambda: unwrap_master_key(b"[]", "pw"))
    key = MasterKey.generate()
    data = json.dumps(wrap_master_key(key, "pw", "now")).encode()
    assert unwrap_master_key(data, "pw") == key
    with pytest.raises(OpenFailed):
        unwrap_master_key(data, "wrong")
