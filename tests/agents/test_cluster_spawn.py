"""A resource spawned from a resource group while a cycle runs is picked up by the next cycle
at the latest (each cycle selects on a fresh inventory)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import workload
from fixtures.agents import agent_support
from fixtures.sandbox import Sandbox
from tests.agents.cluster import NODES, SNAP_RE, Cluster, sandbox_cluster
from tests.agents.observe import claims, poll
from tests.helpers import run_cli

ok, why = agent_support()
pytestmark = [pytest.mark.skipif(not ok, reason=why or "agents unsupported"), pytest.mark.slow]

MiB = 1 << 20


def _build(sb: Sandbox, work: Path) -> Cluster:
    sb.set_faults(strict_snapshots=True)
    sb.create_cluster(NODES)
    sb.create_resource_group("rg", place_count=2)
    sb.spawn("rg", "ca1", [2 * MiB])
    c = Cluster(sb, work, every_s=4, heartbeat_s=0.5, lease_s=3.0, rank_delay_s=1.0)
    run_cli("init", "--repo", str(c.repo))
    return c


@pytest.fixture
def spawn_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with sandbox_cluster(tmp_path, 128, lambda sb: _build(sb, tmp_path)) as c:
        c.start_agents()
        yield c


def _cycles(c: Cluster, vol: str) -> list[int]:
    d = c.repo / "generations" / vol
    if not d.exists():
        return []
    return [int(SNAP_RE.match(json.loads(p.read_bytes())["source"]["snapshot"]).group(1))  # type: ignore[union-attr]
            for p in sorted(d.iterdir())]


def test_a_resource_spawned_during_a_cycle_is_backed_up_by_the_next_one(
        spawn_cluster: Cluster) -> None:
    c = spawn_cluster
    c.wait_for(lambda: _cycles(c, "linstor.ca1.0"), 40, "a first generation of ca1")
    done = max(_cycles(c, "linstor.ca1.0"))
    running = poll(lambda: [x for x in claims(c.repo) if x.cycle > done
                            and x.committed_attempt is None and x.released is None],
                   4 * c.every_s)
    assert running, "never saw a cycle running"
    k = running[0].cycle  # type: ignore[index]
    info = c.sb.spawn("rg", "ca2", [2 * MiB])  # while cycle k runs
    for node in info.nodes:
        workload.fill(str(c.sb.volume_file("ca2", node, 0)),
                      size=info.volumes[(node, 0)].usable_bytes, seed=5)
    got = c.wait_for(lambda: _cycles(c, "linstor.ca2.0"), 4 * c.every_s + 20,
                     "a generation of the spawned resource")
    c.stop_agents()
    print(f"ca2 spawned during cycle {k}: first generation in cycle {got[0]} "
          f"({(got[0] - k) // c.every_s} cycle(s) later)")
    assert got[0] <= k + c.every_s, (k, got)
