"""The coordinator against a local directory backend, with injected monotonic clocks."""

from __future__ import annotations

import threading

import pytest

from drbdbackup.cluster import names as N
from drbdbackup.cluster.claims import Disposition, Step
from drbdbackup.cluster.cycle import PeriodicSlots
from drbdbackup.cluster.errors import DuplicateAgent, ExclusiveCreateUnsupported, Fenced
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.ranking import Candidate
from tests.doubles.memory import MemoryBackend

from .helpers import FAST, REPO_ID, ManualClock, MtimeLocalBackend, NoExclusiveBackend, coordinator

KEY = ClusterKey.volume("linstor.rsc.0")
K = 1_800_000_000


def pair(backend: MtimeLocalBackend):
    ca, cb = ManualClock(), ManualClock(5000.0)
    a, b = coordinator(backend, "a", ca), coordinator(backend, "b", cb)
    a.start()
    b.start()
    return a, b, ca, cb


def test_one_claim_one_commit(local: MtimeLocalBackend) -> None:
    a, b, _, _ = pair(local)
    claim = a.try_claim(KEY, K, 0)
    assert claim is not None and (claim.cycle, claim.attempt, claim.node) == (K, 0, "a")
    assert N.parse_snapshot(claim.snapshot).repo8 == REPO_ID[:8]  # type: ignore[union-attr]
    assert b.try_claim(KEY, K, 0) is None  # held by a live agent
    assert a.try_claim(KEY, K, 0) == claim  # idempotent for the holder
    assert b.cycle_state(KEY, K).step is Step.HELD
    rec = a.commit(claim, "gen-1")
    assert rec.generation == "gen-1" and local.exists(N.commit_name(KEY, K))
    assert b.cycle_state(KEY, K).step is Step.COMMITTED and b.try_claim(KEY, K, 0) is None
    with pytest.raises(Fenced, match="already committed by a"):
        a.commit(claim, "gen-2")


def test_rank_waits_rank_times_d_on_the_own_clock(local: MtimeLocalBackend) -> None:
    a, b, _, cb = pair(local)
    assert b.try_claim(KEY, K, 2) is None  # rank 2: waits 2 x d = 4 s from first sight
    cb.advance(3.9)
    assert b.try_claim(KEY, K, 2) is None
    cb.advance(0.1)
    assert b.try_claim(KEY, K, 2) is not None
    assert a.try_claim(KEY, K, 0) is None  # rank 0 came too late: b holds it


def test_release_lets_the_next_agent_take_over_at_once(local: MtimeLocalBackend) -> None:
    a, b, _, _ = pair(local)
    claim = a.try_claim(KEY, K, 0)
    assert claim is not None
    a.release(claim, "replica Outdated")
    a.release(claim, "twice is harmless")
    taken = b.try_claim(KEY, K, 0)
    assert taken is not None and taken.attempt == 1
    with pytest.raises(Fenced, match="released"):
        a.commit(claim, "g")
    cands = [Candidate("a", True, True, True), Candidate("b", True, True, True)]
    assert b.rank(KEY, K, cands).order[-1] == "a"  # a failed this cycle: ranked last
    b.commit(taken, "g")


def test_takeover_after_holder_death_and_the_late_commit_is_fenced(local: MtimeLocalBackend) -> None:
    a, b, _, cb = pair(local)
    claim = a.try_claim(KEY, K, 0)
    assert claim is not None
    for _ in range(4):  # a stops heartbeating; b keeps observing
        cb.advance(FAST.heartbeat_s)
        b.heartbeat()
        assert b.try_claim(KEY, K, 0) is None
    cb.advance(FAST.heartbeat_s)
    b.heartbeat()  # 5 s = L without a change of a's seq
    assert "a" in b.dead_agents()
    taken = b.try_claim(KEY, K, 0)
    assert taken is not None and taken.attempt == 1
    with pytest.raises(Fenced, match="taken over by b"):
        a.commit(claim, "late")
    b.commit(taken, "g")
    assert b.cycle_state(KEY, K).attempt == 1


def test_fence_holds_even_when_the_pre_check_is_passed(local: MtimeLocalBackend) -> None:
    """Both owners reach the fence (the check-then-create window): exactly one commits."""
    a, b, _, _ = pair(local)
    claim = a.try_claim(KEY, K, 0)
    assert claim is not None
    stale = claim.__class__(KEY, K, 0, "b", b.instance, "snap")  # as if b had passed the check
    b.commit(stale, "first")
    with pytest.raises(Fenced, match="already committed by b"):
        a.commit(claim, "second")


