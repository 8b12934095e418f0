"""A fault or a crash between every step of a backup (format.md section 13).

A backup does: lock put, pack put (one or more), index put, generation record put, audit put,
lock delete. For each step we (a) raise an error there through the Python API with
FaultyBackend(MemoryBackend), (b) do the same through the real CLI (exit code, one line), and
(c) SIGKILL the real CLI right before or after the step (no cleanup at all). Afterwards the
repository must pass `check --read-data`, list only complete generations, restore every earlier
generation byte-identically, and take the next backup.

Decision for a failure of the audit put (the record is already written): the generation exists
and is complete - the format says "a generation exists iff its record exists" - so it must stay
listed and restorable; the command still fails (exit 3) because the audit trail is incomplete.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

import drbdbackup.repo.pack as pack_mod
from drbdbackup.engine.pipeline import ReadOptions
from drbdbackup.errors import BackendError, DiskFull
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.restore import RestoreRequest, restore
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.repo import audit
from drbdbackup.repo.check import run_check
from drbdbackup.repo.listing import list_generations
from drbdbackup.repo.repository import Repository
from tests.doubles.faulty import FaultyBackend
from tests.doubles.memory import MemoryBackend

from .helpers import (
    Scenario,
    assert_ok,
    assert_one_line_error,
    make_source,
    repo_files,
    run_cli,
    sha256_file,
)

PACK_BYTES = 512 << 10  # several packs from ~2 MiB of new data

# step name -> (op, pattern, matching calls that succeed first)
STEPS = {
    "lock-put": ("put", r"^locks/", 0),
    "pack-1": ("put", r"^packs/", 0),
    "pack-2": ("put", r"^packs/", 1),
    "index": ("put", r"^index/", 0),
    "record": ("put", r"^generations/", 0),
    "audit": ("put", r"^audit/", 0),
    "lock-release": ("delete", r"^locks/", 0),
}
RECORD_WRITTEN = {"audit", "lock-release"}  # failing here happens after the record is stored


# ---- (a) Python API, FaultyBackend(MemoryBackend) ------------------------------------------


@pytest.fixture
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack_mod, "TARGET_PACK_BYTES", PACK_BYTES)


def _api_backup(repo: Repository, src: Path) -> str:
    opts = BackupOptions(read=ReadOptions(progress=False, workers=2))
    return back_up_file(RepositoryRef.of(repo.backend), FileBackup(str(src), "vol"), opts).generation


def _api_restore_digest(backend, gen: str, target: Path) -> str:
    restore(RepositoryRef.of(backend), RestoreRequest("vol", gen, str(target), force=True, progress=False))
    digest = sha256_file(target)
    target.unlink()
    return digest


def _api_assert_consistent(backend, expected: dict[str, str], work: Path) -> None:
    repo = Repository.open(backend)
    rep = run_check(repo, read_data=True)
    assert rep.ok, rep.errors
    rows = list_generations(Repository.open(backend))
    assert sorted(r["generation"] for r in rows) == sorted(expected)
    assert all(r["status"] == "ok" for r in rows), rows
    for gen, digest in expected.items():
        assert _api_restore_digest(backend, gen, work / "out.img") == digest
    assert list(audit.read_chain(backend))  # chain intact (raises on a break)


@pytest.mark.parametrize("error", [DiskFull("disk full (injected)"), BackendError("EIO (injected)")],
                         ids=["DiskFull", "BackendError"])
@pytest.mark.parametrize("step", list(STEPS))
def test_api_fault_at_step(tmp_path: Path, small_packs: None, step: str, error: Exception) -> None:
    faulty = FaultyBackend(MemoryBackend())
    repo = Repository.init(faulty, chunk_size=64 << 10)
    src = tmp_path / "src.img"
    make_source(src, 3 << 20, seed=1)
    first = _api_backup(repo, src)
    expected = {first: sha256_file(src)}
    make_source(src, 3 << 20, seed=2)  # all new data: several packs
    new_digest = sha256_file(src)
    before = dict(faulty.inner.objects)

    op, pattern, after = STEPS[step]
    fault = faulty.add_fault(op, pattern, error, repeat=1, after=after)
    with pytest.raises(type(error)):
        _api_backup(Repository.open(faulty), src)
    assert fault.repeat == 0, "the fault was never reached"

    for name, data in before.items():  # nothing stored earlier is lost or changed
        if not name.startswith("locks/"):
            assert faulty.inner.objects.get(name) == data, f"{name} lost or changed"
    gens_now = [n for n in faulty.inner.objects if n.startswith("generations/")]
    if step in RECORD_WRITTEN:
        assert len(gens_now) == 2, "the completed generation vanished"
        new_gen = next(n.rsplit("/", 1)[1] for n in gens_now if first not in n)
        expected[new_gen] = new_digest
    else:
        assert len(gens_now) == 1, f"a half generation is visible after a fault at {step}"
    _api_assert_consistent(faulty, expected, tmp_path)

    gen = _api_backup(Repository.open(faulty), src)  # the next backup succeeds
    expected[gen] = new_digest
    _api_assert_consistent(faulty, expected, tmp_path)


def test_api_disk_full_on_second_pack_put(tmp_path: Path, small_packs: None) -> None:
    """The brief's exact case: DiskFull on the 2nd pack put; the 1st pack stays unreferenced."""
    faulty = FaultyBackend(MemoryBackend())
    repo = Repository.init(faulty, chunk_size=64 << 10)
    src = tmp_path / "src.img"
    make_source(src, 3 << 20, seed=1)
    first = _api_backup(repo, src)
    packs_before = {n for n in faulty.inner.objects if n.startswith("packs/")}
    make_source(src, 3 << 20, seed=2)
    faulty.add_fault("put", r"^packs/", DiskFull("no space left (injected)"), after=1)
    with pytest.raises(DiskFull):
        _api_backup(Repository.open(faulty), src)
    puts = [n for op, n in faulty.calls if op == "put"]
    assert not any(n.startswith(("index/", "generations/")) for n in puts[puts.index(next(
        n for n in puts if n.startswith("packs/") and n not in packs_before)):]), \
        "index or record written after a failed pack put"
    rep = run_check(Repository.open(faulty), read_data=True)
    assert rep.ok and len(rep.notes) == 1 and "not referenced" in rep.notes[0], rep.to_dict()
    assert [r["generation"] for r in list_generations(Repository.open(faulty))] == [first]
    gen = _api_backup(Repository.open(faulty), src)
    assert _api_restore_digest(faulty, gen, tmp_path / "o.img") == sha256_file(src)


