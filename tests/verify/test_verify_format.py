"""Pure parsing functions of verify.format, sampler and results."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest
import zstandard

from verify import format as F
from verify.results import merge_ranges
from verify.sampler import Selection, bucket, confidence_words, escape_probability

RID = "ab" * 32


def cfg(**kw: object) -> bytes:
    base = {"format": 1, "repository_id": RID, "created": "x", "chunk_size": 1048576,
            "tree_fanout": 4096, "hash": "blake3", "compression": "zstd", "encryption": "none"}
    base.update(kw)
    return json.dumps(base).encode()


def test_config_ok() -> None:
    c = F.parse_config(cfg())
    assert (c.repository_id, c.chunk_size, c.tree_fanout, c.encryption) == (RID, 1048576, 4096, "none")
    assert F.parse_config(cfg(encryption="aes-256-gcm", chunk_size=65536)).encryption == "aes-256-gcm"


@pytest.mark.parametrize("kw", [
    {"format": 3}, {"chunk_size": 100000}, {"chunk_size": 32768}, {"chunk_size": 8388608},
    {"encryption": "rot13"}, {"repository_id": "AB" * 32}, {"repository_id": "ab"},
    {"hash": "sha1"}, {"compression": "lz4"}, {"tree_fanout": 1}, {"chunk_size": True},
])
def test_config_rejects(kw: dict[str, object]) -> None:
    with pytest.raises(F.FormatError):
        F.parse_config(cfg(**kw))


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"\xff\xfe", b"null"])
def test_config_not_json(data: bytes) -> None:
    with pytest.raises(F.FormatError):
        F.parse_config(data)


def test_decode_blob() -> None:
    p = b"hello world" * 100
    assert F.decode_blob(b"\x00" + p, len(p)) == p
    z = zstandard.ZstdCompressor().compress(p)
    assert F.decode_blob(b"\x01" + z, len(p)) == p
    nosize = zstandard.ZstdCompressor(write_content_size=False).compress(p)
    assert F.decode_blob(b"\x01" + nosize, len(p)) == p
    for bad in (b"", b"\x02" + p, b"\x01" + z[:-3], b"\x01garbage"):
        with pytest.raises(F.FormatError):
            F.decode_blob(bad, len(p))
    with pytest.raises(F.FormatError):
        F.decode_blob(b"\x00" + p, len(p) + 1)
    with pytest.raises(F.FormatError):
        F.decode_blob(b"\x01" + z, len(p) - 1)


def _pack(entries: list[F.TocEntry], blob_bytes: bytes) -> bytes:
    toc = F.build_toc_plain(entries)
    return (b"DRBDPACK\x01" + bytes(7) + blob_bytes + toc + struct.pack("<I", len(toc))
            + b"DRBDTOC1")


def test_pack_roundtrip() -> None:
    e = [F.TocEntry(0, b"\x01" * 32, 16, 5, 9), F.TocEntry(1, b"\x02" * 32, 21, 3, 3)]
    pack = _pack(e, b"A" * 8)
    F.parse_pack_header(pack[:16])
    off, ln = F.parse_pack_trailer(pack[-12:], len(pack))
    assert (off, ln) == (24, 4 + 2 * 49)
    assert F.parse_toc(pack[off : off + ln], off) == e


@pytest.mark.parametrize("header", [b"DRBDPACX\x01" + bytes(7), b"DRBDPACK\x02" + bytes(7), b"DRBD"])
def test_pack_header_rejects(header: bytes) -> None:
    with pytest.raises(F.FormatError):
        F.parse_pack_header(header)


def test_pack_header_salt_is_ignored() -> None:
    F.parse_pack_header(b"DRBDPACK\x01" + bytes(range(1, 8)))  # section 6: 7 random salt bytes


def test_pack_trailer_rejects() -> None:
    with pytest.raises(F.FormatError):
        F.parse_pack_trailer(struct.pack("<I", 4) + b"DRBDTOCX", 100)
    with pytest.raises(F.FormatError):
        F.parse_pack_trailer(struct.pack("<I", 90) + b"DRBDTOC1", 100)
    with pytest.raises(F.FormatError):
        F.parse_pack_trailer(struct.pack("<I", 0) + b"DRBDTOC1", 20)


def test_toc_rejects() -> None:
    good = F.TocEntry(0, b"\x01" * 32, 16, 5, 9)
    with pytest.raises(F.FormatError):  # count says 2, one entry present
        F.parse_toc(struct.pack("<I", 2) + F.build_toc_plain([good])[4:], 100)
    with pytest.raises(F.FormatError):  # zero entries
        F.parse_toc(struct.pack("<I", 0), 100)
    with pytest.raises(F.FormatError):  # unknown kind
        F.parse_toc(F.build_toc_plain([F.TocEntry(7, b"\x01" * 32, 16, 5, 9)]), 100)
    with pytest.raises(F.FormatError):  # overlapping
        F.parse_toc(F.build_toc_plain([good, F.TocEntry(0, b"\x02" * 32, 18, 5, 9)]), 100)
    with pytest.raises(F.FormatError):  # inside the header
        F.parse_toc(F.build_toc_plain([F.TocEntry(0, b"\x01" * 32, 8, 5, 9)]), 100)
    with pytest.raises(F.FormatError):  # runs into the TOC
        F.parse_toc(F.build_toc_plain([F.TocEntry(0, b"\x01" * 32, 16, 90, 9)]), 100)
    with pytest.raises(F.FormatError):
        F.parse_toc(b"\x01", 100)


def test_node_roundtrip_and_rejects() -> None:
    ids = [bytes([i]) * 32 for i in range(3)]
    nb = F.build_node(2, ids)
    assert len(nb) == 12 + 96
    n = F.parse_node(nb)
    assert (n.level, n.ids) == (2, ids)
    assert F.parse_node(F.build_node(0, [])).ids == []
    for bad in (b"DRBX" + nb[4:], nb[:-1], nb[:5] + b"\x01" + nb[6:], b"DRB"):
        with pytest.raises(F.FormatError):
            F.parse_node(bad)


@pytest.mark.parametrize("n,f,sizes", [
    (0, 4, [1]), (1, 4, [1]), (4, 4, [1]), (5, 4, [2, 1]), (16, 4, [4, 1]),
    (17, 4, [5, 2, 1]), (1024, 4096, [1]), (4097, 4096, [2, 1]),
])
def test_level_sizes(n: int, f: int, sizes: list[int]) -> None:
    assert F.level_sizes(n, f) == sizes


def test_expected_count_and_coverage() -> None:
    # 17 chunks, fanout 4: leaves 4,4,4,4,1; level 1: 4,1; root: 2
    assert [F.expected_count(0, j, 17, 4) for j in range(5)] == [4, 4, 4, 4, 1]
    assert [F.expected_count(1, j, 17, 4) for j in range(2)] == [4, 1]
    assert F.expected_count(2, 0, 17, 4) == 2
    assert F.expected_count(0, 0, 0, 4) == 0
    assert F.node_coverage(0, 4, 17, 4) == (16, 17)
    assert F.node_coverage(1, 0, 17, 4) == (0, 16)
    assert F.node_coverage(1, 1, 17, 4) == (16, 17)
    assert F.node_coverage(2, 0, 17, 4) == (0, 17)
    assert F.chunk_range(2, 2 * 65536 + 10, 65536) == (131072, 131082)
    assert F.chunk_count_for(0, 65536) == 0
    assert F.chunk_count_for(65537, 65536) == 2


def test_index_parse() -> None:
    doc = {"format": 1, "packs": [{"id": "cd" * 32, "blobs": [
        {"id": "ef" * 32, "kind": 0, "offset": 16, "length": 10, "plain_length": 20}]}]}
    (b,) = F.parse_index(json.dumps(doc).encode())
    assert (b.pack, b.id, b.kind, b.offset, b.length, b.plain_length) == (
        "cd" * 32, b"\xef" * 32, 0, 16, 10, 20)
    for bad in ({"format": 2, "packs": []}, {"format": 1},
                {"format": 1, "packs": [{"id": "x", "blobs": []}]},
                {"format": 1, "packs": [{"id": "cd" * 32, "blobs": [{"id": "ef" * 32}]}]}):
        with pytest.raises(F.FormatError):
            F.parse_index(json.dumps(bad).encode())


def _rec(**kw: object) -> bytes:
    base = {"format": 1, "repository_id": RID, "volume_id": "vm-1",
            "generation": "20261125T124000123456Z-1a2b3c4d", "created": "x", "parent": None,
            "mode": "full", "size_bytes": 65537, "chunk_size": 65536, "chunk_count": 2,
            "root": "00" * 32, "tree_height": 1}
    base.update(kw)
    return json.dumps(base).encode()


def test_record_parse() -> None:
    r = F.parse_record(_rec())
    assert (r.volume_id, r.chunk_count, r.root, r.tree_height) == ("vm-1", 2, bytes(32), 1)
    for kw in ({"chunk_count": 3}, {"format": 0}, {"volume_id": "-bad"}, {"generation": "x"},
               {"mode": "weird"}, {"root": "zz"}, {"size_bytes": -1}, {"tree_height": 0}):
        with pytest.raises(F.FormatError):
            F.parse_record(_rec(**kw))


def test_audit_entry_parse() -> None:
    e = {"seq": 3, "time": "t", "event": "verify", "prev": "0" * 64, "details": {}}
    assert F.parse_audit_entry(json.dumps(e).encode(), 3)["event"] == "verify"
    for bad in ({**e, "seq": 4}, {**e, "event": "nope"}, {**e, "prev": "1"}):
        with pytest.raises(F.FormatError):
            F.parse_audit_entry(json.dumps(bad).encode(), 3)


def test_names() -> None:
    pid = "ab" + "c" * 62
    assert F.is_pack_name(F.pack_name(pid))
    assert not F.is_pack_name(f"packs/cd/{pid}")
    assert not F.is_pack_name(f"packs/ab/{pid}.x.tmp")
    q = F.quarantine_name("1" * 64, "2" * 64)
    assert F.parse_quarantine_name(q) == ("1" * 64, "2" * 64)
    assert F.parse_quarantine_name("quarantine/xyz") is None
    assert F.audit_name(7) == "audit/000000000007"
    assert F.GENERATION_RE.match("20261125T124000123456Z-1a2b3c4d")


def test_key_file_parse() -> None:
    good = {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1,
            "salt": base64.b64encode(b"s" * 16).decode(),
            "data": base64.b64encode(b"d" * 92).decode()}
    assert F.parse_key_file(json.dumps(good).encode()).n == 32768
    for kw in ({"kdf": "pbkdf2"}, {"n": 1000}, {"n": 2**24}, {"salt": "!!"},
               {"data": base64.b64encode(b"d" * 10).decode()}):
        with pytest.raises(F.FormatError):
            F.parse_key_file(json.dumps({**good, **kw}).encode())


# ---------------------------------------------------------------- sampler


@pytest.mark.parametrize("p,a", [(0.05, 40), (0.05, 1), (0.5, 7), (1.0, 13), (0.001, 100000)])
def test_sample_size(p: float, a: int) -> None:
    s = Selection("sample", p, seed=9).sample_positions(a, "v", "g")
    assert s is not None
    assert len(s) == min(a, max(1, math.ceil(p * a)))
    assert all(0 <= x < a for x in s)


def test_sample_reproducible() -> None:
    a = Selection("sample", 0.1, 5).sample_positions(1000, "v", "g")
    assert a == Selection("sample", 0.1, 5).sample_positions(1000, "v", "g")
    assert a != Selection("sample", 0.1, 6).sample_positions(1000, "v", "g")
    assert Selection("sample", 0.1, 5).sample_positions(0, "v", "g") == set()
    assert Selection("full").sample_positions(10, "v", "g") is None


def test_subset_partition() -> None:
    ids = [bytes([i, i * 7 % 256, 3, 4]).hex() + "0" * 56 for i in range(256)] + ["0" * 64]
    t = 5
    sels = [Selection.parse_subset(f"{n}/{t}") for n in range(1, t + 1)]
    for i in ids:
        assert sum(s.id_selected(i) for s in sels) == 1
        assert sum(s.pack_hashed(i) for s in sels) == 1
    assert Selection.parse_subset("1/5").id_selected("0" * 64)  # zero marker: bucket 0
    assert bucket("0000000a" + "0" * 56, 4) == 2
    for bad in ("0/3", "4/3", "x", "1/0", "1/2/3"):
        with pytest.raises(ValueError):
            Selection.parse_subset(bad)


def test_confidence() -> None:
    assert escape_probability(5, 100, 1) == pytest.approx(0.95)
    assert escape_probability(5, 100, 10) == pytest.approx(0.95**10)
    assert escape_probability(100, 100, 1) == 0.0
    w = confidence_words("sample", 2, 40)
    assert "95.00%" in w and "59.87%" in w
    assert "every chunk" in confidence_words("full", 40, 40)


def test_merge_ranges() -> None:
    assert merge_ranges([(5, 10), (0, 5), (20, 30), (25, 26)]) == [(0, 10), (20, 30)]