def test_paused_owner_thread_is_fenced_after_takeover(local: MtimeLocalBackend) -> None:
    a, b, _, cb = pair(local)
    resume, outcome = threading.Event(), []

    def owner() -> None:
        claim = a.try_claim(KEY, K, 0)
        assert claim is not None
        resume.wait(30)  # SIGSTOP: no heartbeat, no progress
        try:
            a.commit(claim, "late")
            outcome.append("committed")
        except Fenced as exc:
            outcome.append(str(exc))

    t = threading.Thread(target=owner)
    t.start()
    while not local.exists(N.claim_name(KEY, K, 0)):
        threading.Event().wait(0.01)
    for _ in range(6):
        cb.advance(FAST.heartbeat_s)
        b.heartbeat()
    taken = b.try_claim(KEY, K, 0)
    assert taken is not None
    b.commit(taken, "g")
    resume.set()
    t.join(30)
    assert outcome and "already committed by b" in outcome[0]
    assert len(local.list(N.commits_prefix(KEY))) == 1


def test_restarted_agent_takes_its_own_stale_claim_at_once(local: MtimeLocalBackend) -> None:
    a, _, _, _ = pair(local)
    assert a.try_claim(KEY, K, 0) is not None
    a2 = coordinator(local, "a")  # SIGKILL, then systemd restarts it: a new instance
    a2.start()
    claim = a2.try_claim(KEY, K, 0)
    assert claim is not None and claim.attempt == 1


def test_dead_agent_detection_with_an_injected_clock(local: MtimeLocalBackend) -> None:
    a, b, ca, cb = pair(local)
    for _ in range(10):
        ca.advance(1)
        cb.advance(1)
        a.heartbeat()
        b.heartbeat()
        assert b.dead_agents() == () and b.alive("a")
    for i in range(10):  # a stops
        cb.advance(1)
        b.heartbeat()
        assert (b.dead_agents() == ("a",)) == (i >= 4)
    a.heartbeat()  # a comes back
    b.heartbeat()
    assert b.dead_agents() == ()
    assert not b.alive("nobody")


def test_two_agents_with_one_node_name_both_stop(local: MtimeLocalBackend) -> None:
    x, y = coordinator(local, "a"), coordinator(local, "a")
    x.start()
    y.start()  # y takes over the name (x could be a dead predecessor)
    with pytest.raises(DuplicateAgent, match="two agents run as node 'a'"):
        x.heartbeat()  # x sees y's instance in its own heartbeat
    with pytest.raises(DuplicateAgent):
        y.heartbeat()  # the alarm names y too
    with pytest.raises(DuplicateAgent):
        x.try_claim(KEY, K, 0)
    z = coordinator(local, "a")  # after the operator fixed it: a fresh instance runs
    z.start()
    z.heartbeat()
    (alarm,) = z.state().alarms
    assert alarm.node == "a" and set(alarm.instances) == {x.instance, y.instance}


def test_skewed_clocks_agree_on_k(local: MtimeLocalBackend) -> None:
    sched = PeriodicSlots(60)
    agents = [coordinator(local, f"n{i}", ManualClock(100.0 * i), wall_offset=off)
              for i, off in enumerate((-300.0, 0.0, 240.0))]
    for c in agents:
        c.heartbeat()
    times = [c.store_now() for c in agents]
    assert max(times) - min(times) < 2.0  # the store's clock, not the agents'
    ks = {c.current_cycle(sched) for c in agents}
    assert len(ks) == 1 or max(times) % 60 < 2.0  # only a slot boundary in between could split


def test_without_store_times_skewed_agents_would_disagree(tmp_path) -> None:
    backend = MemoryBackend()  # reports no modification times (LocalBackend now does)
    sched = PeriodicSlots(60)
    early, late = (coordinator(backend, f"n{i}", wall_offset=off) for i, off in enumerate((-300.0, 300.0)))
    early.heartbeat()
    late.heartbeat()
    assert late.current_cycle(sched) - early.current_cycle(sched) == 600  # type: ignore[operator]


def test_cluster_mode_refuses_a_backend_without_exclusive_create(tmp_path) -> None:
    with pytest.raises(ExclusiveCreateUnsupported, match="exclusive create"):
        coordinator(NoExclusiveBackend(str(tmp_path / "r"), durable=False), "a").start()
    declared = NoExclusiveBackend(str(tmp_path / "s"), durable=False)
    declared.exclusive_create = False  # type: ignore[attr-defined]
    with pytest.raises(ExclusiveCreateUnsupported):
        coordinator(declared, "a").start()
    assert declared.list("cluster/") == []


def test_unreadable_claim_counts_as_dead(local: MtimeLocalBackend) -> None:
    a, _, _, _ = pair(local)
    local.put(N.claim_name(KEY, K, 0), b"garbage", exclusive=True)
    claim = a.try_claim(KEY, K, 0)
    assert claim is not None and claim.attempt == 1


