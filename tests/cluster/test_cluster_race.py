"""Many agents race for the same (key, cycle): exactly one wins, in threads and in processes."""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections import Counter
from pathlib import Path

from drbdbackup.cluster import names as N
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.schema import CommitRecord

from .helpers import FAST, ManualClock, MtimeLocalBackend, coordinator

K = 1_800_000_000
ROUNDS = 12


def _race(backend: MtimeLocalBackend, agents: int, rounds: int) -> Counter:
    """Threads: each round every agent claims key r at once, then hits the fence of key r."""
    wins: Counter = Counter()
    barrier = threading.Barrier(agents, timeout=30)
    errors: list[BaseException] = []

    def agent(i: int) -> None:
        try:
            c = coordinator(backend, f"t{i}")
            c.heartbeat()
            for r in range(rounds):
                key = ClusterKey.volume(f"linstor.r{r}.0")
                barrier.wait()
                if c.try_claim(key, K, 0) is not None:
                    wins[("claim", r)] += 1
                barrier.wait()
                rec = CommitRecord(key, K, 0, c.instance, c.node, "s", None, "t")
                if c.store.create_commit(rec):
                    wins[("fence", r)] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return wins


def test_threads_race_exactly_one_wins(local: MtimeLocalBackend) -> None:
    wins = _race(local, 12, ROUNDS)
    assert all(wins[("claim", r)] == 1 and wins[("fence", r)] == 1 for r in range(ROUNDS)), wins


def test_takeover_race_exactly_one_wins(local: MtimeLocalBackend) -> None:
    key = ClusterKey.volume("v")
    dead = coordinator(local, "dead")
    dead.heartbeat()
    assert dead.try_claim(key, K, 0) is not None
    clocks = [ManualClock() for _ in range(8)]
    observers = [coordinator(local, f"o{i}", clocks[i]) for i in range(8)]
    for _ in range(int(FAST.liveness_s / FAST.heartbeat_s) + 1):  # the observers stay alive
        for o, clk in zip(observers, clocks, strict=True):
            clk.advance(FAST.heartbeat_s)
            o.heartbeat()
    assert all(o.dead_agents() == ("dead",) for o in observers)
    barrier, results = threading.Barrier(8, timeout=30), []

    def go(o) -> None:
        barrier.wait()
        results.append(o.try_claim(key, K, 0))

    threads = [threading.Thread(target=go, args=(o,)) for o in observers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [c for c in results if c is not None]
    assert len(results) == 8 and len(won) == 1 and won[0].attempt == 1


def _process_agent(root: str, node: str, rounds: int, barrier, queue) -> None:
    backend = MtimeLocalBackend(root, durable=False)
    c = coordinator(backend, node)
    c.heartbeat()
    for r in range(rounds):
        key = ClusterKey.volume(f"linstor.p{r}.0")
        barrier.wait(30)
        queue.put(("claim", r, c.try_claim(key, K, 0) is not None))
        barrier.wait(30)
        rec = CommitRecord(key, K, 0, c.instance, c.node, "s", None, "t")
        queue.put(("fence", r, c.store.create_commit(rec)))


def test_processes_race_exactly_one_wins(tmp_path: Path) -> None:
    root = str(tmp_path / "repo")
    ctx = mp.get_context("fork")
    agents, rounds = 6, 8
    barrier, queue = ctx.Barrier(agents), ctx.Queue()
    procs = [ctx.Process(target=_process_agent, args=(root, f"p{i}", rounds, barrier, queue))
             for i in range(agents)]
    for p in procs:
        p.start()
    results = []
    try:
        for _ in range(agents * rounds * 2):
            results.append(queue.get(timeout=60))
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
    wins = Counter((kind, r) for kind, r, won in results if won)
    assert all(wins[("claim", r)] == 1 and wins[("fence", r)] == 1 for r in range(rounds)), wins
    assert all(p.exitcode == 0 for p in procs)
    backend = MtimeLocalBackend(root, durable=False)
    for r in range(rounds):
        key = ClusterKey.volume(f"linstor.p{r}.0")
        assert backend.list(N.claims_prefix(key)) == [N.claim_name(key, K, 0)]


def test_one_coordinator_shared_by_worker_threads(local: MtimeLocalBackend) -> None:
    """The service calls one coordinator from several worker threads while it heartbeats."""
    c = coordinator(local, "shared")
    c.heartbeat()
    stop, errors, claims = threading.Event(), [], []

    def beat() -> None:
        while not stop.is_set():
            try:
                c.heartbeat()
                c.state()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    def work(i: int) -> None:
        try:
            for r in range(10):
                key = ClusterKey.resource(f"r{i}-{r}")
                claim = c.try_claim(key, K, 0)
                assert claim is not None and c.try_claim(key, K, 0) == claim
                c.rank(key, K, [])
                c.commit(claim, f"g{i}-{r}")
                claims.append(claim)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    beater = threading.Thread(target=beat)
    beater.start()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    stop.set()
    beater.join(30)
    assert not errors, errors
    assert len(claims) == 60 and len(c.state().keys) == 60
