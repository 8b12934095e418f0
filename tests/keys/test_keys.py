"""Key management through the ops layer on real encrypted repositories: several passphrases,
passwd, remove (never the last key), the paper copy, audit entries without secrets, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drbdbackup.errors import DiskFull, PasswordRequired, UsageError, WrongPassword
from drbdbackup.ops import keys
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.maintenance import InitRequest, check, init
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.repo import audit, crypto, keyfiles
from drbdbackup.repo import open as repo_open
from drbdbackup.repo.crypto import unwrap_master_key
from drbdbackup.repo.repository import Repository
from tests.doubles.faulty import FaultyBackend
from tests.helpers import REPO_ROOT, run_cli

OLD, SECOND, NEW = "old passphrase", "second-pass", "brand new"


def _ref(path: Path, password: str | None) -> RepositoryRef:
    return RepositoryRef.of(str(path), password)


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files written in-process use n = 2^10 (the file records n), to keep the tests fast."""
    monkeypatch.setattr(crypto, "SCRYPT_N", 1024)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    init(_ref(tmp_path / "r", OLD), InitRequest(chunk_size=65536, encryption="aes-256-gcm"))
    return tmp_path / "r"


def _opens(path: Path, password: str) -> bool:
    try:
        return check(_ref(path, password)).ok
    except WrongPassword:
        return False


def _key_entries(path: Path, password: str) -> list[dict]:
    """The details of the `key` entries (sealed in an encrypted repository: opened here)."""
    enc_key = Repository.open(repo_open.backend_for(str(path)), password).enc_key
    entries = [json.loads(p.read_bytes()) for p in sorted((path / "audit").iterdir())]
    return [audit.open_details(e, enc_key) or {} for e in entries if e["event"] == "key"]


