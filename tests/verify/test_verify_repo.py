"""drbdverify against repositories written by the spec writer, clean and corrupted."""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from specwriter import SpecRepo, volume_bytes
from vhelpers import CS, PASSPHRASE, Fixture, flip, make_fixture, run_verify

from verify.keys import open_sealed
from verify.sampler import bucket

XSD = os.path.join(os.path.dirname(__file__), "junit.xsd")


def findings(res: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [f for f in res["findings"] if kind is None or f["kind"] == kind]


def first_data_position(fx: Fixture, unique: bool = True) -> int:
    ids = fx.written.chunk_ids
    for i, c in enumerate(ids):
        if c != bytes(32) and (not unique or ids.count(c) == 1):
            return i
    raise AssertionError("no data chunk")


def chunk_bytes_range(fx: Fixture, pos: int) -> list[int]:
    return [pos * CS, min((pos + 1) * CS, len(fx.data))]


# ---------------------------------------------------------------- clean repositories


def test_clean_full_with_source(fx: Fixture) -> None:
    r = run_verify("--repo", fx.path, "--full", "--source", fx.source, "--json")
    assert r.rc == 0, r.out + r.err
    j = r.json
    n = math.ceil(len(fx.data) / CS)
    assert j["ok"] is True and j["verdict"] == "pass"
    assert (j["volume_id"], j["generation"]) == ("vm-1", fx.written.generation)
    assert j["chunks_checked"] == n and j["chunks_failed"] == 0
    assert j["bytes_compared_with_source"] == len(fx.data)
    assert j["findings"] == []
    assert j["checks"][0]["tree_nodes_checked"] == sum(len(lv) for lv in fx.written.node_ids)
    assert os.listdir(os.path.join(fx.path, "locks")) == []
    assert j["audit_entry"] == "audit/000000000003"
    entry = json.loads(Path(fx.path, "audit", "000000000003").read_bytes())
    details = entry.get("details")
    if fx.repo.encrypted:  # sealed (format.md 12): sizes and texts are not in clear
        assert details is None
        sealed = base64.b64decode(entry["sealed"])
        details = json.loads(open_sealed(fx.repo.master[:32], sealed, b"drbdbackup-audit-v1"))
    assert entry["event"] == "verify" and details["verdict"] == "pass"
    assert PASSPHRASE not in json.dumps(entry)
    # the chain we extended is still valid
    again = run_verify("--repo", fx.path, "--json", "--no-audit")
    assert again.rc == 0 and again.json["findings"] == []


def test_default_sample_and_confidence(fx: Fixture) -> None:
    r = run_verify("--repo", fx.path, "--json", "--seed", "7")
    assert r.rc == 0, r.err
    n = math.ceil(len(fx.data) / CS)
    m = max(1, math.ceil(0.05 * n))
    assert r.json["chunks_checked"] == m
    assert f"{(1 - m / n):.2%}" in r.json["confidence"]
    assert f"{(1 - m / n) ** 10:.2%}" in r.json["confidence"]
    miss = r.json["checks"][0]["miss_probability"]
    assert miss["1"] == pytest.approx(1 - m / n, abs=1e-6)
    assert miss["10"] == pytest.approx((1 - m / n) ** 10, abs=1e-6)
    r2 = run_verify("--repo", fx.path, "--json", "--seed", "7", "--sample", "0.5")
    assert r2.json["chunks_checked"] == math.ceil(0.5 * n)
    text = run_verify("--repo", fx.path, "--seed", "7").out
    assert f"checked {m} of {n} chunks" in text and "probability" in text


def test_sample_is_reproducible(plain_fx: Fixture) -> None:
    a = run_verify("--repo", plain_fx.path, "--json", "--seed", "3", "--sample", "0.2",
                   "--source", plain_fx.source).json
    b = run_verify("--repo", plain_fx.path, "--json", "--seed", "3", "--sample", "0.2",
                   "--source", plain_fx.source).json
    assert a["bytes_compared_with_source"] == b["bytes_compared_with_source"] > 0


def test_multiple_volumes_and_generations(tmp_path: Any) -> None:
    repo = SpecRepo(str(tmp_path / "r"), fanout=4)
    d1 = volume_bytes(20, CS, seed=1)
    repo.backup("a", d1)
    d2 = bytearray(d1)
    d2[5 * CS] ^= 1
    w2 = repo.backup("a", bytes(d2), mode="incremental")
    repo.backup("b", volume_bytes(3, CS, seed=2))
    repo.backup("empty", b"")
    r = run_verify("--repo", repo.path, "--json", "--full")  # every retained generation
    assert r.rc == 0, r.out
    assert [(c["volume_id"], c["verdict"]) for c in r.json["checks"]] == [
        ("a", "pass"), ("a", "pass"), ("b", "pass"), ("empty", "pass")]
    r = run_verify("--repo", repo.path, "--json", "--full", "--generation", "latest")
    assert r.rc == 0, r.out
    assert [(c["volume_id"], c["verdict"]) for c in r.json["checks"]] == [
        ("a", "pass"), ("b", "pass"), ("empty", "pass")]
    assert r.json["checks"][0]["generation"] == w2.generation
    assert r.json["volume_id"] is None
    r = run_verify("--repo", repo.path, "--json", "--full", "--volume-id", "a", "--generation", "all")
    assert r.rc == 0 and len(r.json["checks"]) == 2
    r = run_verify("--repo", repo.path, "--json", "--generation", w2.generation)
    assert r.rc == 0 and r.json["generation"] == w2.generation


# ---------------------------------------------------------------- corruption


@pytest.mark.parametrize("mode", [["--full"], ["--sample", "1"]])
def test_flipped_chunk_data(fx: Fixture, mode: list[str]) -> None:
    pos = first_data_position(fx)
    cid = fx.written.chunk_ids[pos]
    pack, off, ln = fx.repo.locate(cid)
    flip(pack, off + ln // 2)
    r = run_verify("--repo", fx.path, "--json", *mode)
    assert r.rc == 1, r.out
    j = r.json
    assert not j["ok"] and j["chunks_failed"] >= 1
    bad = [f for f in findings(j, "chunk-damaged") if f["chunk_id"] == cid.hex()]
    assert len(bad) == 1
    f = bad[0]
    assert (f["volume_id"], f["generation"]) == ("vm-1", fx.written.generation)
    assert f["byte_ranges"] == [chunk_bytes_range(fx, pos)]
    assert f["object"] == os.path.relpath(pack, fx.path)
    copy = [f for f in findings(j, "blob-copy") if f["chunk_id"] == cid.hex()]
    assert copy and copy[0]["object"] == os.path.relpath(pack, fx.path)
    pid = os.path.basename(pack)
    assert os.path.exists(os.path.join(fx.path, "quarantine", f"{cid.hex()}-{pid}"))
    q = json.loads(Path(fx.path, "quarantine", f"{cid.hex()}-{pid}").read_bytes())
    assert q["id"] == cid.hex() and q["pack"] == pid and q["found_by"] == "drbdverify"
    events = [json.loads(p.read_bytes())["event"] for p in sorted(Path(fx.path, "audit").iterdir())]
    assert events[-2:] == ["quarantine", "verify"]
    if mode == ["--full"]:  # the whole pack is re-hashed in full mode
        assert any(f["object"] == os.path.relpath(pack, fx.path)
                   for f in findings(j, "pack-damaged"))
    # a second run sees the quarantine record and still reports the generation damaged
    r2 = run_verify("--repo", fx.path, "--json", "--sample", "0.01")
    assert r2.rc == 1
    assert any(f["chunk_id"] == cid.hex() and "quarantined" in f["message"]
               for f in findings(r2.json, "chunk-damaged"))


def test_no_quarantine_flag(plain_fx: Fixture) -> None:
    cid = plain_fx.written.chunk_ids[first_data_position(plain_fx)]
    pack, off, ln = plain_fx.repo.locate(cid)
    flip(pack, off + 1)
    r = run_verify("--repo", plain_fx.path, "--full", "--no-quarantine")
    assert r.rc == 1
    assert not os.path.exists(os.path.join(plain_fx.path, "quarantine"))


def test_flipped_toc(fx: Fixture) -> None:
    pack_id = fx.written.packs[0]
    path = fx.repo.obj(f"packs/{pack_id[:2]}/{pack_id}")
    flip(path, -12 - 20)  # inside TocStored (the last TOC entry / the GCM tag)
    r = run_verify("--repo", fx.path, "--json", "--sample", "0.01")
    assert r.rc == 1
    j = r.json
    (pf,) = [f for f in findings(j, "pack-damaged") if pack_id in f["object"]]
    assert "TOC" in pf["message"]
    # every chunk stored only in that pack is named, with its volume bytes
    in_pack = {bid for bid, locs in fx.repo.locations.items() if locs[0][0] == pack_id}
    named = {bytes.fromhex(f["chunk_id"]) for f in j["findings"]
             if f["kind"] in ("chunk-damaged", "tree-node")}
    referenced = set(fx.written.chunk_ids) | {n for lv in fx.written.node_ids for n in lv}
    assert in_pack & referenced <= named | {bytes(32)}
    assert all(f["byte_ranges"] for f in findings(j, "chunk-damaged"))


def test_flipped_toc_count(plain_fx: Fixture) -> None:
    pack_id = plain_fx.written.packs[-1]
    path = plain_fx.repo.obj(f"packs/{pack_id[:2]}/{pack_id}")
    size = os.path.getsize(path)
    toc_len = int.from_bytes(Path(path).read_bytes()[-12:-8], "little")
    flip(path, size - 12 - toc_len)  # the Count field
    r = run_verify("--repo", plain_fx.path, "--json")
    assert r.rc == 1
    assert any(pack_id in f["object"] for f in findings(r.json, "pack-damaged"))


@pytest.mark.parametrize("level,index", [(0, 1), (1, 0), (2, 0)])
def test_flipped_tree_node(fx: Fixture, level: int, index: int) -> None:
    nid = fx.written.node_ids[level][index]
    pack, off, ln = fx.repo.locate(nid)
    flip(pack, off + ln - 3)
    r = run_verify("--repo", fx.path, "--json", "--sample", "0.01")
    assert r.rc == 1
    (f,) = [f for f in findings(r.json, "tree-node") if f["chunk_id"] == nid.hex()]
    span = 4 ** (level + 1)
    start, end = index * span * CS, min((index + 1) * span * CS, len(fx.data))
    assert f["byte_ranges"] == [[start, end]]
    assert f["volume_id"] == "vm-1" and f["generation"] == fx.written.generation
    assert r.json["chunks_failed"] == math.ceil(end / CS) - index * span


def test_flipped_generation_record(fx: Fixture) -> None:
    name = f"generations/vm-1/{fx.written.generation}"
    flip(fx.repo.obj(name), 40)
    r = run_verify("--repo", fx.path, "--json")
    assert r.rc == 1
    (f,) = findings(r.json, "record")
    assert f["object"] == name and f["generation"] == fx.written.generation
    assert ("GCM" in f["message"]) == fx.repo.encrypted


def _rewrite_record(fx: Fixture, **changes: Any) -> None:
    name = f"generations/vm-1/{fx.written.generation}"
    path = fx.repo.obj(name)
    raw = Path(path).read_bytes()
    if fx.repo.encrypted:
        from verify.keys import open_sealed

        raw = open_sealed(fx.repo.master[:32], raw, b"drbdbackup-generation-v1")
    rec = json.loads(raw)
    rec.update(changes)
    Path(path).write_bytes(fx.repo.seal(json.dumps(rec).encode(), b"drbdbackup-generation-v1"))


def test_record_from_another_repository(fx: Fixture) -> None:
    _rewrite_record(fx, repository_id="ee" * 32)
    r = run_verify("--repo", fx.path, "--json")
    assert r.rc == 1
    assert "repository_id" in findings(r.json, "record")[0]["message"]


def test_record_root_mismatch(fx: Fixture) -> None:
    _rewrite_record(fx, root="12" * 32)
    r = run_verify("--repo", fx.path, "--json")
    assert r.rc == 1
    (f,) = findings(r.json, "tree-node")
    assert f["chunk_id"] == "12" * 32 and f["byte_ranges"] == [[0, len(fx.data)]]
    _rewrite_record(fx, root=fx.written.node_ids[1][0].hex())  # a real node, wrong level
    r = run_verify("--repo", fx.path, "--json")
    assert r.rc == 1 and findings(r.json, "tree-node")


def test_record_tree_height_mismatch(plain_fx: Fixture) -> None:
    _rewrite_record(plain_fx, tree_height=7)
    r = run_verify("--repo", plain_fx.path, "--json")
    assert r.rc == 1 and "tree_height" in findings(r.json, "record")[0]["message"]


def test_audit_chain_flip(fx: Fixture) -> None:
    flip(fx.repo.obj("audit/000000000001"), 30)
    r = run_verify("--repo", fx.path, "--json")
    assert r.rc == 1
    objs = {f["object"] for f in findings(r.json, "audit-chain")}
    assert objs & {"audit/000000000001", "audit/000000000002"}
    # the verifier still appends its own entry after the last one
    assert r.json["audit_entry"] == "audit/000000000003"


def test_audit_chain_missing_entry(plain_fx: Fixture) -> None:
    plain_fx.repo.audit("backup", {})
    os.remove(plain_fx.repo.obj("audit/000000000002"))
    r = run_verify("--repo", plain_fx.path, "--json")
    assert r.rc == 1
    assert "missing" in findings(r.json, "audit-chain")[0]["message"]


def _packs_with_data(fx: Fixture) -> str:
    pos = first_data_position(fx)
    pack, _o, _l = fx.repo.locate(fx.written.chunk_ids[pos])
    return pack


def test_deleted_pack(fx: Fixture) -> None:
    pack = _packs_with_data(fx)
    os.remove(pack)
    r = run_verify("--repo", fx.path, "--json", "--sample", "0.01")
    assert r.rc == 1
    rel = os.path.relpath(pack, fx.path)
    assert [f["object"] for f in findings(r.json, "pack-missing")] == [rel]
    pid = os.path.basename(pack)
    lost = [p for p, c in enumerate(fx.written.chunk_ids)
            if c != bytes(32) and fx.repo.locations[c][0][0] == pid]
    got = sorted(tuple(rg) for f in findings(r.json, "chunk-damaged") for rg in f["byte_ranges"])
    want = [tuple(chunk_bytes_range(fx, p)) for p in lost]
    from verify.results import merge_ranges

    assert merge_ranges(got) == merge_ranges(want)
    assert r.json["chunks_failed"] >= len(lost)


def test_truncated_pack(fx: Fixture) -> None:
    pack = _packs_with_data(fx)
    size = os.path.getsize(pack)
    os.truncate(pack, size // 2)
    r = run_verify("--repo", fx.path, "--json")
    assert r.rc == 1
    (f,) = [f for f in findings(r.json, "pack-damaged")
            if f["object"] == os.path.relpath(pack, fx.path)]
    assert "truncated" in f["message"] or "magic" in f["message"]


def test_damaged_index_file(plain_fx: Fixture) -> None:
    path = plain_fx.repo.obj(f"index/{plain_fx.written.index}")
    flip(path, 10)
    r = run_verify("--repo", plain_fx.path, "--json")
    assert r.rc == 1
    assert findings(r.json, "index-hash")[0]["object"] == f"index/{plain_fx.written.index}"


def test_healing_with_a_second_copy(tmp_path: Any) -> None:
    fx = make_fixture(tmp_path, False)
    pos = first_data_position(fx)
    cid = fx.written.chunk_ids[pos]
    piece = fx.data[pos * CS : (pos + 1) * CS]
    packs, index = fx.repo.write_packs([(0, cid, piece)])
    fx.repo.write_index(index)
    bad_pack, off, ln = fx.repo.locate(cid, 0)
    flip(bad_pack, off + 2)
    r = run_verify("--repo", fx.path, "--json", "--sample", "1")
    assert r.rc == 1  # a bad copy is damage, even though the generation is restorable
    assert r.json["checks"][0]["verdict"] == "pass"
    assert findings(r.json, "blob-copy")[0]["chunk_id"] == cid.hex()
    r2 = run_verify("--repo", fx.path, "--json", "--sample", "1")
    assert r2.rc == 0, r2.out  # the quarantined copy is skipped; the other copy verifies


# ---------------------------------------------------------------- passphrase


def test_wrong_and_missing_passphrase(tmp_path: Any) -> None:
    fx = make_fixture(tmp_path, True)
    r = run_verify("--repo", fx.path, password="nope")
    assert (r.rc, r.err, r.out) == (2, "drbdverify: error: wrong passphrase\n", "")
    r = run_verify("--repo", fx.path, password=None)
    assert r.rc == 2 and "DRBDBACKUP_PASSWORD" in r.err and r.err.count("\n") == 1
    pw = tmp_path / "pw"
    pw.write_text(PASSPHRASE + "\n")
    r = run_verify("--repo", fx.path, "--password-file", str(pw), password=None)
    assert r.rc == 0, r.err
    fx.repo.add_key("second passphrase")
    assert run_verify("--repo", fx.path, password="second passphrase").rc == 0
    r = run_verify("--repo", fx.path, "--password-file", str(tmp_path / "nope"), password=None)
    assert r.rc == 2


# ---------------------------------------------------------------- source comparison


def test_source_mismatch(fx: Fixture) -> None:
    pos = first_data_position(fx)
    zero_pos = fx.written.chunk_ids.index(bytes(32))
    src = bytearray(fx.data)
    src[pos * CS + 100] ^= 0xFF
    src[zero_pos * CS + 7] ^= 0xFF
    Path(fx.source).write_bytes(src)
    r = run_verify("--repo", fx.path, "--json", "--full", "--source", fx.source)
    assert r.rc == 1
    j = r.json
    mism = findings(j, "source-mismatch")
    assert sorted(f["byte_ranges"][0] for f in mism) == sorted(
        [chunk_bytes_range(fx, pos), chunk_bytes_range(fx, zero_pos)])
    assert {f["chunk_id"] for f in mism} == {fx.written.chunk_ids[pos].hex(), "0" * 64}
    assert j["checks"][0]["source_verdict"] == "fail"
    assert j["chunks_failed"] == 2
    assert j["bytes_compared_with_source"] == len(fx.data)


def test_source_shorter(plain_fx: Fixture) -> None:
    Path(plain_fx.source).write_bytes(plain_fx.data[:-10])
    r = run_verify("--repo", plain_fx.path, "--json", "--full", "--source", plain_fx.source)
    assert r.rc == 1
    assert "shorter" in findings(r.json, "source-mismatch")[0]["message"]


def test_source_missing_is_unverifiable(plain_fx: Fixture) -> None:
    os.remove(plain_fx.source)
    r = run_verify("--repo", plain_fx.path, "--json", "--source", plain_fx.source)
    assert r.rc == 3
    j = r.json
    assert j["verdict"] == "unverifiable" and j["ok"] is False
    assert j["checks"][0]["source_verdict"] == "unverifiable"


def test_source_needs_one_volume(tmp_path: Any) -> None:
    repo = SpecRepo(str(tmp_path / "r"))
    repo.backup("a", b"x" * 100)
    repo.backup("b", b"y" * 100)
    r = run_verify("--repo", repo.path, "--source", "/dev/null")
    assert r.rc == 2 and "--volume-id" in r.err


# ---------------------------------------------------------------- subsets


def test_subset_covers_everything(plain_fx: Fixture) -> None:
    n_chunks = math.ceil(len(plain_fx.data) / CS)
    t = 4
    total = compared = 0
    for n in range(1, t + 1):
        r = run_verify("--repo", plain_fx.path, "--json", "--subset", f"{n}/{t}",
                       "--source", plain_fx.source, "--no-audit")
        assert r.rc == 0, r.out
        total += r.json["chunks_checked"]
        compared += r.json["bytes_compared_with_source"]
    assert total == n_chunks
    assert compared == len(plain_fx.data)


def test_subset_finds_the_damage_in_its_bucket(plain_fx: Fixture) -> None:
    pos = first_data_position(plain_fx)
    cid = plain_fx.written.chunk_ids[pos]
    pack, off, ln = plain_fx.repo.locate(cid)
    flip(pack, off + ln // 2)
    t = 3
    hit = bucket(cid.hex(), t) + 1
    for n in range(1, t + 1):
        r = run_verify("--repo", plain_fx.path, "--json", "--subset", f"{n}/{t}",
                       "--no-quarantine", "--no-audit")
        named = any(f.get("chunk_id") == cid.hex() for f in r.json["findings"])
        if n == hit:
            assert r.rc == 1 and named


# ---------------------------------------------------------------- JUnit


def _validate(path: str) -> Any:
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(XSD)
    schema.validate(path)
    import xml.etree.ElementTree as ET

    return ET.parse(path).getroot()


def test_junit_pass_and_fail(fx: Fixture, tmp_path: Any) -> None:
    out = str(tmp_path / "ok.xml")
    assert run_verify("--repo", fx.path, "--junit", out).rc == 0
    root = _validate(out)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    cases = suite.findall("testcase")
    assert cases[0].get("classname") == "drbdverify.vm-1"
    assert cases[0].get("name") == fx.written.generation
    os.remove(_packs_with_data(fx))
    bad = str(tmp_path / "bad.xml")
    assert run_verify("--repo", fx.path, "--junit", bad).rc == 1
    root = _validate(bad)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    assert root.get("failures") == "2"
    fail = suite.find("testcase/failure")
    assert fail is not None and "chunk" in (fail.text or "")


def test_junit_unverifiable_is_an_error(plain_fx: Fixture, tmp_path: Any) -> None:
    out = str(tmp_path / "u.xml")
    r = run_verify("--repo", plain_fx.path, "--junit", out, "--source", str(tmp_path / "gone"))
    assert r.rc == 3
    suite = _validate(out).find("testsuite")
    assert suite is not None and suite.get("errors") == "1"


# ---------------------------------------------------------------- usage, locks, tracebacks


def test_usage_errors(plain_fx: Fixture, tmp_path: Any) -> None:
    for args in ([], ["--repo", str(tmp_path / "nope")], ["--repo", plain_fx.path, "--sample", "0"],
                 ["--repo", plain_fx.path, "--sample", "1.5"],
                 ["--repo", plain_fx.path, "--subset", "5/4"],
                 ["--repo", plain_fx.path, "--full", "--sample", "0.1"],
                 ["--repo", plain_fx.path, "--volume-id", "other"],
                 ["--repo", plain_fx.path, "--generation", "20990101T000000000000Z-00000000"],
                 ["--repo", "s3://"]):
        r = run_verify(*args)
        assert r.rc == 2, (args, r.err)
        assert r.err.count("\n") == 1 and r.err.startswith("drbdverify: "), r.err


def test_unsupported_format_and_broken_config(plain_fx: Fixture) -> None:
    cfg_path = plain_fx.repo.obj("config")
    flip(cfg_path, 3)
    r = run_verify("--repo", plain_fx.path)
    assert r.rc == 1 and r.err.count("\n") == 1


def _lock(fx: Fixture, exclusive: bool, expires: datetime) -> None:
    body = {"exclusive": exclusive, "operation": "prune", "hostname": "elsewhere", "pid": 1,
            "owner": "root@elsewhere", "created": datetime.now(UTC).isoformat(),
            "expires": expires.isoformat()}
    os.makedirs(fx.repo.obj("locks"), exist_ok=True)
    Path(fx.repo.obj(f"locks/{os.urandom(16).hex()}")).write_text(json.dumps(body))


def test_locked_repository(plain_fx: Fixture) -> None:
    _lock(plain_fx, True, datetime.now(UTC) + timedelta(minutes=10))
    r = run_verify("--repo", plain_fx.path)
    assert r.rc == 4 and "locked" in r.err and r.err.count("\n") == 1
    assert len(os.listdir(plain_fx.repo.obj("locks"))) == 1  # ours was removed


def test_stale_and_shared_locks_do_not_block(plain_fx: Fixture) -> None:
    _lock(plain_fx, True, datetime.now(UTC) - timedelta(minutes=1))
    _lock(plain_fx, False, datetime.now(UTC) + timedelta(minutes=10))
    r = run_verify("--repo", plain_fx.path, "--json")
    assert r.rc == 0
    (note,) = findings(r.json, "stale-lock")
    assert note["severity"] == "note" and note["object"].startswith("locks/")


def test_no_traceback_as_a_process(plain_fx: Fixture) -> None:
    os.remove(_packs_with_data(plain_fx))
    flip(plain_fx.repo.obj(f"generations/vm-1/{plain_fx.written.generation}"), 5)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))}
    p = subprocess.run([sys.executable, "-m", "verify", "--repo", plain_fx.path, "--full"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr + p.stdout
    p = subprocess.run([sys.executable, "-m", "verify", "--bogus"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1


def test_json_error_object(plain_fx: Fixture) -> None:
    r = run_verify("--repo", plain_fx.path, "--json", "--volume-id", "nope")
    assert r.rc == 2
    assert r.json == {"ok": False, "verdict": "error", "error": "no generations for volume nope",
                      "exit_code": 2}


class _CountingStore:
    """LocalStore wrapper that counts bytes read from packs, per read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.location = inner.location
        self.pack_bytes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open(self, name: str) -> Any:
        reader = self.inner.open(name)
        outer = self

        class R:
            size = reader.size

            def pread(self, offset: int, length: int) -> bytes:
                if name.startswith("packs/"):
                    outer.pack_bytes += length
                return reader.pread(offset, length)

            def close(self) -> None:
                reader.close()

        return R()


def test_sampling_reads_only_needed_ranges(tmp_path: Any) -> None:
    from verify.checker import Options, Verifier
    from verify.repository import Repository
    from verify.sampler import Selection
    from verify.store import LocalStore

    fx = make_fixture(tmp_path, False, n_chunks=200, pack_target=2_000_000)
    total = sum(p.stat().st_size for p in Path(fx.path, "packs").rglob("*") if p.is_file())

    def pack_bytes_read(sel: Selection) -> int:
        store = _CountingStore(LocalStore(fx.path))
        repo = Repository(store, None)  # type: ignore[arg-type]
        run = Verifier(repo, Options(sel, quarantine=False)).run([("vm-1", fx.written.generation)])
        assert run.verdict == "pass"
        return store.pack_bytes

    sampled = pack_bytes_read(Selection("sample", 0.02, seed=1))
    full = pack_bytes_read(Selection("full"))
    assert sampled < total / 5  # TOCs, tree nodes (read twice) and ~4 chunks, not whole packs
    assert total <= full <= total * 1.2  # one sequential pass per pack (+ structure/tree reads)


def test_chunk_of_the_wrong_length(tmp_path: Any) -> None:
    repo = SpecRepo(str(tmp_path / "r"), fanout=4)
    data = volume_bytes(6, CS, zero_every=0, partial=1000)

    def swap(ids: list[bytes]) -> list[bytes]:
        ids = list(ids)
        ids[0], ids[-1] = ids[-1], ids[0]
        return ids

    w = repo.backup("v", data, tamper=swap)
    r = run_verify("--repo", repo.path, "--json", "--sample", "0.01")
    assert r.rc == 1
    got = {f["chunk_id"]: f["byte_ranges"] for f in findings(r.json, "chunk-length")}
    assert got == {w.chunk_ids[0].hex(): [[0, CS]],
                   w.chunk_ids[-1].hex(): [[6 * CS, 6 * CS + 1000]]}


def test_full_names_a_damaged_older_generation(tmp_path: Any) -> None:
    """--full covers every retained generation: damage a pack only the first generation uses
    (the latest passes, as it did when --full looked at the latest alone)."""
    repo = SpecRepo(str(tmp_path / "r"), fanout=4)
    w1 = repo.backup("a", volume_bytes(8, CS, seed=3))
    w2 = repo.backup("a", volume_bytes(8, CS, seed=4))
    stored = [c for c in w1.chunk_ids if any(c)]  # not the zero marker
    assert stored and not set(stored) & set(w2.chunk_ids)
    pack, off, ln = repo.locate(stored[0])
    flip(pack, off + ln // 2)
    r = run_verify("--repo", repo.path, "--json", "--full", "--no-quarantine")
    assert r.rc == 1, r.out
    verdicts = {c["generation"]: c["verdict"] for c in r.json["checks"]}
    assert verdicts == {w1.generation: "fail", w2.generation: "pass"}
    assert any(w1.generation in json.dumps(f) for c in r.json["checks"] for f in c["findings"])
    r = run_verify("--repo", repo.path, "--json", "--full", "--generation", "latest",
                   "--no-quarantine")
    assert r.rc == 0 and [c["generation"] for c in r.json["checks"]] == [w2.generation]
