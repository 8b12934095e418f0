"""Structure-aware mutation of whole repositories (issue 20): hypothesis picks a repository
(encrypted or not; two volumes, two generations each, written by the real tools), one to three
mutations (mutants.py) and the generation to restore; every mutant then meets `list`, `restore`,
`check --read-data` and `drbdverify --full`, each a forked child of a small fork server
(zygote.py; two of them, one per core) so hundreds fit in CI. DRBDBACKUP_MUTANTS scales the count (default 500).

Invariant for every mutant and command: a documented exit code (0-4), at most one error line
and no "internal error" or traceback, peak RSS under 300 MiB (wait4), done within 30 s; a
restore either fails and leaves no target behind or writes exactly the bytes that were backed
up; a verifier that passes (exit 0) never contradicts the data: a restore of the same
repository then yields the written bytes, never finds damage.
"""

from __future__ import annotations

import collections
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mutation import mutants

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = int(os.environ.get("DRBDBACKUP_MUTANTS", "500"))
WORKERS = 2
MAX_RSS_MIB = 300
TIMEOUT_S = 30
PASSWORD = "mutation-suite"
KIB = 1 << 10
EXIT_CODES = {0, 1, 2, 3, 4}


class Zygote:
    """The fork server (zygote.py) as a child process, one JSON line each way."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("zygote.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     cwd=str(ROOT), start_new_session=True)

    def ask(self, req: dict[str, Any], timeout: float = TIMEOUT_S + 10) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"fork server did not answer within {timeout} s: {req}"
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


@dataclass
class Run:
    rc: int
    out: str
    err: str
    maxrss_mib: float
    seconds: float
    timed_out: bool


def run(z: Zygote, work: Path, tool: str, *argv: str, sealed: bool = False) -> Run:
    out, err = work / "stdout", work / "stderr"
    env = {"DRBDBACKUP_PASSWORD": PASSWORD} if sealed else {}
    a = z.ask({"tool": tool, "argv": list(argv), "env": env, "out": str(out), "err": str(err),
               "timeout": TIMEOUT_S})
    return Run(a["rc"], out.read_text(errors="replace"), err.read_text(errors="replace"),
               a["maxrss_mib"], a["seconds"], a["timed_out"])


@dataclass
class Template:
    repo: Path
    older: Path  # the repository after the first generations: for replays
    sealed: bool
    written: dict[tuple[str, str], bytes]  # (volume, generation) -> the bytes backed up


def _volume(seed: int, size: int) -> bytes:
    """Distinct, partly compressible chunks."""
    rnd = seed.to_bytes(4, "little") * 8
    return b"".join(bytes([seed]) * 1024 + os.urandom(16) + rnd for _ in range(size // 1072 + 1))[:size]


def build(z: Zygote, base: Path, sealed: bool) -> Template:
    repo, older = base / "repo", base / "older"
    ok = lambda r: r.rc == 0 or pytest.fail(r.err)  # noqa: E731
    ok(run(z, base, "drbdbackup", "init", "--repo", str(repo), "--chunk-size", "64K",
           "--encryption", "aes-256-gcm" if sealed else "none", sealed=sealed))
    if sealed:
        z.ask({"warm": [str(p) for p in (repo / "keys").iterdir()], "password": PASSWORD})
    disks = {"vm-a": _volume(1, 200 * KIB), "vm-b": _volume(2, 96 * KIB) + bytes(64 * KIB)}
    contents: list[tuple[str, bytes]] = []
    for round_ in range(2):
        for vid, data in disks.items():
            if round_:
                data = data[: 64 * KIB] + _volume(3 + len(vid), 64 * KIB) + data[128 * KIB :]
            (base / vid).write_bytes(data)
            ok(run(z, base, "drbdbackup", "backup", "--repo", str(repo), "--file", str(base / vid),
                   "--volume-id", vid, sealed=sealed))
            contents.append((vid, data))
        if not round_:
            shutil.copytree(repo, older)
    listed = run(z, base, "drbdbackup", "list", "--repo", str(repo), "--json", sealed=sealed)
    gens = [(g["volume_id"], g["generation"]) for g in json.loads(listed.out)["generations"]]
    by_volume: dict[str, list[bytes]] = collections.defaultdict(list)
    for vid, data in contents:
        by_volume[vid].append(data)
    written = {}
    for vid, gen in gens:
        written[(vid, gen)] = by_volume[vid].pop(0)
    assert len(written) == 4
    return Template(repo, older, sealed, written)


@dataclass
class Tally:
    mutants: int = 0
    runs: int = 0
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    max_rss_mib: float = 0.0
    max_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)

    def add(self, cmd: str, r: Run) -> None:
        self.runs += 1
        self.codes[f"{cmd}:{r.rc}"] += 1
        self.max_rss_mib = max(self.max_rss_mib, r.maxrss_mib)
        self.max_seconds = max(self.max_seconds, r.seconds)


@pytest.fixture(scope="module")
def scratch() -> Any:
    """Mutants live on tmpfs when there is one: the commands fsync what they write."""
    path = Path(tempfile.mkdtemp(prefix="mutants-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                                 else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def zygotes() -> Any:
    pool = [Zygote() for _ in range(WORKERS)]
    yield pool
    for z in pool:
        z.close()


@pytest.fixture(scope="module")
def templates(zygotes: list[Zygote], scratch: Path) -> dict[str, Template]:
    out = {}
    for name in ("plain", "sealed"):
        (scratch / name).mkdir()
        out[name] = build(zygotes[0], scratch / name, name == "sealed")
        if out[name].sealed:
            for z in zygotes[1:]:
                z.ask({"warm": [str(p) for p in (out[name].repo / "keys").iterdir()],
                       "password": PASSWORD})
    return out


def problems(cmd: str, r: Run) -> list[str]:
    """The invariants every command keeps on any repository."""
    out = []
    if r.timed_out:
        out.append(f"{cmd}: still running after {TIMEOUT_S} s")
    if r.rc not in EXIT_CODES:
        out.append(f"{cmd}: undocumented exit code {r.rc}")
    if r.maxrss_mib > MAX_RSS_MIB:
        out.append(f"{cmd}: peak RSS {r.maxrss_mib:.0f} MiB")
    text = r.err + r.out
    if "internal error" in text or "Traceback" in text or "zygote: escaped" in text:
        out.append(f"{cmd}: {r.err.strip()[-300:]}")
    errors = [ln for ln in r.err.splitlines() if ": error:" in ln]
    if len(errors) > 1:
        out.append(f"{cmd}: {len(errors)} error lines")
    return out


def check_mutant(z: Zygote, t: Template, work: Path, pick: int) -> tuple[list[str], list[tuple[str, Run]]]:
    """Run the four commands on the mutant at work/repo; return the violations."""
    repo = str(work / "repo")
    (vid, gen), data = sorted(t.written.items())[pick % len(t.written)]
    target = work / "restored.img"
    runs = [
        ("list", run(z, work, "drbdbackup", "list", "--repo", repo, "--json", sealed=t.sealed)),
        ("restore", run(z, work, "drbdbackup", "restore", "--repo", repo, "--volume-id", vid,
                        "--generation", gen, "--target", str(target), sealed=t.sealed)),
        ("check", run(z, work, "drbdbackup", "check", "--repo", repo, "--read-data",
                      sealed=t.sealed)),
        ("drbdverify", run(z, work, "drbdverify", "--repo", repo, "--full", sealed=t.sealed)),
    ]
    bad = [p for cmd, r in runs for p in problems(cmd, r)]
    restore = runs[1][1]
    if restore.rc == 0 and (not target.exists() or target.read_bytes() != data):
        bad.append(f"restore of {vid}/{gen}: exit 0 but the bytes differ from what was written")
    if restore.rc != 0 and target.exists():
        bad.append(f"restore of {vid}/{gen}: failed (exit {restore.rc}) but left {target.name}")
    for cmd, r in runs[2:]:
        if r.rc == 0 and restore.rc == 1:
            bad.append(f"{cmd} passed, yet restoring {vid}/{gen} found damage: "
                       f"{restore.err.strip()[-200:]}")
    return bad, runs


OPS = st.builds(mutants.Op, st.sampled_from(mutants.KINDS), st.integers(0, 255),
                st.integers(0, 255), st.integers(0, 2**24))  # small ranges: drawn near-uniformly
Mutant = tuple[str, list[mutants.Op], int]


def draw_mutants(names: list[str], count: int) -> list[Mutant]:
    """Hypothesis draws the mutants (repository, ops, generation to restore); they are run
    afterwards, in parallel, so the draw does not wait on the tools."""
    drawn: list[Mutant] = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(names), st.lists(OPS, min_size=1, max_size=3), st.integers(0, 3))
    def collect(name: str, ops: list[mutants.Op], pick: int) -> None:
        drawn.append((name, ops, pick))

    collect()
    return drawn


def run_mutant(z: Zygote, t: Template, work: Path, m: Mutant) -> tuple[list[str], list[tuple[str, Run]], list[str]]:
    name, ops, pick = m
    work.mkdir()
    try:
        mutants.copy_repo(t.repo, work / "repo")
        done = [mutants.apply(work / "repo", t.older, op) for op in ops]
        bad, runs = check_mutant(z, t, work, pick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bad, runs, done


def test_mutants_keep_the_invariants(zygotes: list[Zygote], templates: dict[str, Template],
                                     scratch: Path) -> None:
    drawn = draw_mutants(sorted(templates), MUTANTS)
    tally = Tally()
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(k, len(drawn), WORKERS):
            name, ops, pick = drawn[i]
            bad, runs, done = run_mutant(zygotes[k], templates[name], scratch / f"m{i}", drawn[i])
            with lock:
                tally.mutants += 1
                for cmd, r in runs:
                    tally.add(cmd, r)
                if bad:
                    tally.violations.append(f"{name} repository after {done}: {bad}")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(worker, range(WORKERS)))
    report = {"mutants": tally.mutants, "runs": tally.runs, "violations": len(tally.violations),
              "max_rss_mib": round(tally.max_rss_mib, 1), "max_seconds": round(tally.max_seconds, 2),
              "exit_codes": dict(sorted(tally.codes.items()))}
    if os.environ.get("DRBDBACKUP_MUTANTS_REPORT"):
        report["violation_list"] = tally.violations
        Path(os.environ["DRBDBACKUP_MUTANTS_REPORT"]).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    assert tally.violations == [], "\n".join(tally.violations[:20])
    assert tally.mutants >= MUTANTS * 0.9  # hypothesis may draw a few duplicates fewer
