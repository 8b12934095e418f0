"""The repository layer turns bad objects into named findings within the limits of format.md
section 17 (issue 20): config, key files, records, index files (and their split), audit entries,
locks, names from listings. In-process, on the memory backend unless a test needs files."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import pytest

from drbdbackup.errors import (
    IntegrityError,
    RepositoryLocked,
    UnknownGeneration,
    UnsupportedFormat,
    WrongPassword,
)
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.maintenance import PruneRequest, check, prune
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.repo import audit, audit_writer, repository
from drbdbackup.repo.check import run_check
from drbdbackup.repo.index import split_index
from drbdbackup.repo.listing import list_generations
from drbdbackup.repo.local import LocalBackend
from drbdbackup.repo.locks import Lock, is_stale, list_locks
from drbdbackup.repo.pack import PackEntry
from drbdbackup.repo.prune import run_prune
from drbdbackup.repo.records import JSON_MAX_BYTES
from drbdbackup.repo.repository import Repository
from tests.doubles.memory import MemoryBackend
from tests.hostile.hostile import nested_arrays

ROOT = Path(__file__).resolve().parents[2]
PW = "hostile passphrase"


def _config(**changes: object) -> bytes:
    doc = {"format": 2, "repository_id": "ab" * 32, "created": "2026-12-01T00:00:00+00:00",
           "chunk_size": 1 << 20, "tree_fanout": 4096, "hash": "blake3", "compression": "zstd",
           "encryption": "none", **changes}
    return json.dumps(doc).encode()


def _open_with(config: bytes) -> Repository:
    b = MemoryBackend()
    b.put("config", config)
    return Repository.open(b)


# ---- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,needle", [
    ({"tree_fanout": 65537}, "tree_fanout 65537"),
    ({"tree_fanout": 1}, "tree_fanout 1"),
    ({"tree_fanout": True}, "tree_fanout True"),
    ({"tree_fanout": "4096"}, "tree_fanout 4096"),
    ({"chunk_size": True}, "chunk_size"),
    ({"chunk_size": 3 << 20}, "chunk_size"),
    ({"chunk_size": [1]}, "chunk_size"),
    ({"repository_id": 7}, "repository_id"),
    ({"encryption": {"x": 1}}, "encryption"),
])
def test_config_fields_of_the_wrong_type_or_range_are_damage(changes: dict, needle: str) -> None:
    with pytest.raises(IntegrityError, match="config") as info:
        _open_with(_config(**changes))
    assert needle in str(info.value)


@pytest.mark.parametrize("changes", [{"format": True}, {"format": 3}, {"hash": "sha256"},
                                     {"compression": "lz4"}])
def test_config_of_an_unknown_kind_is_unsupported(changes: dict) -> None:
    with pytest.raises(UnsupportedFormat):
        _open_with(_config(**changes))


@pytest.mark.parametrize("body", [nested_arrays(), b"{" + b" " * JSON_MAX_BYTES["config"] + b"}",
                                  b"\xff\xfe", b"[1]"])
def test_config_that_does_not_parse_is_damage(body: bytes) -> None:
    with pytest.raises(IntegrityError, match="config"):
        _open_with(body)


def test_config_without_a_fanout_still_opens_with_the_default() -> None:
    doc = json.loads(_config())
    del doc["tree_fanout"]
    assert _open_with(json.dumps(doc).encode()).fanout == 4096


# ---- key files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encrypted() -> MemoryBackend:
    b = MemoryBackend()
    Repository.init(b, encryption="aes-256-gcm", passphrase=PW, chunk_size=64 << 10)
    return b


def _copy(b: MemoryBackend) -> MemoryBackend:
    out = MemoryBackend()
    out.objects.update(b.objects)
    return out


def test_a_damaged_key_file_beside_a_good_one_does_not_matter(encrypted: MemoryBackend) -> None:
    b = _copy(encrypted)
    b.put("keys/00" + "0" * 30, nested_arrays())
    b.put("keys/ff" + "0" * 30, b'{"kdf": "scrypt", "n": 1048576, "r": 32, "p": 16}')
    b.put("keys/README", b"{" + b" " * (1 << 20) + b"}")  # not a key file's name: never read
    assert Repository.open(b, PW).master is not None
    for name in b.list("keys/"):
        if name != "keys/README":
            b.delete(name)
    with pytest.raises(IntegrityError, match="no key files"):
        Repository.open(b, PW)


def test_only_damaged_key_files_say_so(encrypted: MemoryBackend) -> None:
    b = _copy(encrypted)
    for name in b.list("keys/"):
        b.put(name, b"{" + b" " * (64 << 10) + b"}")
    with pytest.raises(WrongPassword, match="damaged"):
        Repository.open(b, PW)


# ---- generation records -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def volume_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local repository holding one small volume `v` (two generations)."""
    base = tmp_path_factory.mktemp("findings")
    repo = base / "repo"
    disk = base / "disk.img"
    disk.write_bytes(os.urandom(640 << 10))
    Repository.init(LocalBackend(str(repo)), chunk_size=64 << 10)
    for _ in range(2):
        back_up_file(RepositoryRef.of(str(repo)), FileBackup(str(disk), "v"), BackupOptions())
        with disk.open("r+b") as f:
            f.write(os.urandom(1000))
    return repo


