"""The verifier's parsers hold every number against docs/format.md section 17 before using it."""

from __future__ import annotations

import base64
import json
import os
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard
from vhelpers import Fixture, run_verify

from verify import format as F
from verify.jsonobj import nesting_within
from verify.limits import BlobLimits
from verify.lock import SharedLock, is_stale, read_lock
from verify.results import PositionSet
from verify.store import LocalStore, ObjectTooLarge, get_capped

MIB = 1 << 20
DEEP = b"[" * 20_000 + b"]" * 20_000  # fits every size cap; json.loads alone would recurse out


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
    assert peak < max_mib * MIB, f"peak allocation {peak / MIB:.1f} MiB"
    assert time.monotonic() - start < max_s


def refused(fn: Callable[[], object]) -> str:
    with cheap(), pytest.raises(F.FormatError) as info:
        fn()
    return str(info.value)


def _zeros_frame(size: int) -> bytes:
    c = zstandard.ZstdCompressor(level=1).compressobj(size=size)
    return b"".join([c.compress(bytes(16 * MIB)) for _ in range(size // (16 * MIB))] + [c.flush()])


def test_zstd_output_is_capped_whatever_the_frame_header_claims() -> None:
    frame = b"\x01" + _zeros_frame(256 * MIB)
    assert "!= recorded" in refused(lambda: F.decode_blob(frame, 65536))
    assert "reader limit" in refused(lambda: F.decode_blob(frame, 4_000_000_000))
    assert "reader limit" in refused(lambda: F.decode_blob(frame, 2 * MIB, limit=MIB))


def test_blob_limits_by_kind() -> None:
    lim = BlobLimits(65536, 4)
    assert lim.max_plain(F.KIND_CHUNK) == 65536 and lim.max_plain(F.KIND_NODE) == 12 + 4 * 32
    assert lim.problem(0, 100, 65536) is None
    assert "chunk size" in str(lim.problem(0, 100, 65537))
    assert "tree node" in str(lim.problem(1, 10, 12 + 5 * 32))
    assert "stored length" in str(lim.problem(0, 65536 + 30, 65536))
    assert "kind" in str(lim.problem(2, 1, 1))


def test_toc_count_and_entries_against_the_pack() -> None:
    e = F.TocEntry(0, b"\x01" * 32, 16, 5, 9)
    refused(lambda: F.parse_toc(struct.pack("<I", 2**32 - 1) + bytes(49), 100))
    refused(lambda: F.parse_toc(F.build_toc_plain([e, F.TocEntry(0, b"\x02" * 32, 21, 5, 9)]), 17))
    lim = BlobLimits(65536, 4)
    assert "chunk size" in refused(lambda: F.parse_toc(
        F.build_toc_plain([F.TocEntry(0, e.id, 16, 5, 4_000_000_000)]), 100, lim))
    assert "tree node" in refused(lambda: F.parse_toc(
        F.build_toc_plain([F.TocEntry(1, e.id, 16, 5, 3 * MIB)]), 100, lim))
    assert "stored length" in refused(lambda: F.parse_toc(
        F.build_toc_plain([F.TocEntry(0, e.id, 16, 50, 9)]), 100, lim))
    assert F.parse_toc(F.build_toc_plain([e]), 100, lim) == [e]


def test_node_count_against_fanout_and_bytes() -> None:
    refused(lambda: F.parse_node(b"DRBT" + bytes(4) + struct.pack("<I", 2**32 - 1)))
    five = F.build_node(0, [bytes(32)] * 5)
    assert "fanout" in refused(lambda: F.parse_node(five, 4))
    assert len(F.parse_node(five, 5).ids) == 5


@pytest.mark.parametrize("parse", [
    F.parse_config, F.parse_index, F.parse_record, F.parse_key_file,
    lambda d: F.parse_audit_entry(d, 1),
])
def test_nested_arrays_are_a_format_error_in_every_json_object(parse: Callable[[bytes], Any]) -> None:
    assert "deeper" in refused(lambda: parse(DEEP))
    assert "deeper" in refused(lambda: parse(b'{"a": ' + DEEP + b"}"))


def test_json_size_caps() -> None:
    big = json.dumps({"format": 1, "x": "y" * (64 << 10)}).encode()
    assert "reader limit" in refused(lambda: F.parse_config(big))
    rec = json.dumps({"format": 1, "x": "y" * (1 << 20)}).encode()
    assert "reader limit" in refused(lambda: F.parse_record(rec))


@pytest.mark.parametrize("text,depth,ok", [
    (b"{}", 1, True), (b"[[[]]]", 3, True), (b"[[[]]]", 2, False),
    (b'{"a": "[[[[[["}', 1, True), (rb'{"a": "\"[[[["}', 1, True),
    (rb'{"a": "\\", "b": [[[]]]}', 3, False), (rb'{"a": "\\", "b": [[[]]]}', 4, True),
    (b"[}", 5, False), (b'["]", "["]', 1, True), (b'["", "[", ["]"]]', 2, True),
    (b'["", "[", ["]"]]', 1, False), (b'"[[[', 0, True), (b"", 0, True),
])
def test_nesting_prescan(text: bytes, depth: int, ok: bool) -> None:
    assert nesting_within(text, depth) is ok


@pytest.mark.parametrize("kw", [
    {"kind": "0"}, {"length": True}, {"offset": 3}, {"plain_length": -1}, {"length": 2**32},
    {"id": 5},
])
def test_index_wrong_types(kw: dict[str, object]) -> None:
    blob = {"id": "ef" * 32, "kind": 0, "offset": 16, "length": 10, "plain_length": 20, **kw}
    doc = {"format": 1, "packs": [{"id": "cd" * 32, "blobs": [blob]}]}
    refused(lambda: F.parse_index(json.dumps(doc).encode()))


def _rec(**kw: object) -> bytes:
    base = {"format": 2, "repository_id": "ab" * 32, "volume_id": "vm-1",
            "generation": "20261125T124000123456Z-1a2b3c4d", "created": "x", "parent": None,
            "mode": "full", "size_bytes": 65537, "chunk_size": 65536, "chunk_count": 2,
            "root": "00" * 32, "tree_height": 1, **kw}
    return json.dumps(base).encode()


def test_record_limits() -> None:
    assert F.parse_record(_rec()).chunk_count == 2
    n = 2**32 + 1
    refused(lambda: F.parse_record(_rec(size_bytes=n * 65536, chunk_count=n)))
    refused(lambda: F.parse_record(_rec(tree_height=65)))
    refused(lambda: F.parse_record(_rec(format=True)))


def test_audit_entry_events_and_types() -> None:
    e = {"seq": 1, "time": "t", "event": "lock", "prev": "0" * 64,
         "details": {"removed_stale_lock": "locks/x", "lock": {"pid": 1}}}
    assert F.parse_audit_entry(json.dumps(e).encode(), 1)["event"] == "lock"
    for bad in ({**e, "details": []}, {**e, "time": 5}, {**e, "seq": True}):
        refused(lambda bad=bad: F.parse_audit_entry(json.dumps(bad).encode(), 1))


def test_key_file_scrypt_memory_and_work() -> None:
    good = {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1,
            "salt": base64.b64encode(b"s" * 16).decode(),
            "data": base64.b64encode(b"d" * 92).decode()}
    assert F.parse_key_file(json.dumps(good).encode()).n == 32768
    for kw in ({"n": 2**20, "r": 32}, {"n": 2**20, "r": 8, "p": 16}, {"r": 33}, {"p": 17},
               {"salt": base64.b64encode(b"s" * 4).decode()}, {"n": "1024"}):
        refused(lambda kw=kw: F.parse_key_file(json.dumps({**good, **kw}).encode()))


def test_config_fanout_limit() -> None:
    base = {"format": 2, "repository_id": "ab" * 32, "chunk_size": 1 << 20, "tree_fanout": 65536,
            "encryption": "none"}
    assert F.parse_config(json.dumps(base).encode()).tree_fanout == 65536
    refused(lambda: F.parse_config(json.dumps({**base, "tree_fanout": 65537}).encode()))


def test_get_capped_reads_nothing_beyond_the_cap(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 1000)
    store = LocalStore(str(tmp_path))
    assert get_capped(store, "big", 1000) == b"x" * 1000
    with pytest.raises(ObjectTooLarge):
        get_capped(store, "big", 999)


def test_position_set_counts_ranges_without_materializing() -> None:
    ps = PositionSet()
    assert not ps and len(ps) == 0
    with cheap(max_mib=1):
        ps.add_range(0, 2**32)
        ps.add(5)
        ps.update([2**32, 2**32 + 1])
        assert len(ps) == 2**32 + 2 and ps


def _lock_body(**kw: object) -> bytes:
    body = {"exclusive": True, "operation": "prune", "hostname": "elsewhere", "pid": 1,
            "owner": "x", "created": "c",
            "expires": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(), **kw}
    return json.dumps(body).encode()


def test_garbage_locks_are_reported_and_do_not_block(plain_fx: Fixture) -> None:
    locks = Path(plain_fx.repo.obj("locks"))
    locks.mkdir(exist_ok=True)
    bodies = {"deep": DEEP, "huge": b'{"a": "' + b"x" * (65 << 10) + b'"}',
              "strexcl": _lock_body(exclusive="false"), "list": b"[]"}
    names = {}
    for tag, body in bodies.items():
        name = os.urandom(16).hex()
        (locks / name).write_bytes(body)
        names[tag] = f"locks/{name}"
    store = LocalStore(plain_fx.path)
    for tag in bodies:
        with pytest.raises(F.FormatError):
            read_lock(store, names[tag])
    with SharedLock(store) as lock:
        assert sorted(n for n, _why in lock.unreadable) == sorted(names.values())
    r = run_verify("--repo", plain_fx.path, "--json", "--no-audit")
    assert r.rc == 0, r.err
    notes = [f for f in r.json["findings"] if f["kind"] == "lock-unreadable"]
    assert sorted(f["object"] for f in notes) == sorted(names.values())


@pytest.mark.parametrize("pid", [10**30, -1, 0, True, "12"])
def test_lock_pid_out_of_range_is_not_a_crash(pid: object) -> None:
    lock = json.loads(_lock_body(pid=pid, hostname="me"))
    is_stale(lock, datetime.now(UTC), "me")  # no OverflowError, no signal to a process group
