"""A prune killed between its deletions (format.md sections 12.1, 13) is no tamper finding.

Prune appends its intent entry (the records it is about to delete) before its first deletion
and its final entry after its last. A real `drbdbackup prune` subprocess pauses at an injected
point (DRBDBACKUP_TEST_PRUNE_PAUSE=K: after the K-th deletion) and is SIGKILLed there; then
`check`, the audit findings (what `report` includes) and `drbdverify --full` find nothing, and
the next prune completes. The pure rules: both readers accept a record a prune entry lists,
present or not, and still report one that no prune entry lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drbdbackup.ops import backup, evidence, maintenance
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.repo.prune import PAUSE_ENV
from verify import cli as verify_cli

from .test_audit_ties import BASE, G1, G2, RECORDS, verdicts, with_

REPO_ROOT = Path(__file__).resolve().parents[2]
KEEP = maintenance.PruneRequest(keep_last=1)
WAIT_S = 20.0


# ---------------------------------------------------------------- the rules (both readers)

STOPPED = [  # (name, entries, records present, the record an error names or None)
    ("intent lists it, it is still there",
     with_(BASE, s6=("prune", None, [f"a/{G1}"])), RECORDS, None),
    ("intent lists it, it is gone",
     with_(BASE, s6=("prune", None, [f"a/{G1}"])),
     {k: v for k, v in RECORDS.items() if k != ("a", G1)}, None),
    ("intent lists another record",
     with_(BASE, s6=("prune", None, [f"a/{G1}"])),
     {k: v for k, v in RECORDS.items() if k != ("a", G2)}, f"generations/a/{G2}"),
    ("intent and final entry, one record left by an earlier stopped prune",
     with_(BASE, s6=("prune", None, [f"a/{G1}", f"b/{G1}"]), s7=("prune", None, [f"b/{G1}"])),
     {k: v for k, v in RECORDS.items() if k != ("b", G1)}, None),
]


@pytest.mark.parametrize(("name", "entries", "records", "named"), STOPPED, ids=[c[0] for c in STOPPED])
def test_both_readers_accept_what_a_prune_entry_lists(name: str, entries: dict, records: dict,
                                                      named: str | None) -> None:
    errors, warnings, fails = verdicts(entries, records)
    if named is None:
        assert errors == [] and fails == [] and warnings == [], (errors, fails, warnings)
    else:
        assert errors and named in errors[0], errors
        assert fails and named in fails[0], fails


# ---------------------------------------------------------------- a real prune, killed


def _image(path: Path, seed: int) -> None:
    path.write_bytes(hashlib.shake_256(f"prune-crash {seed}".encode()).digest(256 << 10))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Volume a: four generations, volume b: two; `prune --keep-last 1` deletes four records,
    the old index files and the packs only those records used."""
    work = tmp_path_factory.mktemp("prune-crash")
    repo = work / "repo"
    ref = RepositoryRef.of(str(repo))
    maintenance.init(ref, maintenance.InitRequest(chunk_size=65536))
    img = work / "src.img"
    for vol, seeds in (("a", range(4)), ("b", range(10, 12))):
        for seed in seeds:
            _image(img, seed)
            backup.back_up_file(ref, backup.FileBackup(str(img), vol), backup.BackupOptions())
    return repo


def _entries(repo: Path) -> list[dict]:
    return [json.loads(p.read_bytes()) for p in sorted((repo / "audit").iterdir())]


def _records(repo: Path) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in (repo / "generations").glob("*/*")}


def _deletions(repo: Path) -> tuple[int, int]:
    """(records, every object) the prune of `template` deletes, from a dry run."""
    plan = maintenance.prune(RepositoryRef.of(str(repo)), maintenance.PruneRequest(keep_last=1, dry_run=True))
    records = len(plan.removed_generations)
    index_files = len(list((repo / "index").glob("*")))
    return records, records + index_files + plan.removed_packs


def _kill_prune_at(repo: Path, k: int) -> None:
    """Run `drbdbackup prune --keep-last 1`, wait until it pauses after its k-th deletion, SIGKILL."""
    env = {**os.environ, PAUSE_ENV: str(k)}
    proc = subprocess.Popen([sys.executable, "-m", "drbdbackup", "prune", "--repo", str(repo),
                             "--keep-last", "1"], cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        deadline, seen = time.monotonic() + WAIT_S, ""
        while f"test pause after {k} deletion" not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"no pause after {k} deletions: {seen!r}"
            if select.select([proc.stderr], [], [], left)[0]:
                seen += proc.stderr.readline()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=WAIT_S) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=WAIT_S)
        proc.stderr.close() if proc.stderr else None


def _verify(repo: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = verify_cli.main(["--repo", str(repo), "--generation", "all", "--full", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    return out


def _no_tamper_finding(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = RepositoryRef.of(str(repo))
    found = evidence.audit_findings(ref)  # what the report includes
    assert found.problems == [] and found.warnings == [], (found.problems, found.warnings)
    rep = maintenance.check(ref)  # removes the killed prune's stale lock (a warning)
    assert rep.ok and not [n for n in rep.notes if "generation record" in n], rep.to_dict()
    _verify(repo, capsys)


def test_points_cover_every_kind_of_deletion(template: Path) -> None:
    records, total = _deletions(template)
    assert records == 4 and total > records + 2, (records, total)


@pytest.mark.parametrize("point", ["first", "second", "all records", "index", "last"])
def test_prune_killed_between_deletions_is_no_tamper_finding(
        template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], point: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(template, repo)
    records, total = _deletions(repo)
    k = {"first": 0, "second": 1, "all records": records, "index": records + 1, "last": total - 1}[point]
    before, entries_before = _records(repo), len(_entries(repo))
    _kill_prune_at(repo, k)
    entries = _entries(repo)
    assert len(entries) == entries_before + 1, "the intent entry and nothing after it"
    intent = entries[-1]
    assert intent["event"] == "prune" and intent["details"]["phase"] == "intent"
    doomed = set(intent["removed"])
    assert intent["details"]["removed_generations"] == intent["removed"] and len(doomed) == records
    gone = before - _records(repo)
    assert gone <= doomed and len(gone) == min(k, records)
    _no_tamper_finding(repo, capsys)

    done = maintenance.prune(RepositoryRef.of(str(repo)), KEEP)  # the next prune completes
    assert set(done.removed_generations) == doomed - gone
    assert _records(repo) == before - doomed
    last = [e for e in _entries(repo) if e["event"] == "prune"][-1]
    assert last["details"]["phase"] == "done" and set(last["removed"]) == doomed - gone
    _no_tamper_finding(repo, capsys)
    assert maintenance.check(RepositoryRef.of(str(repo))).notes == []  # no pack left behind
