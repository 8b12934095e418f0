"""SIGKILL a real `drbdbackup backup` at delays spread over its measured run time.

For a full backup (empty repository) and an incremental one (repository holding generation A),
after every kill: `check --read-data` passes (unreferenced packs are only notes), `list` shows
only complete generations, the next backup succeeds, every listed generation restores
byte-identical to the source at its time; then `prune --keep-last 1` removes the crash leftovers
(unreferenced packs) and check still passes.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import (
    CLI,
    Scenario,
    assert_ok,
    base_env,
    make_source,
    mutate_source,
    repo_files,
    run_cli,
    sha256_file,
)

SIZE = 64 << 20
MIB = 1 << 20
FULL_KILLS = 6
INCREMENTAL_KILLS = 4


@dataclass
class Templates:
    work: Path
    a: Path           # version A of the source
    b: Path           # version B (A with 16 changed chunks)
    digest: dict      # path -> sha256
    empty: Path       # repository after init
    with_a: Path      # repository holding one generation of A
    gen_a: str
    t_start: float    # wall time of a command that only opens the repository (start-up)
    t_full: float     # measured wall time of the full / incremental backup command
    t_inc: float

    def delays(self, total: float, n: int) -> list[float]:
        """n kill delays spread over the part of the run after start-up."""
        start = min(self.t_start, total / 2)
        return [start + (total - start) * (k - 0.5) / n for k in range(1, n + 1)]


def _timed_backup(repo: Path, src: Path) -> tuple[str, float]:
    start = time.monotonic()
    proc = assert_ok(run_cli("backup", "--repo", repo, "--file", src, "--volume-id", "vol", "--json"))
    return json.loads(proc.stdout)["generation"], time.monotonic() - start


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    work = tmp_path_factory.mktemp("sigkill")
    a, b = work / "a.img", work / "b.img"
    make_source(a, SIZE, seed=11, chunk=MIB)
    shutil.copyfile(a, b)
    mutate_source(b, seed=12, regions=16, chunk=MIB)
    empty, with_a = work / "empty", work / "with-a"
    assert_ok(run_cli("init", "--repo", empty))
    start = time.monotonic()
    assert_ok(run_cli("list", "--repo", empty))
    t_start = time.monotonic() - start
    shutil.copytree(empty, with_a)
    gen_a, t_full = _timed_backup(with_a, a)
    t_inc = float("inf")
    for base, src in ((empty, a), (with_a, b), (with_a, b)):  # run times vary: take the minimum
        probe = work / "probe"
        shutil.copytree(base, probe)
        _gen, took = _timed_backup(probe, src)
        shutil.rmtree(probe)
        if base == empty:
            t_full = min(t_full, took)
        else:
            t_inc = min(t_inc, took)
    return Templates(work, a, b, {a: sha256_file(a), b: sha256_file(b)}, empty, with_a, gen_a,
                     t_start, t_full, t_inc)


def _kill_after(repo: Path, src: Path, delay: float) -> int:
    proc = subprocess.Popen(
        CLI + ["backup", "--repo", str(repo), "--file", str(src), "--volume-id", "vol", "--json"],
        env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def _unreferenced(rep: dict) -> list[str]:
    return [n for n in rep["notes"] if "not referenced" in n]


def _one_kill(t: Templates, base: Path, known: dict[str, Path], src: Path, delay: float,
              work: Path) -> dict:
    shutil.copytree(base, work / "repo")
    sc = Scenario(work=work, repo=work / "repo", src=src,
                  gens={g: t.digest[p] for g, p in known.items()})
    rc = _kill_after(sc.repo, src, delay)
    assert rc in (0, -signal.SIGKILL), f"backup died with {rc}"

    rep = sc.check()  # exit 0 and no errors; leftovers are notes
    rows = sc.listing()
    listed = [r["generation"] for r in rows]
    assert all(r["status"] == "ok" for r in rows), rows
    assert set(sc.gens) <= set(listed), "a generation stored before the crash is gone"
    extra = [g for g in listed if g not in sc.gens]
    assert len(extra) <= 1, f"more than one new generation after one backup: {extra}"
    if rc == 0:
        assert len(extra) == 1
    for g in extra:  # the killed backup got as far as its record: it is complete
        sc.gens[g] = t.digest[src]

    for gen in sc.gens:  # every listed generation restores byte-identical
        sc.restore_identical(gen)
    sc.backup()  # the next backup succeeds

    staged = [n for n in repo_files(sc.repo) if n.startswith("tmp/")]
    if _unreferenced(rep) or staged:  # crash leftovers: prune removes the packs
        assert_ok(sc.cli("prune", "--repo", sc.repo, "--keep-last", "1"))
        proc = assert_ok(sc.cli("check", "--repo", sc.repo, "--json"))
        assert _unreferenced(json.loads(proc.stdout)) == [], proc.stdout
    shutil.rmtree(work)
    return {"delay": round(delay, 3), "rc": rc, "completed": bool(extra),
            "leftover_packs": len(_unreferenced(rep)), "staged_files": len(staged)}


@pytest.mark.slow
def test_sigkill_during_full_backup(templates: Templates, tmp_path: Path) -> None:
    t = templates
    outcomes = []
    for k, delay in enumerate(t.delays(t.t_full, FULL_KILLS)):
        outcomes.append(_one_kill(t, t.empty, {}, t.a, delay, tmp_path / f"full-{k}"))
    print(f"start-up {t.t_start:.2f}s, full backup {t.t_full:.2f}s; kills: {outcomes}")
    assert any(o["rc"] == -signal.SIGKILL for o in outcomes), "no kill landed inside a backup"


@pytest.mark.slow
def test_sigkill_during_incremental_backup(templates: Templates, tmp_path: Path) -> None:
    t = templates
    outcomes = []
    for k, delay in enumerate(t.delays(t.t_inc, INCREMENTAL_KILLS)):
        outcomes.append(_one_kill(t, t.with_a, {t.gen_a: t.a}, t.b, delay, tmp_path / f"inc-{k}"))
    print(f"start-up {t.t_start:.2f}s, incremental backup {t.t_inc:.2f}s; kills: {outcomes}")
    assert any(o["rc"] == -signal.SIGKILL for o in outcomes), "no kill landed inside a backup"