def test_several_passphrases_passwd_and_remove(repo: Path) -> None:
    first = keys.list_keys(_ref(repo, OLD))
    assert len(first) == 1 and first[0]["opens"]
    added = keys.add_key(_ref(repo, OLD), SECOND)["key_id"]
    assert _opens(repo, OLD) and _opens(repo, SECOND)
    rows = {k["key_id"]: k["opens"] for k in keys.list_keys(_ref(repo, SECOND))}
    assert rows == {added: True, first[0]["key_id"]: False}
    with pytest.raises(UsageError, match="already opens key"):
        keys.add_key(_ref(repo, OLD), SECOND)

    changed = keys.change_passphrase(_ref(repo, OLD), NEW)["key_id"]
    assert changed == first[0]["key_id"], "passwd rewrites the key file the passphrase opens"
    assert sorted(p.name for p in (repo / "keys").iterdir()) == sorted([added, changed])
    assert not _opens(repo, OLD) and _opens(repo, NEW) and _opens(repo, SECOND)

    keys.remove_key(_ref(repo, SECOND), changed)
    assert not _opens(repo, NEW) and _opens(repo, SECOND)
    with pytest.raises(UsageError, match="last key") as ei:
        keys.remove_key(_ref(repo, SECOND), added)
    assert "\n" not in str(ei.value) and ei.value.exit_code == 2
    with pytest.raises(UsageError, match="no key"):
        keys.remove_key(_ref(repo, SECOND), "0" * 32)
    with pytest.raises(UsageError, match="invalid key id"):
        keys.remove_key(_ref(repo, SECOND), "../config")
    assert [(e["action"], e["key_id"]) for e in _key_entries(repo, SECOND)] == [
        ("add", added), ("passwd", changed), ("remove", changed)]
    src = repo.parent / "disk.img"
    src.write_bytes(bytes(range(256)) * 512)
    back_up_file(_ref(repo, SECOND), FileBackup(str(src), "v"), BackupOptions())
    verdict = subprocess.run([sys.executable, "-m", "verify", "--repo", str(repo), "--full", "--json"],
                             env={**os.environ, "DRBDBACKUP_PASSWORD": SECOND}, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert verdict.returncode == 0, verdict.stderr  # the independent reader: keys and audit log


def test_wrong_or_missing_passphrase(repo: Path) -> None:
    with pytest.raises(WrongPassword) as ei:
        keys.add_key(_ref(repo, "nope"), SECOND)
    assert ei.value.exit_code == 2
    with pytest.raises(PasswordRequired):
        keys.list_keys(_ref(repo, None))
    with pytest.raises(UsageError, match="new passphrase is missing"):
        keys.change_passphrase(_ref(repo, OLD), None)
    assert len(list((repo / "keys").iterdir())) == 1 and _opens(repo, OLD)
    assert _key_entries(repo, OLD) == []


def test_unencrypted_repository_has_no_keys(tmp_path: Path) -> None:
    init(_ref(tmp_path / "plain", None), InitRequest(chunk_size=65536))
    with pytest.raises(UsageError, match="not encrypted"):
        keys.list_keys(_ref(tmp_path / "plain", None))


def test_paper_copy_round_trip_and_checks(repo: Path) -> None:
    out = keys.export_paper(_ref(repo, OLD))
    paper = out["paper"]
    master = unwrap_master_key((next((repo / "keys").iterdir())).read_bytes(), OLD)
    repo_id, parsed = keyfiles.parse_paper(paper)
    assert parsed == master and repo_id == out["repository_id"]
    assert OLD not in paper and len(paper.splitlines()) == 7
    line = paper.splitlines()[3]
    digit = line[3]
    typo = paper.replace(line, line[:3] + ("0" if digit != "0" else "1") + line[4:])
    with pytest.raises(UsageError, match="line 2"):
        keyfiles.parse_paper(typo)
    with pytest.raises(UsageError, match="final check"):
        keyfiles.parse_paper(paper.replace(repo_id, "f" * 64))
    [entry] = _key_entries(repo, OLD)
    assert entry == {"action": "export", "format": "paper",
                                "key_id": next((repo / "keys").iterdir()).name}
    audit = b"".join(p.read_bytes() for p in (repo / "audit").iterdir())
    assert master.raw().hex().encode() not in audit and OLD.encode() not in audit


def test_a_failed_key_write_leaves_the_old_passphrase(repo: Path) -> None:
    backend = FaultyBackend(repo_open.backend_for(str(repo)))
    backend.add_fault("put", r"^keys/").error_instead(DiskFull("disk full")).times(2)
    with pytest.raises(DiskFull):
        keys.change_passphrase(RepositoryRef.of(backend, OLD), NEW)
    with pytest.raises(DiskFull):
        keys.add_key(RepositoryRef.of(backend, OLD), NEW)
    assert _opens(repo, OLD) and not _opens(repo, NEW)
    assert len(list((repo / "keys").iterdir())) == 1


def test_cli_errors_are_one_line(repo: Path, tmp_path: Path) -> None:
    env = {"DRBDBACKUP_PASSWORD": "wrong", "DRBDBACKUP_NEW_PASSWORD": SECOND}
    proc = run_cli("key", "add", "--repo", str(repo), env=env, check=False)
    assert proc.returncode == 2 and proc.stderr == (
        "drbdbackup: error: wrong passphrase: no key file of this repository opens with it\n")
    pw = tmp_path / "pw"
    pw.write_text(OLD + "\n")
    key_id = next((repo / "keys").iterdir()).name
    proc = run_cli("key", "remove", key_id, "--repo", str(repo), "--password-file", str(pw),
                   "--json", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "last key" in proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 2
    proc = run_cli("key", "passwd", "--repo", str(repo), "--new-password", "hunter2",
                   env={"DRBDBACKUP_PASSWORD": OLD}, check=False)
    assert proc.returncode == 2 and "hunter2" not in proc.stderr + proc.stdout
    assert _opens(repo, OLD)


def test_a_damaged_key_file_does_not_count_as_another_key(repo: Path) -> None:
    (repo / "keys" / ("e" * 32)).write_bytes(b'{"kdf": "scrypt", "n": 3}')
    rows = {k["key_id"]: k for k in keys.list_keys(_ref(repo, OLD))}
    assert "scrypt n must be a power of two" in rows["e" * 32]["damaged"]
    good = next(k for k in rows if k != "e" * 32)
    assert rows[good]["opens"] and rows[good]["damaged"] is None
    with pytest.raises(UsageError, match="last key"):
        keys.remove_key(_ref(repo, OLD), good)
    keys.remove_key(_ref(repo, OLD), "e" * 32)
    assert [k["key_id"] for k in keys.list_keys(_ref(repo, OLD))] == [good]
