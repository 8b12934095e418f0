"""Randomized interleavings of whole agents (hypothesis): pauses, kills, restarts, releases,
prunes and takeovers never give two successful commits of one (key, cycle); and once the others
stop, a survivor commits every open cycle within L + h (+ one poll) of its own clock."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drbdbackup.cluster.claims import Step
from drbdbackup.cluster.coordinator import Claim, Coordinator
from drbdbackup.cluster.errors import DuplicateAgent, Fenced
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.ranking import Candidate

from .helpers import FAST, ManualClock, SimBackend, coordinator

NODES = 3
KEYS = (ClusterKey.volume("linstor.a.0"), ClusterKey.group("cg1"))
CYCLES = (100, 200, 300, 400)


@dataclass
class Agent:
    coord: Coordinator
    clock: ManualClock
    held: list[Claim] = field(default_factory=list)
    paused: bool = False


@dataclass
class World:
    backend: SimBackend
    agents: dict[int, Agent]
    zombies: list[Agent] = field(default_factory=list)  # killed or replaced, may still resume
    commits: Counter = field(default_factory=Counter)

    def tick(self, dt: float) -> None:
        self.backend.now += dt
        for a in [*self.agents.values(), *self.zombies]:
            a.clock.advance(dt)

    def commit(self, a: Agent, claim: Claim) -> None:
        try:
            a.coord.commit(claim, "g")
        except (Fenced, DuplicateAgent):
            return
        finally:
            if claim in a.held:
                a.held.remove(claim)
        self.commits[(claim.key, claim.cycle)] += 1
        assert self.commits[(claim.key, claim.cycle)] == 1, (claim, self.commits)


def new_agent(backend: SimBackend, i: int) -> Agent:
    clock = ManualClock(1000.0 * (i + 1))
    return Agent(coordinator(backend, f"n{i}", clock), clock)


def rank_of(a: Agent, key: ClusterKey, cycle: int) -> int:
    cands = [Candidate(f"n{i}", True, True, a.coord.alive(f"n{i}")) for i in range(NODES)]
    r = a.coord.rank(key, cycle, cands).rank_of(a.coord.node)
    return 0 if r is None else r


ACTIONS = st.one_of(
    st.tuples(st.just("tick"), st.sampled_from([0.5, 1.0, 3.0, 6.0])),
    st.tuples(st.just("tick"), st.sampled_from([2.0, 6.0])),
    st.tuples(st.just("hb"), st.integers(0, NODES - 1)),
    st.tuples(st.just("claim"), st.integers(0, NODES - 1), st.integers(0, 1), st.sampled_from(CYCLES)),
    st.tuples(st.just("commit"), st.integers(0, NODES - 1)),
    st.tuples(st.just("release"), st.integers(0, NODES - 1)),
    st.tuples(st.just("pause"), st.integers(0, NODES - 1)),
    st.tuples(st.just("pause"), st.integers(0, NODES - 1)),
    st.tuples(st.just("restart"), st.integers(0, NODES - 1)),
    st.tuples(st.just("zombie"), st.integers(0, 3)),
    st.tuples(st.just("prune"), st.integers(0, NODES - 1)),
    st.tuples(st.just("rounds"), st.integers(1, 7)),
    st.tuples(st.just("storm"), st.integers(0, 1), st.sampled_from(CYCLES)),
)


def step(w: World, action: tuple) -> None:
    kind = action[0]
    if kind == "tick":
        w.tick(action[1])
        return
    if kind == "rounds":  # time passes; every running agent heartbeats each h
        for _ in range(action[1]):
            w.tick(FAST.heartbeat_s)
            for i in list(w.agents):
                step(w, ("hb", i))
        return
    if kind == "storm":  # every agent goes for the same (key, cycle)
        for i in list(w.agents):
            step(w, ("claim", i, action[1], action[2]))
        return
    if kind == "zombie":
        if w.zombies:
            z = w.zombies[action[1] % len(w.zombies)]
            for claim in list(z.held):  # a resumed paused owner goes straight for its commit
                w.commit(z, claim)
        return
    a = w.agents[action[1]]
    if kind == "pause":
        a.paused = not a.paused
        return
    if kind == "restart":  # SIGKILL + restart: the old process may linger as a zombie
        w.zombies.append(a)
        w.agents[action[1]] = new_agent(w.backend, action[1])
        return
    if a.paused:
        return
    try:
        if kind == "hb":
            a.coord.heartbeat()
        elif kind == "claim":
            key, cycle = KEYS[action[2]], action[3]
            claim = a.coord.try_claim(key, cycle, rank_of(a, key, cycle))
            if claim is not None and claim not in a.held:
                a.held.append(claim)
        elif kind == "commit" and a.held:
            w.commit(a, a.held[0])
        elif kind == "release" and a.held:
            a.coord.release(a.held.pop(0), "cannot proceed")
        elif kind == "prune":
            a.coord.prune(keep=1)
    except DuplicateAgent:
        a.paused = True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=10, max_size=80), st.integers(0, NODES - 1))
def test_random_interleavings(actions: list[tuple], survivor_i: int) -> None:
    backend = SimBackend()
    w = World(backend, {i: new_agent(backend, i) for i in range(NODES)})
    for a in w.agents.values():
        a.coord.heartbeat()
    for action in actions:
        step(w, action)

    # Liveness: everyone but the survivor stops for good; the survivor polls every h.
    survivor = w.agents[survivor_i]
    survivor.paused = False
    open_cycles = [(k, c) for k in KEYS for c in CYCLES
                   if survivor.coord.cycle_state(k, c).step in (Step.HELD, Step.CLAIMABLE)]
    start = survivor.clock()
    deadline = FAST.liveness_s + 2 * FAST.heartbeat_s
    while open_cycles:
        w.backend.now += FAST.heartbeat_s
        survivor.clock.advance(FAST.heartbeat_s)
        survivor.coord.heartbeat()
        for key, cycle in list(open_cycles):
            claim = survivor.coord.try_claim(key, cycle, 0)
            if claim is not None:
                w.commit(survivor, claim)
            done = survivor.coord.cycle_state(key, cycle).step in (Step.COMMITTED, Step.PRUNED)
            superseded = any(c > cycle for c in survivor.coord.store.committed_cycles(key))
            if done or superseded:  # a later cycle committed: this one is over (format.md 16.3)
                open_cycles.remove((key, cycle))
        assert survivor.clock() - start <= deadline, open_cycles
    for z in w.zombies + [a for a in w.agents.values() if a is not survivor]:
        for claim in list(z.held):  # everyone paused resumes at the very end: still fenced
            w.commit(z, claim)
    assert all(v == 1 for v in w.commits.values())