def _local(volume_repo: Path, tmp_path: Path) -> tuple[Path, Repository]:
    import shutil

    shutil.copytree(volume_repo, tmp_path / "repo")
    return tmp_path / "repo", Repository.open(LocalBackend(str(tmp_path / "repo")))


def test_an_oversized_record_is_damage_named_and_list_goes_on(volume_repo: Path,
                                                             tmp_path: Path) -> None:
    path, repo = _local(volume_repo, tmp_path)
    first, second = repo.generation_ids("v")
    (path / "generations" / "v" / first).write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(IntegrityError, match=f"generations/v/{first}.*above the limit"):
        repo.read_record("v", first)
    rows = list_generations(repo)
    assert [r["status"] for r in rows] == ["unreadable", "ok"]


def test_a_record_of_another_chunk_size_is_damage(volume_repo: Path, tmp_path: Path) -> None:
    path, repo = _local(volume_repo, tmp_path)
    gen = repo.generation_ids("v")[0]
    rec = path / "generations" / "v" / gen
    doc = json.loads(rec.read_bytes())
    doc.update(chunk_size=1 << 20, chunk_count=1)
    rec.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="chunk_size"):
        repo.read_record("v", gen)


def test_names_outside_the_format_are_never_read(volume_repo: Path, tmp_path: Path) -> None:
    path, repo = _local(volume_repo, tmp_path)
    (path / "index" / "README").write_bytes(nested_arrays())
    (path / "packs" / "zz").mkdir()
    (path / "packs" / "zz" / "junk").write_bytes(b"junk")
    (path / "generations" / ".hidden").mkdir()
    (path / "generations" / ".hidden" / "x").write_bytes(b"junk")
    (path / "audit" / "notes.txt").write_bytes(b"junk")
    repo.load_index()
    assert repo.index.unreadable == {} and len(repo.index.files) == 2
    assert repo.volumes() == ["v"]
    assert run_check(repo, read_data=True).ok
    run_prune(repo, keep_last=1)
    assert (path / "packs" / "zz" / "junk").exists(), "prune deleted what is not a pack"
    with pytest.raises(UnknownGeneration):
        repo.read_record("v", "20260101T000000000000Z-00000000")


# ---- index files ------------------------------------------------------------------------------


def _entries(n: int) -> list[PackEntry]:
    return [PackEntry(0, secrets.token_bytes(32), 16 + 100 * i, 100, 1000) for i in range(n)]


def test_split_index_keeps_every_entry_and_each_part_near_the_limit() -> None:
    packs = {secrets.token_hex(32): _entries(n) for n in (300, 1, 700)}
    b = MemoryBackend()
    b.put("config", _config())
    repo = Repository.open(b)
    names = repo.write_index_files(packs, max_bytes=20_000)
    assert len(names) > 3
    assert all(len(b.objects[n]) <= 20_000 for n in names)
    repo.load_index()
    assert sorted(repo.index.files) == sorted(names)
    assert {(e.id, p) for p, es in packs.items() for e in es} == {
        (cid, loc.pack) for cid, locs in repo.index.locations.items() for loc in locs}
    assert split_index(packs, 10 ** 9) == [packs]


