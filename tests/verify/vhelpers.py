"""Shared helpers for the verifier tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from specwriter import SpecRepo, Written, volume_bytes  # noqa: E402

from verify.cli import main  # noqa: E402

PASSPHRASE = "correct horse"
CS = 65536


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.out)


def run_verify(*args: str, password: str | None = PASSPHRASE) -> Run:
    """Run drbdverify in-process."""
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.pop("DRBDBACKUP_PASSWORD", None)
    if password is not None:
        os.environ["DRBDBACKUP_PASSWORD"] = password
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(args))
    finally:
        os.environ.pop("DRBDBACKUP_PASSWORD", None)
        if old is not None:
            os.environ["DRBDBACKUP_PASSWORD"] = old
    return Run(rc, out.getvalue(), err.getvalue())


def flip(path: str, offset: int) -> None:
    """Corrupt one byte by XOR 0xFF (offset may be negative: from the end)."""
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        off = offset if offset >= 0 else size + offset
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


@dataclass
class Fixture:
    repo: SpecRepo
    written: Written
    data: bytes
    source: str

    @property
    def path(self) -> str:
        return self.repo.path


def make_fixture(tmp_path: Any, encrypted: bool, n_chunks: int = 40, fanout: int = 4,
                 pack_target: int = 200_000) -> Fixture:
    repo = SpecRepo(str(tmp_path / "repo"), encrypted=encrypted, fanout=fanout,
                    pack_target=pack_target, passphrase=PASSPHRASE)
    data = volume_bytes(n_chunks, CS)
    w = repo.backup("vm-1", data)
    src = str(tmp_path / "source.img")
    with open(src, "wb") as f:
        f.write(data)
    return Fixture(repo, w, data, src)
