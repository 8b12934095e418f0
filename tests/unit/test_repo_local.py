"""drbdbackup/repo/local.py beyond the shared contract (tests/unit/test_backend_conformance.py)."""

from __future__ import annotations

import os

from drbdbackup.repo.local import LocalBackend


def test_local_leaves_no_temp_files(tmp_path) -> None:
    b = LocalBackend(str(tmp_path / "r"))
    for i in range(5):
        b.put(f"o/{i}", b"x" * i)
    left = [n for n in os.listdir(b.staging_dir())]
    assert left == []
    assert b.list("") == [f"o/{i}" for i in range(5)]
