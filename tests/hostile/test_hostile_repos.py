"""The two hostile repositories of issue 20, made with the real product and then altered:
both readers end with exit 1 naming the object, under 300 MiB and within seconds.

1. four data blobs rewritten as zstd frames of 4e9 zero bytes (~122 KB each), plain_length
   4,000,000,000 in the TOC and the index, pack and index renamed to their new hashes;
2. an extra index file of 200,000 nested JSON arrays, named by its hash.

Peak RSS is the child's own (wait4), so it is what a user would see.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import blake3
import pytest

from tests.hostile.hostile import HUGE, Measured, nested_arrays, run_measured, zero_frame

MAX_RSS_MIB = 300
MAX_SECONDS = 30
MIB = 1 << 20


def _product(*args: str) -> Measured:
    return run_measured(["-m", "drbdbackup.cli", *args])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unencrypted repository holding one 4 MiB volume (four distinct 1 MiB chunks)."""
    base = tmp_path_factory.mktemp("hostile")
    disk = base / "disk.img"
    disk.write_bytes(os.urandom(4 * MIB))
    repo = base / "repo"
    for args in (["init", "--repo", str(repo)],
                 ["backup", "--repo", str(repo), "--file", str(disk), "--volume-id", "vm-1"]):
        r = _product(*args)
        assert r.rc == 0, r.err
    return base


def _copy(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "t")
    return tmp_path / "t" / "repo"


def _only(repo: Path, sub: str) -> Path:
    (path,) = [p for p in (repo / sub).rglob("*") if p.is_file()]
    return path


def inflate_four_blobs(repo: Path) -> tuple[str, str]:
    """Case 1; returns the new (pack object name, index object name)."""
    index_path = _only(repo, "index")
    index = json.loads(index_path.read_bytes())
    (pack_doc,) = index["packs"]
    old = repo / "packs" / pack_doc["id"][:2] / pack_doc["id"]
    raw = old.read_bytes()
    body = bytearray(raw[:16])
    toc = []
    inflated = 0
    for b in sorted(pack_doc["blobs"], key=lambda b: b["offset"]):
        stored = raw[b["offset"] : b["offset"] + b["length"]]
        if b["kind"] == 0:
            stored, b["plain_length"] = b"\x01" + zero_frame(), HUGE
            inflated += 1
        b["offset"], b["length"] = len(body), len(stored)
        toc.append(struct.pack("<B32sQII", b["kind"], bytes.fromhex(b["id"]), b["offset"],
                               b["length"], b["plain_length"]))
        body += stored
    assert inflated == 4
    toc_plain = struct.pack("<I", len(toc)) + b"".join(toc)
    body += toc_plain + struct.pack("<I", len(toc_plain)) + b"DRBDTOC1"
    pid = blake3.blake3(bytes(body)).hexdigest()
    (repo / "packs" / pid[:2]).mkdir(exist_ok=True)
    (repo / "packs" / pid[:2] / pid).write_bytes(bytes(body))
    old.unlink()
    pack_doc["id"] = pid
    data = json.dumps(index).encode()
    iid = blake3.blake3(data).hexdigest()
    (repo / "index" / iid).write_bytes(data)
    index_path.unlink()
    return f"packs/{pid[:2]}/{pid}", f"index/{iid}"


def add_nested_index(repo: Path) -> str:
    """Case 2; returns the garbage index's object name."""
    data = nested_arrays()
    iid = blake3.blake3(data).hexdigest()
    (repo / "index" / iid).write_bytes(data)
    return f"index/{iid}"


def _bounded(r: Measured, what: str) -> None:
    print(f"{what}: exit {r.rc}, peak RSS {r.max_rss_mib:.0f} MiB, {r.seconds:.1f} s")
    assert r.max_rss_mib < MAX_RSS_MIB, f"{what}: {r.max_rss_mib:.0f} MiB"
    assert r.seconds < MAX_SECONDS, f"{what}: {r.seconds:.1f} s"
    assert "internal error" not in r.err and "Traceback" not in r.err, r.err


def test_inflated_blobs_drbdverify_full(template: Path, tmp_path: Path) -> None:
    repo = _copy(template, tmp_path)
    pack, index = inflate_four_blobs(repo)
    r = run_measured(["-m", "verify", "--repo", str(repo), "--full", "--json"])
    _bounded(r, "drbdverify --full")
    assert r.rc == 1, r.err
    findings = json.loads(r.out)["findings"]
    named = {f["object"] for f in findings}
    assert pack in named and index in named, findings
    assert any("4000000000" in f["message"] for f in findings if f["object"] == pack)
    assert [f for f in findings if f["kind"] == "chunk-damaged"], findings


def test_inflated_blobs_product_commands(template: Path, tmp_path: Path) -> None:
    repo = _copy(template, tmp_path)
    _pack, index = inflate_four_blobs(repo)
    for args in (["check", "--repo", str(repo), "--read-data"],
                 ["restore", "--repo", str(repo), "--volume-id", "vm-1", "--target",
                  str(tmp_path / "out.img")]):
        r = _product(*args)
        _bounded(r, f"drbdbackup {args[0]}")
        assert r.rc == 1, r.err
        assert index in r.err + r.out or "4000000000" in r.err + r.out, r.err + r.out
    assert not (tmp_path / "out.img").exists() or (tmp_path / "out.img").stat().st_size == 0


def test_nested_index_drbdverify_names_it_and_checks_the_rest(template: Path, tmp_path: Path) -> None:
    repo = _copy(template, tmp_path)
    garbage = add_nested_index(repo)
    r = run_measured(["-m", "verify", "--repo", str(repo), "--full", "--json"])
    _bounded(r, "drbdverify --full (nested index)")
    assert r.rc == 1, r.err
    doc = json.loads(r.out)
    (bad,) = [f for f in doc["findings"] if f["object"] == garbage]
    assert bad["kind"] == "index-unreadable" and "deeper" in bad["message"]
    (check,) = doc["checks"]
    assert check["verdict"] == "pass" and check["chunks_checked"] == check["chunks_total"] == 4
    assert [f for f in doc["findings"] if f["severity"] == "fail"] == [bad]


def test_nested_index_product_commands_never_crash(template: Path, tmp_path: Path) -> None:
    repo = _copy(template, tmp_path)
    garbage = add_nested_index(repo)
    for args in (["check", "--repo", str(repo)], ["list", "--repo", str(repo)],
                 ["restore", "--repo", str(repo), "--volume-id", "vm-1", "--target",
                  str(tmp_path / "out.img")]):
        r = _product(*args)
        _bounded(r, f"drbdbackup {args[0]} (nested index)")
        assert r.rc in (0, 1), r.err
        if r.rc == 1:
            assert garbage in r.err + r.out, r.err + r.out
