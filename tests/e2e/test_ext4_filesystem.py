"""Issue 2: an ext4 image with real files survives backup -> file changes -> backup -> restore."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import cli_json, run_cli

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not os.path.exists("/dev/loop-control"),
    reason="needs root, mkfs.ext4 and loop devices to mount an ext4 image",
)


def _sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def _tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "lost+found" not in p.parts:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Mounted:
    def __init__(self, image: Path, mnt: Path, ro: bool = False) -> None:
        self.image, self.mnt, self.ro = image, mnt, ro

    def __enter__(self) -> Path:
        self.mnt.mkdir(exist_ok=True)
        _sh("mount", "-o", "loop,ro" if self.ro else "loop", str(self.image), str(self.mnt))
        return self.mnt

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", str(self.mnt)], check=False)


def test_ext4_backup_change_restore(tmp_path: Path) -> None:
    img = tmp_path / "fs.img"
    with open(img, "wb") as f:
        f.truncate(96 << 20)
    _sh("mkfs.ext4", "-q", "-F", str(img))
    rnd = random.Random(5)
    mnt = tmp_path / "mnt"
    with Mounted(img, mnt) as m:
        for d in range(5):
            (m / f"dir{d}").mkdir()
            for i in range(20):
                size = rnd.choice([100, 4096, 70000, 1 << 20])
                (m / f"dir{d}" / f"f{i}.bin").write_bytes(rnd.randbytes(size))
        before = _tree_digest(m)
    repo = str(tmp_path / "repo")
    run_cli("init", "--repo", repo, "--chunk-size", "256K")
    g1 = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "fs")
    with Mounted(img, mnt) as m:
        shutil.rmtree(m / "dir1")
        (m / "dir2" / "f3.bin").write_bytes(b"rewritten" * 5000)
        (m / "new.txt").write_text("a new file\n" * 1000)
        after = _tree_digest(m)
    g2 = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "fs")
    assert g2["mode"] == "incremental" and 0 < g2["changed_bytes"] < g2["size_bytes"] // 4
    for gen, expected in ((g1, before), (g2, after)):
        out = tmp_path / f"r-{gen['generation']}.img"
        run_cli("restore", "--repo", repo, "--volume-id", "fs", "--generation", gen["generation"],
                "--target", str(out))
        fsck = subprocess.run(["fsck.ext4", "-n", "-f", str(out)], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        with Mounted(out, tmp_path / "rmnt", ro=True) as m:
            assert _tree_digest(m) == expected