def test_backup_and_prune_split_their_index_files_and_drbdverify_agrees(
    volume_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _repo = _local(volume_repo, tmp_path)
    monkeypatch.setattr(repository, "INDEX_SPLIT_BYTES", 1000)
    disk = tmp_path / "other.img"
    disk.write_bytes(os.urandom(1 << 20))
    ref = RepositoryRef.of(str(path))
    before = set(os.listdir(path / "index"))
    back_up_file(ref, FileBackup(str(disk), "w"), BackupOptions())
    written = set(os.listdir(path / "index")) - before
    assert len(written) > 1 and all((path / "index" / n).stat().st_size <= 1000 for n in written)
    prune(ref, PruneRequest(keep_last=1))
    assert len(os.listdir(path / "index")) > 2
    assert check(ref, read_data=True).ok
    proc = subprocess.run([sys.executable, "-m", "verify", "--repo", str(path), "--full",
                           "--generation", "all", "--json"], capture_output=True, text=True,
                          cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_index_file_not_named_by_its_hash_is_unreadable(volume_repo: Path,
                                                         tmp_path: Path) -> None:
    path, repo = _local(volume_repo, tmp_path)
    victim = sorted(os.listdir(path / "index"))[0]
    (path / "index" / victim).write_bytes(b'{"format": 1, "packs": []}')
    repo.load_index()
    assert list(repo.index.unreadable) == [f"index/{victim}"]
    assert "does not match its name" in repo.index.unreadable[f"index/{victim}"]
    with pytest.raises(IntegrityError, match=f"prune stopped: index file index/{victim}"):
        run_prune(repo, keep_last=1)


# ---- audit log --------------------------------------------------------------------------------


def test_an_oversized_audit_entry_is_named_and_the_chain_goes_on() -> None:
    b = MemoryBackend()
    for _ in range(2):
        audit_writer.append(b, "check", {})
    b.put("audit/000000000003", b" " * ((16 << 20) + 1))
    for _ in range(2):
        audit_writer.append(b, "check", {})  # hashes the oversized entry streamed
    assert audit.check_chain(b) == [
        "audit entry audit/000000000003 is damaged: audit entry is 16777217 bytes, above the "
        "limit of 16777216"]
    with pytest.raises(IntegrityError, match="audit/000000000003"):
        list(audit.read_chain(b))


@pytest.mark.parametrize("entry,needle", [
    ({"seq": True}, "seq"),
    ({"prev": 5}, "prev"),
    ({"time": None}, "time"),
    ({"event": ["backup"]}, "unknown event"),
    ({"event": "format"}, "unknown event"),
    ({"details": []}, "details"),
])
def test_audit_entries_with_wrong_types_are_damage(entry: dict, needle: str) -> None:
    b = MemoryBackend()
    audit_writer.append(b, "init", {})
    doc = {"seq": 2, "time": "t", "event": "check", "prev": audit.entry_hash(b, "audit/000000000001"),
           "details": {}, **entry}
    b.put("audit/000000000002", json.dumps(doc).encode())
    (problem,) = audit.check_chain(b)
    assert problem.startswith("audit entry audit/000000000002 is damaged") and needle in problem


def test_a_gap_in_the_chain_is_one_problem() -> None:
    b = MemoryBackend()
    for _ in range(4):
        audit_writer.append(b, "check", {})
    b.delete("audit/000000000002")
    assert audit.check_chain(b) == ["audit log chain broken at audit/000000000003: expected seq 2"]


# ---- locks ------------------------------------------------------------------------------------


def _lock(b: MemoryBackend, body: bytes) -> str:
    name = f"locks/{secrets.token_hex(16)}"
    b.put(name, body)
    return name


def _held(**fields: object) -> bytes:
    t = datetime.now(UTC)
    return json.dumps({"exclusive": True, "operation": "prune", "hostname": "elsewhere.invalid",
                       "pid": 1, "owner": "eve@elsewhere", "created": t.isoformat(),
                       "expires": (t + timedelta(minutes=30)).isoformat(), **fields}).encode()


@pytest.mark.parametrize("body", [nested_arrays(), b"{" + b" " * (64 << 10) + b"}",
                                  _held(exclusive="yes"), _held(exclusive=1), b"[]"],
                         ids=["nested", "oversized", "exclusive-str", "exclusive-int", "array"])
def test_a_garbage_lock_blocks_nothing_and_is_reported(body: bytes) -> None:
    b = MemoryBackend()
    name = _lock(b, body)
    (_n, lock), = list_locks(b)
    assert is_stale(lock) and "unreadable lock" in lock["owner"]
    held = Lock(b, exclusive=True, operation="prune").acquire()
    try:
        assert [n for n, _l in held.stale_removed] == [name] and name not in b.objects
    finally:
        held.release()


@pytest.mark.parametrize("expires", ["not a time", 17, None, ["x"]])
def test_a_lock_whose_expiry_does_not_parse_is_respected(expires: object) -> None:
    b = MemoryBackend()
    _lock(b, _held(expires=expires))
    with pytest.raises(RepositoryLocked, match="eve@elsewhere"):
        Lock(b, exclusive=False, operation="backup").acquire()


@pytest.mark.parametrize("pid", ["abc", -1, 0, 2 ** 40, True])
def test_a_lock_pid_of_any_type_is_judged_without_error(pid: object) -> None:
    lock = json.loads(_held(pid=pid, hostname="me"))
    assert is_stale(lock, "me") == (isinstance(pid, int) and not isinstance(pid, bool))


def test_a_locked_message_is_one_printable_line() -> None:
    b = MemoryBackend()
    _lock(b, _held(owner="eve\n@elsewhere" + "x" * 10_000))
    with pytest.raises(RepositoryLocked) as info:
        Lock(b, exclusive=False, operation="backup").acquire()
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_encrypted_repository_with_a_garbage_index(tmp_path: Path) -> None:
    b = MemoryBackend()
    Repository.init(b, encryption="aes-256-gcm", passphrase=PW, chunk_size=64 << 10)
    disk = tmp_path / "disk.img"
    disk.write_bytes(os.urandom(300 << 10))
    ref = RepositoryRef.of(b, PW)
    back_up_file(ref, FileBackup(str(disk), "v"), BackupOptions())
    (real,) = b.list("index/")
    garbage = nested_arrays()
    name = f"index/{blake3.blake3(garbage).hexdigest()}"
    b.put(name, garbage)
    repo = Repository.open(b, PW)
    assert [r["status"] for r in list_generations(repo)] == ["ok"]
    assert list(repo.index.unreadable) == [name]
    b.delete(real)
    (row,) = list_generations(repo)
    assert row["status"] == "damaged" and name in row["problem"]
    with pytest.raises(IntegrityError, match=name):
        run_prune(repo, keep_last=1)
