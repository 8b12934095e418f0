"""The repository's filesystem fills up (root: a 20 MiB tmpfs or loop-mounted ext4)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .helpers import Scenario, assert_ok, assert_one_line_error, make_source, repo_files

FS_MIB = 20


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _repo_on(mnt: Path, work: Path) -> Scenario:
    work.mkdir(parents=True, exist_ok=True)
    sc = Scenario(work=work, repo=mnt / "repo", src=work / "source.img")
    assert_ok(sc.cli("init", "--repo", sc.repo, "--chunk-size", "64K"))
    make_source(sc.src, 2 << 20, seed=5)
    sc.backup()
    return sc


@pytest.mark.slow
@pytest.mark.parametrize("fs", ["tmpfs", "ext4"])
def test_backup_larger_than_the_repository_filesystem(mounts, tmp_path: Path, fs: str) -> None:
    mnt = mounts.small_fs(fs, FS_MIB)  # skips unless root with mount (and mkfs.ext4, losetup)
    sc = _repo_on(mnt, tmp_path / "w")
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.write(os.urandom(2 * FS_MIB << 20))  # incompressible, twice the filesystem
    free_before = _free(mnt)

    proc = sc.cli(*sc.backup_args(big))
    assert_one_line_error(proc, 3, "space")
    leftovers = [n for n in repo_files(sc.repo) if n.startswith("tmp/")]
    assert leftovers == [], f"the failed backup left staged files: {leftovers}"
    assert _free(mnt) >= free_before - (1 << 20), "the failed backup did not give its space back"
    assert os.listdir(sc.repo / "locks") == []

    big.unlink()  # "free space": back up the usual, small source again
    sc.assert_healthy(restore_next=True)


@pytest.mark.slow
def test_repository_filesystem_completely_full(mounts, tmp_path: Path) -> None:
    """Every writing command fails with exit 3 and one line, reading commands keep working,
    nothing stored is lost; after space is freed all is well."""
    mnt = mounts.small_fs("tmpfs", FS_MIB)
    sc = _repo_on(mnt, tmp_path / "w")
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\xa5" * (256 << 10))
                f.flush()
        except OSError:
            pass
    assert _free(mnt) < (64 << 10)
    sc.mutate()
    assert_one_line_error(sc.cli(*sc.backup_args()), 3, "space")
    assert_one_line_error(sc.cli("check", "--repo", sc.repo, "--read-data"), 3, "space")
    assert_one_line_error(sc.cli("init", "--repo", mnt / "second"), 3, "space")
    gen = next(iter(sc.gens))
    target = tmp_path / "out.img"
    assert_one_line_error(sc.cli("restore", "--repo", sc.repo, "--volume-id", sc.volume,
                                 "--generation", gen, "--target", target), 3, "space")
    assert not target.exists()
    rows = sc.listing()  # reading needs no space
    assert [r["generation"] for r in rows] == [gen]
    filler.unlink()
    shutil.rmtree(mnt / "second", ignore_errors=True)
    sc.assert_healthy()
