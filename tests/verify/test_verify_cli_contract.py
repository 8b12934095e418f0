"""drbdverify's error path and small promises (DESIGN section 9, issue 16), and agreement with
the writer on an empty repository and on stale-lock removal (issue 20)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from specwriter import SpecRepo
from vhelpers import Fixture, flip, run_verify

ROOT = Path(__file__).resolve().parents[2]
XSD = Path(__file__).with_name("junit.xsd")
PREFIX = "drbdverify: error: "
EMPTY = "repository holds no generations: nothing to verify"


def product(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DRBDBACKUP_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "drbdbackup.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=str(ROOT))


def verify_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=str(ROOT))


# ---------------------------------------------------------------- the error path


@pytest.mark.parametrize("case", ["usage", "no-repo", "unknown-volume", "bad-generation"])
def test_json_failure_is_one_object_and_one_prefixed_line(plain_fx: Fixture, tmp_path: Path,
                                                          case: str) -> None:
    args = {"usage": ["--repo", plain_fx.path, "--sample", "7"],
            "no-repo": ["--repo", str(tmp_path / "nope")],
            "unknown-volume": ["--repo", plain_fx.path, "--volume-id", "nope"],
            "bad-generation": ["--repo", plain_fx.path, "--generation", "x"]}[case]
    r = run_verify(*args, "--json")
    assert r.rc == 2
    (line,) = r.err.splitlines()
    assert line.startswith(PREFIX), r.err
    obj = json.loads(r.out)
    assert obj["ok"] is False and obj["exit_code"] == 2
    assert obj["error"] == line.removeprefix(PREFIX)


def test_every_error_line_has_the_prefix(plain_fx: Fixture, tmp_path: Path) -> None:
    flip(plain_fx.repo.obj("config"), 3)  # unreadable config: exit 1
    r = run_verify("--repo", plain_fx.path)
    assert r.rc == 1 and r.err.startswith(PREFIX) and r.err.count("\n") == 1
    p = verify_process("--bogus")
    assert p.returncode == 2 and p.stderr.startswith(PREFIX) and p.stderr.count("\n") == 1


def test_debug_adds_a_traceback_and_keeps_the_exit_code(plain_fx: Fixture) -> None:
    p = verify_process("--repo", plain_fx.path, "--sample", "7", "--debug")
    assert p.returncode == 2 and "Traceback" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(PREFIX)
    p = verify_process("--debug")  # --repo missing: argparse's usage error
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith(PREFIX)


def test_version() -> None:
    p = verify_process("--version")
    assert p.returncode == 0 and p.stdout.startswith("drbdverify ")
    word = p.stdout.split()[1]
    assert word == "unknown" or word[0].isdigit()


# ---------------------------------------------------------------- empty repository


def test_empty_repository_is_not_an_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert product("init", "--repo", str(repo), "--chunk-size", "65536").returncode == 0
    assert product("check", "--repo", str(repo)).returncode == 0
    r = run_verify("--repo", str(repo))
    assert r.rc == 0 and EMPTY in r.out and "verdict: EMPTY" in r.out, r.out + r.err
    junit = tmp_path / "v.xml"
    r = run_verify("--repo", str(repo), "--json", "--full", "--junit", str(junit))
    assert r.rc == 0
    assert (r.json["ok"], r.json["verdict"], r.json["chunks_checked"]) == (True, "empty", 0)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "1" and suite.get("tests") == "1"
    (case,) = suite.findall("testcase")
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == EMPTY
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(XSD)).validate(str(junit))


def test_empty_repository_named_volume_or_generation_is_still_usage(tmp_path: Path) -> None:
    SpecRepo(str(tmp_path / "repo"))
    for extra in (["--volume-id", "vm-1"], ["--generation", "20261125T124000123456Z-1a2b3c4d"]):
        r = run_verify("--repo", str(tmp_path / "repo"), "--json", *extra)
        assert r.rc == 2 and r.json["ok"] is False, r.err


def test_empty_repository_with_a_broken_audit_chain_fails(tmp_path: Path) -> None:
    spec = SpecRepo(str(tmp_path / "repo"))
    spec.audit("check", {})
    os.remove(spec.obj("audit/000000000001"))
    r = run_verify("--repo", spec.path, "--json", "--no-audit")
    assert r.rc == 1 and r.json["verdict"] == "fail"


# ---------------------------------------------------------------- the writer's audit events


def test_repository_where_a_stale_lock_was_removed_verifies_clean(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    disk = tmp_path / "disk.img"
    disk.write_bytes(os.urandom(3 * 65536) + bytes(65536))
    assert product("init", "--repo", str(repo), "--chunk-size", "65536").returncode == 0
    (repo / "locks").mkdir(exist_ok=True)
    past = datetime.now(UTC) - timedelta(hours=2)
    stale = {"exclusive": True, "operation": "prune", "hostname": socket.gethostname(),
             "pid": 2**22 + 12345, "owner": "root@crashed", "created": past.isoformat(),
             "expires": (past + timedelta(minutes=30)).isoformat()}
    (repo / "locks" / os.urandom(16).hex()).write_text(json.dumps(stale))
    p = product("backup", "--repo", str(repo), "--file", str(disk), "--volume-id", "vm-1")
    assert p.returncode == 0, p.stderr
    events = [json.loads(f.read_text())["event"] for f in sorted((repo / "audit").iterdir())]
    assert "lock" in events, events
    r = run_verify("--repo", str(repo), "--full", "--json")
    assert r.rc == 0, json.dumps(r.json["findings"], indent=1)
    assert not [f for f in r.json["findings"] if f["kind"] == "audit-chain"]
