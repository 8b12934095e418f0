"""Bad sources, bad restore targets, bad repositories and bad arguments, through the real CLI.

Every case: the documented exit code, one 'drbdbackup: error:' line on stderr, no traceback,
and either the repository is byte-for-byte untouched (so it keeps the health of its template,
which test_*_template_is_healthy establishes) or it still passes `check --read-data`, earlier
generations restore byte-identical, and the next backup succeeds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import SOURCE_BYTES
from .helpers import (
    Scenario,
    assert_ok,
    assert_one_line_error,
    assert_untouched,
    copy_scenario,
    full_snapshot,
    nobody_skip_reason,
    run_cli,
    sha256_file,
)

# ---- the templates themselves ---------------------------------------------------------------
# Cases that fail before the repository is opened, or that leave every file byte-identical
# (assert_untouched), inherit the health of the template; these two tests establish it.


def test_plain_template_is_healthy(scenario: Scenario) -> None:
    scenario.assert_healthy(restore_next=True)


def test_encrypted_template_is_healthy(enc_scenario: Scenario) -> None:
    enc_scenario.assert_healthy(restore_next=True)


# ---- 1. sources ----------------------------------------------------------------------------


def test_missing_source_and_directory_source(scenario: Scenario) -> None:
    sc = scenario
    before = full_snapshot(sc.repo)
    proc = sc.cli(*sc.backup_args(sc.work / "no-such-disk.img"))
    assert_one_line_error(proc, 3, "no-such-disk.img", "does not exist")
    assert_untouched(sc.repo, before)  # no lock, staged file or object left
    # A missing source is an environment failure (3); a directory is bad input (2), as it is
    # as a restore target.
    proc = sc.cli(*sc.backup_args(sc.work))
    assert_one_line_error(proc, 2, "neither a regular file nor a block device")  # bad input: exit 2, as for restore
    assert_untouched(sc.repo, before)
    sc.assert_healthy()


def test_unreadable_source_as_nobody(plain_template: Scenario, public_dir: Path) -> None:
    reason = nobody_skip_reason()
    if reason:
        pytest.skip(reason)
    sc = copy_scenario(plain_template, public_dir / "sc")
    for dirpath, _dirs, files in os.walk(sc.repo):  # the repository belongs to 'nobody'
        os.chown(dirpath, 65534, 65534)
        for f in files:
            os.chown(os.path.join(dirpath, f), 65534, 65534)
    secret = public_dir / "secret.img"
    shutil.copyfile(sc.src, secret)
    secret.chmod(0o000)
    before = full_snapshot(sc.repo)
    proc = run_cli(*sc.backup_args(secret), as_nobody=True)
    assert_one_line_error(proc, 3, "permission denied", str(secret))
    assert_untouched(sc.repo, before)
    sc.assert_healthy()


def test_empty_source_is_a_valid_backup(scenario: Scenario) -> None:
    """Size 0 is legal: a generation whose root is a leaf with Count = 0."""
    empty = scenario.work / "empty.img"
    empty.write_bytes(b"")
    scenario.backup(empty)
    scenario.assert_intact()


# ---- 2. restore targets and 3. unknown / invalid names -------------------------------------


def _restore(sc: Scenario, target: object, *extra: str, volume: str | None = None,
             gen: str | None = None, **kw):
    gen = gen or next(iter(sc.gens))
    return sc.cli("restore", "--repo", sc.repo, f"--volume-id={volume or sc.volume}",
                  "--generation", gen, "--target", target, *extra, **kw)


def test_restore_refusals(scenario: Scenario) -> None:
    """Each refused restore: its exit code and line, no file written, repository untouched."""
    sc = scenario
    existing = sc.work / "existing.img"
    existing.write_bytes(b"precious data")
    out = sc.work / "out.img"
    cases = [
        (dict(target=existing), 2, ["exists", "--force"]),
        (dict(target=sc.work / "no" / "such" / "dir" / "out.img"), 3, ["does not exist"]),
        (dict(target=sc.work), 2, ["neither a file nor a block device"]),
        (dict(target=out, volume="ghost"), 2, ["ghost"]),
        (dict(target=out, gen="20200101T000000000000Z-00000000"), 2, ["no generation"]),
        (dict(target=out, gen="../../config"), 2, ["no generation"]),
        (dict(target=out, gen="latest2"), 2, ["no generation"]),
        (dict(target=out, volume="../escape"), 2, ["volume id"]),
        (dict(target=out, volume="a/b"), 2, ["volume id"]),
        (dict(target=out, volume="-dash"), 2, ["volume id"]),
    ]
    before = full_snapshot(sc.repo)
    for kw, code, needles in cases:
        target = kw.pop("target")
        assert_one_line_error(_restore(sc, target, **kw), code, *needles)
        assert_untouched(sc.repo, before)
    assert existing.read_bytes() == b"precious data", "an existing target was touched"
    assert not out.exists() and not (sc.work / "no").exists()
    assert not list(sc.work.glob("*.drbdbackup-partial")), "a partial file was left"
    assert_ok(_restore(sc, existing, "--force"))
    assert sha256_file(existing) == next(iter(sc.gens.values()))
    sc.assert_healthy()


def test_restore_target_block_device_too_small(scenario: Scenario, mounts) -> None:
    dev = mounts.loop_device(1 << 20)  # skips unless root with losetup
    before = full_snapshot(scenario.repo)
    proc = _restore(scenario, dev)
    assert_one_line_error(proc, 2, dev, str(SOURCE_BYTES))
    with open(dev, "rb") as f:
        assert f.read() == bytes(1 << 20), "a too-small device was written to"
    assert_untouched(scenario.repo, before)


def test_restore_to_block_device_of_exact_size(scenario: Scenario, mounts) -> None:
    """Control case: a big-enough device is written completely (zero chunks too)."""
    dev = mounts.loop_device((SOURCE_BYTES + 4095) // 4096 * 4096)
    with open(dev, "r+b") as f:
        f.write(b"\xff" * os.path.getsize(scenario.src))  # zero chunks must be written as zeros
    assert_ok(_restore(scenario, dev))
    with open(dev, "rb") as f:
        assert f.read(SOURCE_BYTES) == scenario.src.read_bytes()


def test_restore_target_filesystem_full(scenario: Scenario, mounts) -> None:
    mnt = mounts.small_fs("tmpfs", 1)  # 1 MiB; the volume has ~2 MiB of non-zero data
    target = mnt / "out.img"
    before = full_snapshot(scenario.repo)
    proc = _restore(scenario, target)
    assert_one_line_error(proc, 3, "space")
    assert os.listdir(mnt) == [], f"restore left files behind: {os.listdir(mnt)}"
    assert_untouched(scenario.repo, before)


def _limit_file_size() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (512 << 10, 512 << 10))


def test_restore_hits_file_size_limit_keeps_old_target(scenario: Scenario) -> None:
    """RLIMIT_FSIZE makes writes fail with EFBIG (no root needed): a forced restore that fails
    must leave the previous target untouched."""
    target = scenario.work / "old.img"
    target.write_bytes(b"old contents")
    before = full_snapshot(scenario.repo)
    proc = _restore(scenario, target, "--force", preexec_fn=_limit_file_size)
    assert_one_line_error(proc, 3)
    assert target.read_bytes() == b"old contents"
    assert_untouched(scenario.repo, before)


def test_restore_failure_leaves_no_partial_file(scenario: Scenario) -> None:
    target = scenario.work / "old.img"
    target.write_bytes(b"old contents")
    proc = _restore(scenario, target, "--force", preexec_fn=_limit_file_size)
    assert proc.returncode == 3
    leftovers = sorted(p.name for p in scenario.work.glob("old.img.*"))
    assert leftovers == [], f"partial restore files left: {leftovers}"


# ---- 3. repositories and arguments -------------------------------------------------------


def test_repo_path_missing(tmp_path: Path) -> None:
    proc = run_cli("list", "--repo", tmp_path / "nope")
    assert_one_line_error(proc, 2, "not a drbdbackup repository")


def test_repo_path_is_an_empty_directory(tmp_path: Path, scenario: Scenario) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["list"], ["check", "--read-data"], ["prune", "--keep-last", "1"],
                 ["backup", "--file", scenario.src, "--volume-id", "v"]):
        proc = run_cli(args[0], "--repo", empty, *args[1:])
        assert_one_line_error(proc, 2, "not a drbdbackup repository")
    assert os.listdir(empty) == [], "a command wrote into a directory that is not a repository"


def test_repo_path_is_a_regular_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_bytes(b"x")
    assert_one_line_error(run_cli("list", "--repo", f), 2, "not a drbdbackup repository")


def test_init_on_a_regular_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_bytes(b"x")
    proc = run_cli("init", "--repo", f)
    assert_one_line_error(proc, 2, str(f))


def test_unsupported_format_version(scenario: Scenario) -> None:
    cfg = json.loads((scenario.repo / "config").read_bytes())
    cfg["format"] = 3  # a version this build does not know
    (scenario.repo / "config").write_text(json.dumps(cfg))
    assert_one_line_error(scenario.cli("list", "--repo", scenario.repo), 2, "format 3")


def test_init_twice(scenario: Scenario) -> None:
    before = full_snapshot(scenario.repo)
    proc = scenario.cli("init", "--repo", scenario.repo)
    assert_one_line_error(proc, 2, "already exists")
    assert_untouched(scenario.repo, before)


def test_init_twice_encrypted(enc_scenario: Scenario) -> None:
    before = full_snapshot(enc_scenario.repo)
    for enc in ("aes-256-gcm", "none"):
        proc = enc_scenario.cli("init", "--repo", enc_scenario.repo, "--encryption", enc)
        assert_one_line_error(proc, 2, "already exists")
    assert_untouched(enc_scenario.repo, before)  # in particular: no second key file


@pytest.mark.parametrize("size", ["32K", "8M", "3M", "abc"])
def test_init_chunk_size_rejected(tmp_path: Path, size: str) -> None:
    repo = tmp_path / "r"
    proc = run_cli("init", "--repo", repo, "--chunk-size", size)
    assert_one_line_error(proc, 2, "chunk size" if size != "abc" else "size")
    assert not (repo / "config").exists()
    assert_ok(run_cli("init", "--repo", repo, "--chunk-size", "4M"))  # upper bound is accepted


BAD_VOLUME_IDS = ["../escape", "a/b", "-dash", ".hidden", "x" * 129, "sp ace", ""]
# "" is caught by the CLI ("backup needs ... --volume-id ID"), the rest by check_volume_id


def test_backup_invalid_volume_id(scenario: Scenario) -> None:
    before = full_snapshot(scenario.repo)
    for vol in BAD_VOLUME_IDS:
        proc = scenario.cli("backup", "--repo", scenario.repo, "--file", scenario.src,
                            f"--volume-id={vol}")
        assert_one_line_error(proc, 2, "volume id" if vol else "--volume-id")
        assert_untouched(scenario.repo, before)
    assert not (scenario.repo.parent / "escape").exists()


def test_list_invalid_volume_id_dotdot(scenario: Scenario) -> None:
    proc = scenario.cli("list", "--repo", scenario.repo, "--volume-id", "../x")
    assert_one_line_error(proc, 2, "volume id")


def test_list_invalid_volume_id_slash(scenario: Scenario) -> None:
    proc = scenario.cli("list", "--repo", scenario.repo, "--volume-id", "a/b")
    assert_one_line_error(proc, 2, "volume id")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["backup", "--repo", "{repo}", "--file", "{src}"],                 # no --volume-id
        ["backup", "--repo", "{repo}", "--volume-id", "v"],                # no --file
        ["backup", "--repo", "{repo}", "--file", "{src}", "--volume-id", "v", "--tracker", "magic"],
        ["backup", "--repo", "{repo}", "--file", "{src}", "--volume-id", "v", "--verify-sample", "2"],
        ["restore", "--repo", "{repo}", "--volume-id", "vol"],             # no target
        ["prune", "--repo", "{repo}", "--keep-last", "0"],
        ["prune", "--repo", "{repo}", "--keep-last", "many"],
        ["list", "--repo", "{repo}", "--no-such-option"],
        ["init", "--repo", "{work}/x", "--encryption", "rot13"],
    ],
    ids=lambda a: " ".join(a[:1] + [x for x in a if x.startswith("--") and x != "--repo"]) or "none",
)
def test_bad_usage(scenario: Scenario, args: list[str]) -> None:
    fill = {"repo": str(scenario.repo), "src": str(scenario.src), "work": str(scenario.work)}
    before = full_snapshot(scenario.repo)
    proc = scenario.cli(*[a.format(**fill) for a in args])
    assert_one_line_error(proc, 2)
    assert_untouched(scenario.repo, before)
    assert not (scenario.work / "x" / "config").exists()
