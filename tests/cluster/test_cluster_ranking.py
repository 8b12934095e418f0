"""Eligibility and ranking."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.ranking import (
    Candidate,
    NodeLoad,
    RankGate,
    eligible_nodes,
    rank_nodes,
)

NODES = st.lists(st.sampled_from([f"n{i}" for i in range(8)]), min_size=0, max_size=8, unique=True)
KEYS = st.builds(ClusterKey.volume, st.from_regex(r"\A[a-z][a-z0-9.]{0,12}\Z"))


def test_eligibility_needs_all_three() -> None:
    cands = [Candidate("a", True, True, True), Candidate("b", False, True, True),
             Candidate("c", True, False, True), Candidate("d", True, True, False),
             Candidate("e", True, True, True)]
    assert eligible_nodes(cands) == ("a", "e")


@given(KEYS, NODES, st.one_of(st.none(), st.sampled_from(["n0", "n3", "zz"])),
       st.lists(st.tuples(st.sampled_from(["n0", "n1", "n2"]), st.integers(0, 5)), max_size=5),
       st.lists(st.sampled_from(["n0", "n1", "n5"]), max_size=3))
def test_ranking_properties(key: ClusterKey, eligible: list[str], previous: str | None,
                            loads: list[tuple[str, int]], failed: list[str]) -> None:
    loads_ = [NodeLoad(n, v) for n, v in loads]
    r = rank_nodes(key, eligible, previous, loads_, failed)
    assert sorted(r.order) == sorted(eligible)  # a permutation of the eligible nodes
    assert r == rank_nodes(key, list(reversed(eligible)), previous, list(reversed(loads_)),
                           list(reversed(failed)))  # input order does not matter
    for node in eligible:
        assert r.order[r.rank_of(node)] == node  # type: ignore[index]
        assert r.delay(node, 3.0) == 3.0 * r.rank_of(node)  # type: ignore[operator]
    assert r.rank_of("not-eligible") is None and r.delay("x", 1.0) is None
    if previous in eligible and previous not in failed:
        assert r.order[0] == previous  # sticky while eligible
    ok = [n for n in r.order if n not in failed]
    assert list(r.order[: len(ok)]) == ok  # nodes that failed this cycle come last


def test_load_spreads_and_hash_breaks_ties_evenly() -> None:
    nodes = ["a", "b", "c"]
    r = rank_nodes(ClusterKey.volume("v"), nodes, None, [NodeLoad("a", 3), NodeLoad("b", 1)])
    assert r.order[0] == "c" and r.order[1] == "b"
    firsts = Counter(rank_nodes(ClusterKey.volume(f"vol{i}"), nodes, None).order[0]
                     for i in range(3000))
    assert all(800 < firsts[n] < 1200 for n in nodes), firsts


def test_previous_node_beats_load() -> None:
    r = rank_nodes(ClusterKey.volume("v"), ["a", "b"], "a", [NodeLoad("a", 50)])
    assert r.order == ("a", "b")
    r = rank_nodes(ClusterKey.volume("v"), ["b", "c"], "a", [NodeLoad("b", 1)])  # a gone
    assert r.order == ("c", "b")


def test_repeated_failures_rank_later() -> None:
    r = rank_nodes(ClusterKey.volume("v"), ["a", "b", "c"], "a", failed=["a", "a", "b"])
    assert r.order == ("c", "b", "a")


def test_rank_gate_counts_from_first_sight() -> None:
    g = RankGate(5.0, capacity=3)
    assert g.open("x", 0, 100.0)
    assert not g.open("y", 2, 100.0) and not g.open("y", 2, 109.9) and g.open("y", 2, 110.0)
    assert g.open("y", 1, 105.0)  # a better rank later opens sooner
    for i in range(10):
        g.open(i, 0, 0.0)
    assert len(g._first) == 3  # bounded
