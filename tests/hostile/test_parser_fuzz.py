"""Property fuzzing of both readers' parsers: mutated valid objects and arbitrary JSON values raise
only each module's documented error type (never RecursionError, MemoryError, KeyError, ...).

A cheap, always-on complement to coverage-guided fuzzing (atheris, not in this tree yet)."""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drbdbackup.repo import blob as pblob
from drbdbackup.repo import crypto as pcrypto
from drbdbackup.repo import index as pindex
from drbdbackup.repo import pack as ppack
from drbdbackup.repo import records as precords
from drbdbackup.repo import tree as ptree
from verify import format as vf

SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck))

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Byte flips, truncations, insertions and splices of a valid object, or random bytes."""
    def mutate(ops: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(seed)
        for kind, pos, val in ops:
            if not data:
                break
            p = pos % len(data)
            if kind == 0:
                data[p] = val
            elif kind == 1:
                del data[p:]
            elif kind == 2:
                data[p:p] = bytes([val]) * (val % 7 + 1)
            else:
                data[p:p] = b"[" * (val * 50)
        return bytes(data)
    op = st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.integers(0, 255))
    return st.lists(op, min_size=1, max_size=4).map(mutate) | st.binary(max_size=300)


def _field_swaps(seed: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """The valid object with one field replaced by an arbitrary JSON value."""
    keys = sorted(seed)
    return st.tuples(st.sampled_from(keys), JSON).map(
        lambda kv: json.dumps({**seed, kv[0]: kv[1]}).encode())


RECORD = {"format": 2, "repository_id": "ab" * 32, "volume_id": "vm-1",
          "generation": "20261125T124000123456Z-1a2b3c4d", "created": "2026-11-25T12:40:00+00:00",
          "parent": None, "mode": "full", "tracker": "checksum", "map_validity": "no-parent",
          "fallback_reason": None, "size_bytes": 65537, "chunk_size": 65536, "chunk_count": 2,
          "root": "cd" * 32, "tree_height": 1, "source": {"kind": "file"}, "stats": {"a": 1},
          "labels": {}, "linstor": None, "group_members": None}
INDEX_BLOB = {"id": "ef" * 32, "kind": 0, "offset": 16, "length": 10, "plain_length": 20}
INDEX = {"format": 1, "packs": [{"id": "cd" * 32, "blobs": [INDEX_BLOB]}]}
CONFIG = {"format": 2, "repository_id": "ab" * 32, "created": "x", "chunk_size": 65536,
          "tree_fanout": 4096, "hash": "blake3", "compression": "zstd", "encryption": "none"}
AUDIT = {"seq": 1, "time": "t", "event": "lock", "prev": "0" * 64, "details": {}}
KEYFILE = {"kdf": "scrypt", "n": 2, "r": 1, "p": 1, "salt": base64.b64encode(b"s" * 16).decode(),
           "data": base64.b64encode(b"d" * 92).decode()}
NODE = ptree.encode_node(1, [bytes([i]) * 32 for i in range(3)])
TOC = struct.pack("<I", 2) + b"".join(struct.pack("<B32sQII", k, bytes([k]) * 32, 16 + 5 * k, 5, 9)
                                      for k in (0, 1))
BLOB_ZSTD = b"\x01" + __import__("zstandard").ZstdCompressor().compress(b"hello " * 100)


def _bytes_of(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


PRODUCT: list[tuple[str, Callable[[bytes], object], tuple[type[BaseException], ...], bytes,
                    dict[str, Any] | None]] = [
    ("record", precords.GenerationRecord.from_json, (ValueError,), _bytes_of(RECORD), RECORD),
    ("index", pindex.decode_index, (ValueError,), _bytes_of(INDEX), INDEX),
    ("keyfile", lambda d: pcrypto.unwrap_master_key(d, "pw"), (ValueError, pcrypto.OpenFailed),
     _bytes_of(KEYFILE), KEYFILE),
    ("node", ptree.decode_node, (ValueError,), NODE, None),
    ("toc", lambda d: ppack.parse_toc(d, None, toc_start=100), (ppack.PackFormatError,), TOC, None),
    ("blob", lambda d: pblob.decode_blob(d, bytes(32), None, 600), (pblob.BlobError,), BLOB_ZSTD,
     None),
]
VERIFY: list[tuple[str, Callable[[bytes], object], bytes, dict[str, Any] | None]] = [
    ("record", vf.parse_record, _bytes_of(RECORD), RECORD),
    ("index", vf.parse_index, _bytes_of(INDEX), INDEX),
    ("config", vf.parse_config, _bytes_of(CONFIG), CONFIG),
    ("audit", lambda d: vf.parse_audit_entry(d, 1), _bytes_of(AUDIT), AUDIT),
    ("keyfile", vf.parse_key_file, _bytes_of(KEYFILE), KEYFILE),
    ("node", vf.parse_node, NODE, None),
    ("toc", lambda d: vf.parse_toc(d, 100), TOC, None),
    ("blob", lambda d: vf.decode_blob(d, 600), BLOB_ZSTD, None),
    ("trailer", lambda d: vf.parse_pack_trailer(d[-12:], len(d)), TOC + b"\0\0\0\0DRBDTOC1", None),
]


def _inputs(seed: bytes, obj: dict[str, Any] | None) -> st.SearchStrategy[bytes]:
    return _mutations(seed) | _field_swaps(obj) if obj is not None else _mutations(seed)


@pytest.mark.parametrize("name,parse,errors,seed,obj", PRODUCT, ids=[p[0] for p in PRODUCT])
def test_product_parsers_raise_only_their_error(name: str, parse: Callable[[bytes], object],
                                                errors: tuple[type[BaseException], ...],
                                                seed: bytes, obj: dict[str, Any] | None) -> None:
    parse(seed) if name not in ("keyfile", "blob") else None  # the seed itself is valid

    @SETTINGS
    @given(_inputs(seed, obj))
    def run(data: bytes) -> None:
        try:
            parse(data)
        except errors:
            pass

    run()


@pytest.mark.parametrize("name,parse,seed,obj", VERIFY, ids=[v[0] for v in VERIFY])
def test_verify_parsers_raise_only_format_error(name: str, parse: Callable[[bytes], object],
                                                seed: bytes, obj: dict[str, Any] | None) -> None:
    parse(seed) if name != "blob" else None

    @SETTINGS
    @given(_inputs(seed, obj))
    def run(data: bytes) -> None:
        try:
            parse(data)
        except vf.FormatError:
            pass

    run()


def test_seeds_are_what_the_writers_produce() -> None:
    assert os.urandom(0) == b""  # keep the module importable without a repository
    assert vf.parse_node(NODE).level == 1 and ptree.decode_node(NODE)[0] == 1
    assert len(vf.parse_toc(TOC, 100)) == len(ppack.parse_toc(TOC, None)) == 2


def test_regressions_found_by_this_fuzzer() -> None:
    """An unhashable audit event (TypeError) and non-ASCII base64 (a bare ValueError)."""
    with pytest.raises(vf.FormatError):
        vf.parse_audit_entry(json.dumps({**AUDIT, "event": []}).encode(), 1)
    bad_key = json.dumps({**KEYFILE, "data": "\u0080"}).encode()
    with pytest.raises(vf.FormatError):
        vf.parse_key_file(bad_key)
    with pytest.raises(pcrypto.KeyFileError):
        pcrypto.unwrap_master_key(bad_key, "pw")
