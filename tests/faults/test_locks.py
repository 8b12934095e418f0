"""Repository locks (format.md section 10): live locks block with exit 4, stale ones are cleared."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .helpers import (
    CLI,
    Scenario,
    assert_ok,
    assert_one_line_error,
    base_env,
    make_source,
    sha256_file,
    snapshot_tree,
)

KEEP = ("config", "packs/", "index/", "generations/", "audit/")


@pytest.fixture
def holder() -> Iterator[subprocess.Popen]:
    """A running process on this host (not us) to own lock objects; killed at the end."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def live_pid(holder: subprocess.Popen) -> int:
    return holder.pid


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_lock(repo: Path, *, exclusive: bool, pid: int, host: str | None = None,
               expires_in: timedelta = timedelta(minutes=30), operation: str = "prune",
               owner: str = "alice@elsewhere") -> str:
    t = datetime.now(UTC)
    name = f"locks/{secrets.token_hex(16)}"
    (repo / "locks").mkdir(exist_ok=True)
    (repo / name).write_text(json.dumps({
        "exclusive": exclusive, "operation": operation, "hostname": host or socket.gethostname(),
        "pid": pid, "owner": owner, "created": (t - timedelta(minutes=1)).isoformat(),
        "expires": (t + expires_in).isoformat(),
    }))
    return name


def test_exclusive_lock_blocks_everything_that_locks(scenario: Scenario, holder) -> None:
    sc = scenario
    live_pid = holder.pid
    lock = write_lock(sc.repo, exclusive=True, pid=live_pid)
    before = snapshot_tree(sc.repo, KEEP)
    for args in (sc.backup_args(),
                 ["restore", "--repo", sc.repo, "--volume-id", sc.volume, "--target", sc.work / "o"],
                 ["check", "--repo", sc.repo, "--read-data"],
                 ["prune", "--repo", sc.repo, "--keep-last", "1"]):
        proc = sc.cli(*args)
        assert_one_line_error(proc, 4, "locked", "alice@elsewhere", str(live_pid), "prune")
    assert snapshot_tree(sc.repo, KEEP) == before
    assert os.listdir(sc.repo / "locks") == [lock.split("/")[1]], "our own lock was not withdrawn"
    assert not (sc.work / "o").exists()
    assert_ok(sc.cli("list", "--repo", sc.repo))  # list takes no lock
    holder.kill()  # the holder dies (and is reaped): its lock is now stale
    holder.wait()
    sc.assert_healthy()
    assert os.listdir(sc.repo / "locks") == []


def test_shared_lock_lets_backup_run_but_blocks_prune(scenario: Scenario, live_pid: int) -> None:
    sc = scenario
    write_lock(sc.repo, exclusive=False, pid=live_pid, operation="backup", owner="bob@elsewhere")
    sc.mutate()
    sc.backup()  # shared locks coexist
    sc.restore_identical(next(iter(sc.gens)))
    before = snapshot_tree(sc.repo, KEEP)
    proc = sc.cli("prune", "--repo", sc.repo, "--keep-last", "1")
    assert_one_line_error(proc, 4, "bob@elsewhere", str(live_pid), "backup")
    assert snapshot_tree(sc.repo, KEEP) == before, "a blocked prune removed something"
    sc.assert_intact()


def test_lock_of_another_host_is_respected_until_it_expires(scenario: Scenario) -> None:
    sc = scenario
    name = write_lock(sc.repo, exclusive=True, pid=1, host="other-host.invalid")
    assert_one_line_error(sc.cli(*sc.backup_args()), 4, "alice@elsewhere")
    (sc.repo / name).unlink()
    write_lock(sc.repo, exclusive=True, pid=1, host="other-host.invalid",
               expires_in=timedelta(seconds=-1))
    sc.mutate()
    sc.backup()
    assert os.listdir(sc.repo / "locks") == []


@pytest.mark.parametrize("kind", ["dead-pid", "expired-live-pid", "unreadable"])
def test_stale_lock_is_removed_and_backup_proceeds(scenario: Scenario, live_pid: int, kind: str) -> None:
    sc = scenario
    if kind == "dead-pid":
        name = write_lock(sc.repo, exclusive=True, pid=dead_pid())
    elif kind == "expired-live-pid":
        name = write_lock(sc.repo, exclusive=True, pid=live_pid, expires_in=timedelta(seconds=-5))
    else:
        name = f"locks/{secrets.token_hex(16)}"
        (sc.repo / "locks").mkdir(exist_ok=True)
        (sc.repo / name).write_text("{not json")
    sc.mutate()
    sc.backup()
    assert not (sc.repo / name).exists(), "the stale lock was not removed"
    assert os.listdir(sc.repo / "locks") == []
    sc.assert_intact()


