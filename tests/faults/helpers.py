"""Helpers for the fault-injection suite: run the real CLI, build sources, judge a repository."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CLI = [sys.executable, "-m", "drbdbackup"]
FAULTY_CLI = [sys.executable, str(Path(__file__).with_name("faulty_cli.py"))]
ERROR_PREFIX = "drbdbackup: error:"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def nobody_skip_reason() -> str | None:
    """Why the CLI cannot run as 'nobody' here (None when it can): needs root, setpriv, and an
    interpreter plus packages that 'nobody' may read (a venv under /root is not)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "needs root and setpriv to run the CLI as 'nobody' (root reads a mode-000 file)"
    probe = subprocess.run(
        NOBODY + [sys.executable, "-c", "import blake3, zstandard, cryptography, drbdbackup.cli"],
        capture_output=True, text=True, cwd="/",
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"'nobody' cannot import drbdbackup's dependencies from {sys.executable} ({last})"
    return None
CHUNK = 64 << 10


def base_env(extra: dict | None = None) -> dict:
    """The caller's environment without any passphrase, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "DRBDBACKUP_PASSWORD"}
    env.update(extra or {})
    return env


def run_cli(
    *args: object,
    env: dict | None = None,
    as_nobody: bool = False,
    faulty: bool = False,
    timeout: float = 120,
    preexec_fn=None,
) -> subprocess.CompletedProcess:
    """Run `python -m drbdbackup ARGS` (or the fault-injecting wrapper) and capture its output."""
    cmd = (NOBODY if as_nobody else []) + (FAULTY_CLI if faulty else CLI) + [str(a) for a in args]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=base_env(env),
        timeout=timeout,
        preexec_fn=preexec_fn,
        stdin=subprocess.DEVNULL,
    )


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"


def assert_ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit `code`, exactly one stderr line 'drbdbackup: error: ...', no traceback; return it."""
    assert proc.returncode == code, describe(proc)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, describe(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, describe(proc)
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), describe(proc)
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


def assert_only_warnings(proc: subprocess.CompletedProcess) -> None:
    """stderr holds nothing but 'drbdbackup: warning:' lines (e.g. a reported stale lock)."""
    assert "Traceback" not in proc.stderr, describe(proc)
    for line in proc.stderr.splitlines():
        assert line.startswith("drbdbackup: warning:"), describe(proc)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def make_source(path: str | os.PathLike, size: int, seed: int, chunk: int = CHUNK) -> None:
    """Deterministic mix: every third chunk zero, the rest random (incompressible)."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        pos = 0
        i = 0
        while pos < size:
            n = min(chunk, size - pos)
            f.write(bytes(n) if i % 3 == 0 else rnd.randbytes(n))
            pos += n
            i += 1


def mutate_source(path: str | os.PathLike, seed: int, regions: int = 4, chunk: int = CHUNK) -> None:
    """Overwrite `regions` chunk-sized regions (one of them a formerly zero chunk) with new data."""
    rnd = random.Random(seed)
    size = os.path.getsize(path)
    n = max(1, size // chunk)
    with open(path, "r+b") as f:
        for k in range(regions):
            pos = 0 if k == 0 else rnd.randrange(n)
            f.seek(pos * chunk)
            f.write(rnd.randbytes(min(chunk, size - pos * chunk)))


def repo_files(repo: str | os.PathLike) -> list[str]:
    """Relative names of every file below the repository directory (tmp files included)."""
    out = []
    for dirpath, _dirs, files in os.walk(repo):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), repo))
    return sorted(out)


def snapshot_tree(repo: str | os.PathLike, prefixes: tuple[str, ...]) -> dict[str, bytes]:
    """Contents of the repository objects below `prefixes` (what must never be lost)."""
    out = {}
    for name in repo_files(repo):
        if name.startswith(prefixes) and not name.endswith(".tmp"):
            out[name] = Path(repo, name).read_bytes()
    return out


def full_snapshot(repo: str | os.PathLike) -> dict[str, bytes]:
    """Every file below the repository (locks and tmp files included), by content."""
    return {name: Path(repo, name).read_bytes() for name in repo_files(repo)}


def assert_untouched(repo: str | os.PathLike, before: dict[str, bytes]) -> None:
    """Nothing was added, removed or changed (no leftover lock, tmp file or half object), except
    that a failed backup/restore appends one `failure` entry to the audit log (DESIGN section 3)."""
    after = full_snapshot(repo)
    for name in sorted(set(after) - set(before)):
        if name.startswith("audit/"):
            entry = json.loads(after[name])
            assert entry["event"] == "failure", entry
            assert entry["details"]["message"] and entry["details"]["exit_code"] in (1, 2, 3, 4)
            del after[name]
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(n for n in set(before) & set(after) if before[n] != after[n])
    assert not (added or removed or changed), f"added {added}, removed {removed}, changed {changed}"


@dataclass
class Scenario:
    """A repository with known generations, a source file, and the checks every case ends with."""

    work: Path
    repo: Path
    src: Path
    volume: str = "vol"
    env: dict = field(default_factory=dict)
    gens: dict[str, str] = field(default_factory=dict)  # generation -> sha256 of the source then
    mutations: int = 0

    def cli(self, *args: object, **kw) -> subprocess.CompletedProcess:
        env = dict(self.env)
        env.update(kw.pop("env", None) or {})
        return run_cli(*args, env=env, **kw)

    # ---- actions --------------------------------------------------------------------------

    def backup_args(self, src: Path | None = None) -> list[object]:
        return ["backup", "--repo", self.repo, "--file", src or self.src, "--volume-id", self.volume,
                "--json"]

    def backup(self, src: Path | None = None) -> str:
        """A backup that must succeed; remembers the generation and the source's digest."""
        digest = sha256_file(src or self.src)
        proc = assert_ok(self.cli(*self.backup_args(src)))
        gen = json.loads(proc.stdout)["generation"]
        self.gens[gen] = digest
        return gen

    def mutate(self) -> None:
        self.mutations += 1
        mutate_source(self.src, seed=1000 + self.mutations)

    def listing(self) -> list[dict]:
        proc = assert_ok(self.cli("list", "--repo", self.repo, "--json"))
        return json.loads(proc.stdout)["generations"]

    def generation_ids(self) -> list[str]:
        return sorted(g["generation"] for g in self.listing())

    def check(self) -> dict:
        """`check --read-data` must pass (exit 0, no errors; notes are allowed)."""
        proc = self.cli("check", "--repo", self.repo, "--read-data", "--json")
        assert proc.returncode == 0, describe(proc)
        assert_only_warnings(proc)
        rep = json.loads(proc.stdout)
        assert rep["ok"] and not rep["errors"], rep
        return rep

    def restore_identical(self, gen: str, expected: str | None = None) -> None:
        target = self.work / f"restore-{gen}"
        assert_ok(self.cli("restore", "--repo", self.repo, "--volume-id", self.volume,
                           "--generation", gen, "--target", target, "--json"))
        try:
            assert sha256_file(target) == (expected or self.gens[gen]), f"generation {gen} differs"
        finally:
            target.unlink()

    # ---- the standard epilogue ------------------------------------------------------------

    def assert_intact(self) -> None:
        """check --read-data passes, exactly the known generations are listed, all ok and
        byte-identical on restore."""
        self.check()
        rows = self.listing()
        assert sorted(r["generation"] for r in rows) == sorted(self.gens), rows
        assert all(r["status"] == "ok" for r in rows), rows
        for gen in self.gens:
            self.restore_identical(gen)

    def assert_healthy(self, restore_next: bool = False) -> None:
        """assert_intact, then the next backup (of changed data) succeeds (and restores)."""
        self.assert_intact()
        self.mutate()
        gen = self.backup()
        if restore_next:
            self.restore_identical(gen)


def copy_scenario(template: Scenario, work: Path) -> Scenario:
    """A private copy of a template scenario below `work`."""
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "repo"
    src = work / "source.img"
    shutil.copytree(template.repo, repo, symlinks=True)
    shutil.copyfile(template.src, src)
    return Scenario(work=work, repo=repo, src=src, volume=template.volume, env=dict(template.env),
                    gens=dict(template.gens))
