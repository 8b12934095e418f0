"""The readers agree with the writer (issue 20): a repository holding every object kind and every
audit event the tools write (init, backup, restore, check, failure, lock with a stale lock
removed, verify, quarantine, a heal by a later backup, prune, key) is accepted by both `check
--read-data` and `drbdverify --full`, encrypted and not. drbdverify once FAILed any repository
in which a stale lock had been removed (its list of events lacked `lock`).

Commands run in-process through each tool's main (the same code as the console scripts)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drbdbackup.cli import main as drbdbackup_main
from drbdbackup.repo import crypto
from drbdbackup.repo.audit import EVENTS
from verify import keys
from verify.cli import main as drbdverify_main

PASSWORD = "conformance"
KIB = 1 << 10
DEAD_PID = 4_194_000  # above any pid_max a test host uses


@pytest.fixture(autouse=True)
def _one_scrypt_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Derive each key once (the writers' scrypt takes ~1 s and every command opens the key)."""
    import functools

    monkeypatch.setattr(crypto, "_kek", functools.lru_cache(maxsize=4)(crypto._kek))
    monkeypatch.setattr(keys, "derive_kek", functools.lru_cache(maxsize=4)(keys.derive_kek))


def tool(main: object, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))  # type: ignore[operator]
    return rc, out.getvalue(), err.getvalue()


def ok(main: object, *argv: str) -> str:
    rc, out, err = tool(main, *argv)
    assert rc == 0, (argv, rc, out[-2000:], err)
    return out


def plant_stale_lock(repo: Path) -> str:
    """What a crashed run on this host leaves behind: its pid is gone."""
    now = datetime.now(UTC)
    name = secrets.token_hex(16)
    (repo / "locks").mkdir(exist_ok=True)
    (repo / "locks" / name).write_text(json.dumps({
        "exclusive": False, "operation": "backup", "hostname": socket.gethostname(),
        "pid": DEAD_PID, "owner": "root@crashed", "created": now.isoformat(),
        "expires": (now + timedelta(minutes=30)).isoformat()}))
    return name


def damage_one_data_blob(repo: Path) -> Path:
    """Flip a byte inside the first data blob of the largest pack (its TOC stays intact)."""
    pack = max((p for p in (repo / "packs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[40] ^= 0xFF
    pack.write_bytes(bytes(data))
    return pack


def audit_events(repo: Path) -> set[str]:
    """The events of the audit log (the event field is plain text in every repository)."""
    return {json.loads(p.read_bytes())["event"] for p in (repo / "audit").iterdir()}


@pytest.mark.parametrize("encryption", ["none", "aes-256-gcm"])
def test_check_and_drbdverify_accept_everything_the_writer_makes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption: str) -> None:
    monkeypatch.setenv("DRBDBACKUP_PASSWORD", PASSWORD)
    repo, disk_a, disk_b = tmp_path / "repo", tmp_path / "a.img", tmp_path / "b.img"
    r = str(repo)
    a = os.urandom(192 * KIB)
    disk_a.write_bytes(a)
    disk_b.write_bytes(os.urandom(64 * KIB) + bytes(128 * KIB))
    ok(drbdbackup_main, "init", "--repo", r, "--chunk-size", "64K", "--encryption", encryption)
    ok(drbdbackup_main, "backup", "--repo", r, "--file", str(disk_a), "--volume-id", "vm-a")
    ok(drbdbackup_main, "backup", "--repo", r, "--file", str(disk_b), "--volume-id", "vm-b")
    rc, _o, _e = tool(drbdbackup_main, "backup", "--repo", r, "--file", str(tmp_path / "gone"),
                      "--volume-id", "vm-c")
    assert rc == 3  # a failed run: its failure entry
    ok(drbdbackup_main, "restore", "--repo", r, "--volume-id", "vm-a", "--target",
       str(tmp_path / "restored.img"))
    assert (tmp_path / "restored.img").read_bytes() == a
    plant_stale_lock(repo)
    rc, _o, err = tool(drbdbackup_main, "check", "--repo", r, "--read-data")
    assert rc == 0 and "stale lock" in err, err
    # damage found by drbdverify: quarantined, then healed by the next backup of the same data
    damage_one_data_blob(repo)
    rc, out, _e = tool(drbdverify_main, "--repo", r, "--full")
    assert rc == 1, out
    assert any((repo / "quarantine").iterdir())
    ok(drbdbackup_main, "backup", "--repo", r, "--file", str(disk_a), "--volume-id", "vm-a")
    disk_a.write_bytes(a[: 64 * KIB] + os.urandom(64 * KIB) + a[128 * KIB :])
    ok(drbdbackup_main, "backup", "--repo", r, "--file", str(disk_a), "--volume-id", "vm-a")
    ok(drbdbackup_main, "prune", "--repo", r, "--keep-last", "2")
    if encryption != "none":  # a second passphrase: a second key file and a key entry
        (tmp_path / "pw2").write_text("another passphrase\n")
        ok(drbdbackup_main, "key", "add", "--repo", r, "--new-password-file", str(tmp_path / "pw2"))

    ok(drbdbackup_main, "check", "--repo", r, "--read-data")
    ok(drbdverify_main, "--repo", r, "--full")
    kinds = {p.relative_to(repo).parts[0] for p in repo.rglob("*") if p.is_file()}
    expected = {"config", "packs", "index", "generations", "audit", "quarantine"}
    assert expected | ({"keys"} if encryption != "none" else set()) <= kinds
    assert audit_events(repo) == EVENTS - ({"key"} if encryption == "none" else set())