def test_stale_lock_removal_is_reported(scenario: Scenario) -> None:
    sc = scenario
    pid = dead_pid()
    write_lock(sc.repo, exclusive=False, pid=pid, operation="backup", owner="carol@crashed")
    proc = assert_ok(sc.cli(*sc.backup_args()))
    audit = "".join((sc.repo / "audit" / n).read_text() for n in os.listdir(sc.repo / "audit"))
    assert "carol@crashed" in proc.stdout + proc.stderr + audit


@pytest.mark.slow
def test_prune_while_a_real_backup_holds_its_lock(scenario: Scenario) -> None:
    """Freeze a running backup (SIGSTOP) once its shared lock exists; prune must exit 4 naming it;
    the resumed backup completes and everything stays consistent."""
    sc = scenario
    big = sc.work / "big.img"
    make_source(big, 64 << 20, seed=99)
    for _attempt in range(3):
        proc = subprocess.Popen(CLI + [str(a) for a in sc.backup_args(big)], env=base_env(sc.env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            if os.listdir(sc.repo / "locks"):
                os.kill(proc.pid, signal.SIGSTOP)
                break
            time.sleep(0.002)
        if proc.poll() is None:
            break
        out, err = proc.communicate()  # too quick to catch: record it and try again
        assert proc.returncode == 0, err
        sc.gens[json.loads(out)["generation"]] = sha256_file(big)
    else:
        pytest.skip("the backup finished before its lock could be observed, three times")
    try:
        before = snapshot_tree(sc.repo, ("config", "index/", "generations/", "audit/"))
        blocked = sc.cli("prune", "--repo", sc.repo, "--keep-last", "1")
        assert_one_line_error(blocked, 4, "locked", str(proc.pid), "backup")
        assert snapshot_tree(sc.repo, ("config", "index/", "generations/", "audit/")) == before
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    sc.gens[json.loads(out)["generation"]] = sha256_file(big)
    sc.assert_intact()
    assert_ok(sc.cli("prune", "--repo", sc.repo, "--keep-last", "1"))


def test_prune_lock_wait_outlasts_a_running_backup_and_bars_new_ones(scenario: Scenario,
                                                                      holder: subprocess.Popen) -> None:
    """`prune --lock-wait`: its exclusive lock stays in place while it waits (a backup started
    meanwhile fails with exit 4 naming the prune), and it runs once the shared lock is gone."""
    sc = scenario
    sc.mutate()
    sc.backup()
    shared = write_lock(sc.repo, exclusive=False, pid=holder.pid, operation="backup",
                        owner="bob@elsewhere")
    prune = subprocess.Popen([*CLI, "prune", "--repo", str(sc.repo), "--keep-last", "1",
                              "--lock-wait", "60s", "--json"], env=base_env(sc.env), text=True,
                             cwd=Path(__file__).resolve().parents[2],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not [p for p in (sc.repo / "locks").iterdir() if json.loads(p.read_text())["exclusive"]]:
            assert time.monotonic() < deadline and prune.poll() is None, prune.communicate()
            time.sleep(0.1)
        sc.mutate()
        blocked = sc.cli(*sc.backup_args())
        assert_one_line_error(blocked, 4, "prune", "exclusive")
        assert prune.poll() is None, "the prune gave up while the shared lock was live"
        (sc.repo / shared).unlink()  # the running backup finishes
        out, err = prune.communicate(timeout=60)
    finally:
        if prune.poll() is None:
            prune.kill()
            prune.wait()
    assert prune.returncode == 0, err
    (kept,) = json.loads(out)["kept_generations"]
    assert not list((sc.repo / "locks").iterdir())
    sc.gens = {g: d for g, d in sc.gens.items() if kept.endswith(g)}
    sc.assert_intact()


def test_lock_wait_is_checked_before_the_repository_is_opened(scenario: Scenario) -> None:
    proc = scenario.cli("prune", "--repo", scenario.repo, "--keep-last", "1", "--lock-wait", "soon")
    assert_one_line_error(proc, 2, "--lock-wait")