def test_ranking_uses_previous_commit_and_loads(local: MtimeLocalBackend) -> None:
    a, b, _, _ = pair(local)
    cands = [Candidate(n, True, True, True) for n in ("a", "b", "c")]
    claim = b.try_claim(KEY, K, 0)
    assert claim is not None
    b.commit(claim, "g")
    a.owners(max_age_s=0)
    assert a.rank(KEY, K + 60, cands).order[0] == "b"  # sticky
    down = [Candidate("a", True, True, True), Candidate("b", False, True, True),
            Candidate("c", True, True, True)]
    assert a.rank(KEY, K + 60, down).rank_of("b") is None
    other = ClusterKey.volume("other")
    order = a.rank(other, K, cands).order
    assert order[-1] == "b"  # b carries one key already


def test_snapshot_disposition_and_state(local: MtimeLocalBackend) -> None:
    a, b, _, cb = pair(local)
    c1 = a.try_claim(KEY, K, 0)
    assert c1 is not None
    assert b.snapshot_disposition(KEY, c1.snapshot) is Disposition.KEEP_ACTIVE
    assert b.snapshot_disposition(KEY, "pvc-123-snap") is None
    a.commit(c1, "g1")
    assert b.snapshot_disposition(KEY, c1.snapshot) is Disposition.KEEP_BASE
    c2 = a.try_claim(KEY, K + 60, 0)
    assert c2 is not None
    a.release(c2, "pool full")
    assert b.snapshot_disposition(KEY, c2.snapshot) is Disposition.DELETE
    c3 = b.try_claim(KEY, K + 60, 0)
    assert c3 is not None
    b.commit(c3, "g2")
    assert b.snapshot_disposition(KEY, c1.snapshot) is Disposition.DELETE  # superseded
    st = b.state()
    assert st.node == "b" and {v.node for v in st.agents} == {"a", "b"}
    (kv,) = st.keys
    assert (kv.key, kv.cycle, kv.state, kv.attempt, kv.node, kv.generation) == (
        KEY, K + 60, "committed", 1, "b", "g2")
    assert kv.released_attempts == 1 and kv.last_committed_node == "b"


def test_prune_keeps_recent_and_fences_late_commits(local: MtimeLocalBackend) -> None:
    a, b, _, cb = pair(local)
    late = a.try_claim(KEY, K, 0)  # a paused owner of the oldest cycle
    assert late is not None
    for i in range(1, 6):
        c = b.try_claim(KEY, K + 60 * i, 0)
        assert c is not None
        b.commit(c, f"g{i}")
    held = b.prune()  # K is held by a (alive to b): nothing below it may go
    assert held == ()
    for _ in range(6):
        cb.advance(1)
        b.heartbeat()
    (pruned,) = b.prune()
    assert pruned.floor == K + 60 * 3 and pruned.removed_objects > 0
    assert [N.parse_cycle(N.leaf(n)) for n in local.list(N.commits_prefix(KEY))] == [
        K + 180, K + 240, K + 300]
    with pytest.raises(Fenced, match="pruned"):
        a.commit(late, "very late")  # its claim object is gone; the floor refuses it
    assert not local.exists(N.commit_name(KEY, K))
    assert b.cycle_state(KEY, K).step is Step.PRUNED
    assert b.try_claim(KEY, K, 0) is None
    assert b.prune() == ()


def test_floor_written_between_pre_check_and_fence_still_refuses(local: MtimeLocalBackend,
                                                                 monkeypatch) -> None:
    """Prune raised the floor and deleted the old commit after the owner's pre-check: the owner's
    fence then succeeds on the vacant name, but its floor check after the fence refuses."""
    a, b, _, cb = pair(local)
    old = b.try_claim(KEY, K, 0)
    assert old is not None
    b.commit(old, "g0")
    late = a.try_claim(KEY, K + 60, 0)
    assert late is not None
    a.release(late, "simulate: the cycle ends without this owner")  # so prune may drop it
    for i in range(2, 6):
        c = b.try_claim(KEY, K + 60 * i, 0)
        assert c is not None
        b.commit(c, f"g{i}")
    assert b.prune()
    original = a.store.cycle_view
    monkeypatch.setattr(a.store, "cycle_view",
                        lambda key, cycle, with_floor=True: original(key, cycle, with_floor=False))
    stale = late.__class__(KEY, K + 60, 0, "a", a.instance, late.snapshot)
    with pytest.raises(Fenced, match="pruned"):
        a.commit(stale, "late")
    assert not local.exists(N.commit_name(KEY, K + 60))