# ---- (b) and (c): the real CLI -----------------------------------------------------------


def _crash_source(sc: Scenario) -> Path:
    crash = sc.work / "crash.img"
    make_source(crash, 3 << 20, seed=4242)
    return crash


def _fault_env(step: str, *, kill: str | None = None) -> dict:
    op, pattern, after = STEPS[step]
    env = {"DRBDBACKUP_TEST_PACK_BYTES": str(PACK_BYTES)}
    if kill:
        env["DRBDBACKUP_TEST_KILL"] = json.dumps(
            {"op": op, "pattern": pattern, "after": after, "when": kill})
    else:
        env["DRBDBACKUP_TEST_FAULTS"] = json.dumps([{
            "op": op, "pattern": pattern, "after": after, "error": "DiskFull",
            "message": "no space left in the repository (injected)"}])
    return env


def _after_failure(sc: Scenario, crash: Path, record_written: bool) -> None:
    """Common epilogue: adopt a completed generation if the record made it, then the checks."""
    listed = sc.generation_ids()
    new = [g for g in listed if g not in sc.gens]
    if record_written:
        assert len(new) == 1, f"expected the completed generation to be listed: {listed}"
        sc.gens[new[0]] = sha256_file(crash)
    else:
        assert new == [], f"a half generation is visible: {new}"
    sc.assert_intact()
    gen = sc.backup(crash)  # the next backup succeeds ...
    sc.restore_identical(gen)  # ... and restores


@pytest.mark.parametrize("step", ["pack-2", "audit", "lock-release"])
def test_cli_fault_at_step(scenario: Scenario, step: str) -> None:
    crash = _crash_source(scenario)
    proc = run_cli(*scenario.backup_args(crash), faulty=True, env=_fault_env(step))
    assert_one_line_error(proc, 3, "space")
    _after_failure(scenario, crash, step in RECORD_WRITTEN)


