"""A bad object is a finding, not a tool error (issue 20), against the real CLI.

The two hostile repositories of issue 20 (see test_hostile_repos.py), each command run as a
child whose peak RSS comes from wait4:
- beside intact data (a garbage index next to a good one), `backup` of another volume, `list`
  and `restore` succeed; `check` names the file and checks the rest; `prune` refuses naming it;
- where data depends on the bad object (the only index unreadable), `restore` fails with one
  line naming it, `list` marks the generation, and a new backup stores the blobs again.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.hostile.hostile import Measured, nested_arrays, run_measured
from tests.hostile.test_hostile_repos import add_nested_index, inflate_four_blobs

MAX_RSS_MIB = 300
MAX_SECONDS = 30
MIB = 1 << 20
ERROR = "drbdbackup: error: "
WARNING = "drbdbackup: warning: "


def cli(*args: str | Path) -> Measured:
    r = run_measured(["-m", "drbdbackup.cli", *map(str, args)])
    print(f"drbdbackup {args[0]}: exit {r.rc}, peak RSS {r.max_rss_mib:.0f} MiB, {r.seconds:.1f} s")
    assert r.max_rss_mib < MAX_RSS_MIB, f"{args[0]}: {r.max_rss_mib:.0f} MiB"
    assert r.seconds < MAX_SECONDS, f"{args[0]}: {r.seconds:.1f} s"
    assert "internal error" not in r.err and "Traceback" not in r.err, r.err
    return r


def one_error_line(r: Measured, *needles: str) -> str:
    """Exit 1 and exactly one stderr line, an error naming every needle."""
    assert r.rc == 1, r.err
    (line,) = r.err.splitlines()
    assert line.startswith(ERROR), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def only_warnings(r: Measured, *needles: str) -> None:
    """Exit 0; stderr holds only warnings, which name every needle."""
    assert r.rc == 0, r.err
    assert all(line.startswith(WARNING) for line in r.err.splitlines()), r.err
    for needle in needles:
        assert needle in r.err, (needle, r.err)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Repository with volume vm-1 (four distinct 1 MiB chunks), and a second disk for vm-2."""
    base = tmp_path_factory.mktemp("badobj")
    (base / "disk.img").write_bytes(os.urandom(4 * MIB))
    (base / "disk2.img").write_bytes(os.urandom(3 * MIB) + bytes(MIB))
    repo = base / "repo"
    for args in (["init", "--repo", repo],
                 ["backup", "--repo", repo, "--file", base / "disk.img", "--volume-id", "vm-1"]):
        assert cli(*args).rc == 0
    return base


@pytest.fixture
def work(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "t")
    return tmp_path / "t"


def _tree(repo: Path) -> dict[str, int]:
    return {str(p.relative_to(repo)): p.stat().st_size for p in repo.rglob("*")
            if p.is_file() and "locks" not in p.parts and "audit" not in p.parts}


def _backup(work: Path, disk: str, volume: str) -> dict:
    r = cli("backup", "--repo", work / "repo", "--file", work / disk, "--volume-id", volume,
            "--json")
    only_warnings(r)
    return json.loads(r.out)


def _restore_matches(work: Path, volume: str, disk: str) -> None:
    out = work / f"{volume}.out"
    r = cli("restore", "--repo", work / "repo", "--volume-id", volume, "--target", out)
    only_warnings(r)
    assert out.read_bytes() == (work / disk).read_bytes()


def _rows(work: Path, *needles: str) -> dict[str, dict]:
    r = cli("list", "--repo", work / "repo", "--json")
    only_warnings(r, *needles)
    return {g["volume_id"]: g for g in json.loads(r.out)["generations"]}


def _check(work: Path, *args: str) -> dict:
    r = cli("check", "--repo", work / "repo", "--json", *args)
    assert r.rc == 1, r.err
    return json.loads(r.out)


def _the_only_index(repo: Path) -> Path:
    (path,) = (repo / "index").iterdir()
    return path


def _nested_instead_of_the_index(repo: Path) -> str:
    """The repository's only index file replaced by a garbage one named by its hash."""
    _the_only_index(repo).unlink()
    return add_nested_index(repo)


# ---- a garbage index file beside intact data ------------------------------------------------


def test_backup_of_another_volume_beside_a_nested_index(work: Path) -> None:
    garbage = add_nested_index(work / "repo")
    doc = _backup(work, "disk2.img", "vm-2")
    assert doc["new_chunks"] == 3 and doc["zero_chunks"] == 1
    _restore_matches(work, "vm-2", "disk2.img")
    assert (work / "repo" / garbage).exists(), "a reader removed the evidence"


def test_list_and_restore_beside_a_nested_index(work: Path) -> None:
    garbage = add_nested_index(work / "repo")
    rows = _rows(work, garbage)
    assert rows["vm-1"]["status"] == "ok", rows
    _restore_matches(work, "vm-1", "disk.img")


def test_check_names_the_nested_index_and_checks_the_rest(work: Path) -> None:
    garbage = add_nested_index(work / "repo")
    doc = _check(work, "--read-data")
    (error,) = doc["errors"]
    assert garbage in error and "deeper" in error, doc
    assert doc["generations_checked"] == 1 and doc["damaged_generations"] == []
    assert doc["packs_checked"] == 1


