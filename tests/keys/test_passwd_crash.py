"""`key passwd` killed (SIGKILL) in the middle: the old or the new passphrase opens the
repository, never neither. A real subprocess, stopped at an injected point (the test hook
DRBDBACKUP_TEST_KEY_PAUSE=<step>:<seconds> in repo/keyfiles.py) right before and right after
the one atomic put that replaces the key file (a failing put: tests/keys/test_keys.py)."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drbdbackup.errors import WrongPassword
from drbdbackup.ops.maintenance import InitRequest, check, init
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.repo import crypto
from tests.helpers import REPO_ROOT

OLD, NEW = "old passphrase", "new passphrase"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(crypto, "SCRYPT_N", 1024)  # the initial key file: cheap to open
    init(RepositoryRef.of(str(tmp_path / "r"), OLD), InitRequest(chunk_size=65536, encryption="aes-256-gcm"))
    return tmp_path / "r"


def _opens(path: Path, password: str) -> bool:
    try:
        return check(RepositoryRef.of(str(path), password)).ok
    except WrongPassword:
        return False


def _passwd(repo: Path, pause: str | None, old: str = OLD, new: str = NEW) -> subprocess.Popen:
    env = {**os.environ, "DRBDBACKUP_PASSWORD": old, "DRBDBACKUP_NEW_PASSWORD": new}
    env.pop("DRBDBACKUP_TEST_KEY_PAUSE", None)
    if pause:
        env["DRBDBACKUP_TEST_KEY_PAUSE"] = f"{pause}:30"
    return subprocess.Popen([sys.executable, "-m", "drbdbackup", "key", "passwd", "--repo", str(repo)],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_hook(proc: subprocess.Popen, timeout: float = 30) -> None:
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen, deadline = b"", time.monotonic() + timeout
    while b"test hook: paused" not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"the hook was not reached: {seen!r}"
        if sel.select(left):
            seen += os.read(proc.stderr.fileno(), 4096)


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()


@pytest.mark.parametrize("step,works,fails", [("before-write", OLD, NEW), ("after-write", NEW, OLD)])
def test_killed_at_a_step(repo: Path, step: str, works: str, fails: str) -> None:
    proc = _passwd(repo, step)
    try:
        _wait_for_hook(proc)
    finally:
        _kill(proc)
    assert _opens(repo, works) and not _opens(repo, fails)
    assert len(list((repo / "keys").iterdir())) == 1
