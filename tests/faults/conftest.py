"""Fixtures for the fault-injection suite: template repositories, scratch mounts, loop devices."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import CHUNK, Scenario, assert_ok, copy_scenario, make_source, run_cli

PASSWORD = "Tr0ub4dor&3-s3cret-e9b1c7"  # unique enough to grep for
SOURCE_BYTES = 3 * (1 << 20) + 12345  # not a multiple of the chunk size


def is_root() -> bool:
    return os.geteuid() == 0


def need_root(*tools: str) -> None:
    """Skip the calling test unless it runs as root and `tools` are installed."""
    if not is_root():
        pytest.skip("needs root (loop devices / mounts); run the suite as root to cover this case")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (not installed)")


def _build_template(work: Path, encryption: str, env: dict) -> Scenario:
    work.mkdir(parents=True, exist_ok=True)
    sc = Scenario(work=work, repo=work / "repo", src=work / "source.img", env=env)
    assert_ok(sc.cli("init", "--repo", sc.repo, "--chunk-size", "64K", "--encryption", encryption))
    make_source(sc.src, SOURCE_BYTES, seed=7, chunk=CHUNK)
    sc.backup()
    return sc


@pytest.fixture(scope="session")
def plain_template(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """An unencrypted repository (64 KiB chunks) holding one generation of a 3 MiB source."""
    return _build_template(tmp_path_factory.mktemp("tpl-plain"), "none", {})


@pytest.fixture(scope="session")
def enc_template(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The same, encrypted with aes-256-gcm under PASSWORD."""
    return _build_template(
        tmp_path_factory.mktemp("tpl-enc"), "aes-256-gcm", {"DRBDBACKUP_PASSWORD": PASSWORD}
    )


@pytest.fixture
def scenario(plain_template: Scenario, tmp_path: Path) -> Scenario:
    """A private copy of the plain template."""
    return copy_scenario(plain_template, tmp_path / "sc")


@pytest.fixture
def enc_scenario(enc_template: Scenario, tmp_path: Path) -> Scenario:
    return copy_scenario(enc_template, tmp_path / "sc")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path is 0700, closed to `nobody`)."""
    path = Path(tempfile.mkdtemp(prefix="drbdbackup-faults-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True)


def _umount(path: Path) -> None:
    for _ in range(20):
        if _sh("umount", str(path)).returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.1)
    _sh("umount", "-l", str(path))


class Mounts:
    """Creates small filesystems and loop devices; the finalizer undoes everything, in reverse."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._undo: list = []

    def loop_device(self, size: int) -> str:
        need_root("losetup")
        img = self.base / f"loop-{len(self._undo)}.img"
        with open(img, "wb") as f:
            f.truncate(size)
        proc = _sh("losetup", "-f", "--show", str(img))
        if proc.returncode != 0:
            pytest.skip(f"cannot create a loop device here: {proc.stderr.strip()}")
        dev = proc.stdout.strip()
        self._undo.append(lambda: _sh("losetup", "-d", dev))
        return dev

    def small_fs(self, kind: str, size_mib: int) -> Path:
        """A mounted filesystem of `size_mib` MiB: `tmpfs`, or `ext4` on a loop device."""
        mnt = self.base / f"mnt-{len(self._undo)}"
        mnt.mkdir()
        if kind == "tmpfs":
            need_root("mount", "umount")
            proc = _sh("mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mnt))
        else:
            need_root("mount", "umount", "mkfs.ext4", "losetup")
            dev = self.loop_device(size_mib << 20)
            mk = _sh("mkfs.ext4", "-q", "-F", "-m", "0", dev)
            if mk.returncode != 0:
                pytest.skip(f"mkfs.ext4 failed: {mk.stderr.strip()}")
            proc = _sh("mount", dev, str(mnt))
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a {kind} here: {proc.stderr.strip()}")
        self._undo.append(lambda: _umount(mnt))
        return mnt

    def cleanup(self) -> None:
        while self._undo:
            self._undo.pop()()


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    m = Mounts(tmp_path)
    try:
        yield m
    finally:
        m.cleanup()


@pytest.fixture
def cli():
    return run_cli