def test_prune_refuses_while_an_index_file_is_unreadable(work: Path) -> None:
    repo = work / "repo"
    garbage = add_nested_index(repo)
    _backup(work, "disk.img", "vm-1")
    before = _tree(repo)
    one_error_line(cli("prune", "--repo", repo, "--keep-last", "1"), garbage, "prune")
    assert _tree(repo) == before, "a refused prune changed the repository"


# ---- data that depends on the unreadable index ----------------------------------------------


def test_restore_of_data_behind_the_unreadable_index_fails_naming_it(work: Path) -> None:
    garbage = _nested_instead_of_the_index(work / "repo")
    target = work / "out.img"
    one_error_line(cli("restore", "--repo", work / "repo", "--volume-id", "vm-1", "--target",
                       target), garbage)
    assert not target.exists() and not list(work.glob("out.img*")), "a failed restore left a file"


def test_list_marks_the_generation_behind_the_unreadable_index(work: Path) -> None:
    garbage = _nested_instead_of_the_index(work / "repo")
    row = _rows(work, garbage)["vm-1"]
    assert row["status"] == "damaged" and garbage in row["problem"], row


def test_check_names_the_index_and_the_generation_depending_on_it(work: Path) -> None:
    garbage = _nested_instead_of_the_index(work / "repo")
    doc = _check(work)
    assert len(doc["errors"]) == 2 and all(garbage in e for e in doc["errors"]), doc
    assert len(doc["damaged_generations"]) == 1
    assert any("not referenced by any readable index" in n for n in doc["notes"]), doc


def test_backup_never_dedups_against_blobs_of_an_unreadable_index(work: Path) -> None:
    repo = work / "repo"
    garbage = _nested_instead_of_the_index(repo)
    doc = _backup(work, "disk.img", "vm-1")
    assert doc["mode"] == "full" and doc["new_chunks"] == 4, doc
    _restore_matches(work, "vm-1", "disk.img")
    rows = cli("list", "--repo", repo, "--json")  # same bytes, same ids: the old one heals too
    statuses = [g["status"] for g in json.loads(rows.out)["generations"]]
    assert statuses == ["ok", "ok"], statuses
    assert garbage in rows.err


# ---- case 1: four blobs inflated to 4e9 bytes (their index file is refused) -----------------


def test_inflated_blobs_list_marks_and_backup_of_another_volume_works(work: Path) -> None:
    _pack, index = inflate_four_blobs(work / "repo")
    row = _rows(work, index)["vm-1"]
    assert row["status"] == "damaged" and index in row["problem"], row
    _backup(work, "disk2.img", "vm-2")
    _restore_matches(work, "vm-2", "disk2.img")


def test_inflated_blobs_restore_is_one_line_naming_the_index(work: Path) -> None:
    _pack, index = inflate_four_blobs(work / "repo")
    line = one_error_line(cli("restore", "--repo", work / "repo", "--volume-id", "vm-1",
                              "--target", work / "out.img"), index)
    assert "4000000000" in line
    assert not (work / "out.img").exists()


def test_inflated_blobs_check_names_the_index(work: Path) -> None:
    _pack, index = inflate_four_blobs(work / "repo")
    doc = _check(work, "--read-data")
    assert any(index in e and "4000000000" in e for e in doc["errors"]), doc
    assert doc["damaged_generations"], doc


# ---- other bad objects the CLI meets first --------------------------------------------------


@pytest.mark.parametrize("body", [nested_arrays(100), b"{" + b" " * (64 << 10) + b"}"],
                         ids=["nested", "oversized"])
def test_a_bad_config_is_one_line(work: Path, body: bytes) -> None:
    (work / "repo" / "config").write_bytes(body)
    for args in (["list"], ["check"]):
        one_error_line(cli(*args, "--repo", work / "repo"), "config")


def test_a_config_with_a_fanout_above_the_reader_limit_is_refused(work: Path) -> None:
    path = work / "repo" / "config"
    path.write_text(json.dumps({**json.loads(path.read_text()), "tree_fanout": 65537}))
    one_error_line(cli("list", "--repo", work / "repo"), "config", "tree_fanout 65537")


def test_a_nested_audit_entry_is_a_check_error_naming_it(work: Path) -> None:
    audit = work / "repo" / "audit"
    first = sorted(audit.iterdir())[-1]  # the last: no later entry hashes its bytes
    first.write_bytes(nested_arrays())
    doc = _check(work)
    assert doc["errors"] == [f"audit entry audit/{first.name} is damaged: audit entry nests "
                             "deeper than 32 levels"], doc


def test_a_nested_lock_is_reported_and_blocks_nothing(work: Path) -> None:
    locks = work / "repo" / "locks"
    locks.mkdir(exist_ok=True)
    name = "ab" * 16
    (locks / name).write_bytes(nested_arrays())
    r = cli("backup", "--repo", work / "repo", "--file", work / "disk2.img", "--volume-id", "vm-2")
    only_warnings(r, f"locks/{name}")
    assert not (locks / name).exists()