KILL_POINTS = {
    # name: (step, when)
    "after-lock-put": ("lock-put", "after"),
    "before-pack-1": ("pack-1", "before"),
    "after-pack-1": ("pack-1", "after"),
    "after-index": ("index", "after"),
    "after-record": ("record", "after"),
    "after-audit": ("audit", "after"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_cli_sigkill_at_step(scenario: Scenario, point: str) -> None:
    step, when = KILL_POINTS[point]
    crash = _crash_source(scenario)
    proc = run_cli(*scenario.backup_args(crash), faulty=True, env=_fault_env(step, kill=when))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    record_written = step in RECORD_WRITTEN or (step == "record" and when == "after")
    _after_failure(scenario, crash, record_written)


def _unreferenced_notes(sc: Scenario) -> list[str]:
    return [n for n in sc.check()["notes"] if "not referenced" in n]


def test_prune_removes_unreferenced_packs_after_crash(scenario: Scenario) -> None:
    crash = _crash_source(scenario)
    proc = run_cli(*scenario.backup_args(crash), faulty=True, env=_fault_env("index", kill="before"))
    assert proc.returncode == -signal.SIGKILL
    assert len(_unreferenced_notes(scenario)) >= 3, "expected the crash to leave several packs"
    assert_ok(scenario.cli("prune", "--repo", scenario.repo, "--keep-last", "5"))
    assert _unreferenced_notes(scenario) == []
    scenario.assert_healthy()


def test_prune_removes_staged_leftovers_after_crash(scenario: Scenario) -> None:
    crash = _crash_source(scenario)
    proc = run_cli(*scenario.backup_args(crash), faulty=True, env=_fault_env("pack-1", kill="before"))
    assert proc.returncode == -signal.SIGKILL
    tmp = [n for n in repo_files(scenario.repo) if n.startswith("tmp/")]
    assert tmp, "expected a staged pack left by the crash"
    assert_ok(scenario.cli("prune", "--repo", scenario.repo, "--keep-last", "5"))
    left = [n for n in repo_files(scenario.repo) if n.startswith("tmp/")]
    assert left == [], f"prune left crash leftovers: {left}"


def test_failed_backup_is_audited_and_chain_stays_intact(scenario: Scenario) -> None:
    """A failed backup appends one 'failure' entry naming the error; the chain stays intact and
    the next entry chains onto it."""
    crash = _crash_source(scenario)
    before = sorted(os.listdir(scenario.repo / "audit"))
    proc = run_cli(*scenario.backup_args(crash), faulty=True, env=_fault_env("pack-2"))
    assert proc.returncode == 3
    after = sorted(os.listdir(scenario.repo / "audit"))
    assert after[:-1] == before and len(after) == len(before) + 1
    failure = json.loads((scenario.repo / "audit" / after[-1]).read_bytes())
    assert failure["event"] == "failure" and failure["details"]["command"] == "backup"
    assert failure["details"]["exit_code"] == 3 and failure["details"]["volume_id"] == scenario.volume
    scenario.backup(crash)
    names = sorted(os.listdir(scenario.repo / "audit"))
    last = json.loads((scenario.repo / "audit" / names[-1]).read_bytes())
    prev = (scenario.repo / "audit" / names[-2]).read_bytes()
    assert last["event"] == "backup" and last["prev"] == hashlib.sha256(prev).hexdigest()


# ---- interrupts and staged-file hygiene ----------------------------------------------------


def _interrupt_env() -> dict:
    return {"DRBDBACKUP_TEST_PACK_BYTES": str(PACK_BYTES), "DRBDBACKUP_TEST_FAULTS": json.dumps([
        {"op": "put", "pattern": r"^packs/", "after": 1, "error": "KeyboardInterrupt"}])}


def test_cli_interrupt_during_pack_upload(scenario: Scenario) -> None:
    """Ctrl-C while a pack is being uploaded: exit 130, one line, lock released, no generation."""
    crash = _crash_source(scenario)
    proc = run_cli(*scenario.backup_args(crash), faulty=True, env=_interrupt_env())
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines() == ["drbdbackup: interrupted"], proc.stderr
    assert os.listdir(scenario.repo / "locks") == []
    _after_failure(scenario, crash, record_written=False)


def test_interrupted_pack_upload_leaves_no_staged_file(scenario: Scenario) -> None:
    crash = _crash_source(scenario)
    proc = run_cli(*scenario.backup_args(crash), faulty=True, env=_interrupt_env())
    assert proc.returncode == 130
    left = [n for n in repo_files(scenario.repo) if n.startswith("tmp/")]
    assert left == [], f"staged files left: {left}"


def test_local_put_file_fsync_error_is_translated_and_cleaned(
    tmp_path: Path, small_packs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import drbdbackup.repo.local as local_mod
    from drbdbackup.repo.local import LocalBackend

    backend = LocalBackend(str(tmp_path / "repo"))
    repo = Repository.init(backend, chunk_size=64 << 10)
    src = tmp_path / "src.img"
    make_source(src, 3 << 20, seed=1)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith("pack-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(local_mod.os, "fsync", fsync)
    with pytest.raises(DiskFull):
        _api_backup(repo, src)
    left = [n for n in repo_files(tmp_path / "repo") if n.startswith("tmp/")]
    assert left == [], f"staged files left: {left}"
