"""One planning pass costs the same number of LINSTOR API calls for 100 resources as for 1,000
(20 nodes, 10 resource groups) (issue 18's control-plane cost); the time it takes is printed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.linstor.inventory import take_inventory
from drbdbackup.linstor.selection import SelectionRule, select
from fixtures.sandbox import Sandbox

NODES = [f"node-{i:02d}" for i in range(20)]
RULES = [SelectionRule("teams", resource_groups=("rg1", "rg2", "rg3")),
         SelectionRule("by-prop", match={"Aux/team": "t7"}),
         SelectionRule("named", names=("pvc-g9-00*",))]


def _plan(sb: Sandbox) -> tuple[int, float, dict[str, int], int]:
    calls = []
    t0 = time.monotonic()
    with ControllerSettings(sb.controllers, before_call=lambda: calls.append(1)).connect() as ctl:
        inv = take_inventory(ctl)
    sel = select(inv.resources, RULES, set(inv.groups))
    took = time.monotonic() - t0
    return len(calls), took, {p: len(c) for p, c in sel.chosen.items()}, len(sel.unprotected)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(Path(tmp_path_factory.mktemp("plan")), use_xfs=False, use_loop=False) as sb:
        sb.create_cluster(NODES)
        for g in range(10):
            sb.create_resource_group(f"rg{g}", place_count=2, props={"Aux/team": f"t{g}"})
        yield sb


def test_planning_calls_do_not_grow_with_the_number_of_resources(cluster: Sandbox) -> None:
    for g in range(10):
        cluster.bulk_spawn(f"rg{g}", [1024], prefix=f"pvc-g{g}-", count=10)
    calls_100, took_100, chosen_100, unprot_100 = _plan(cluster)
    assert chosen_100 == {"teams": 30, "by-prop": 10, "named": 10} and unprot_100 == 50
    for g in range(10):
        cluster.bulk_spawn(f"rg{g}", [1024], prefix=f"pvc-h{g}-", count=90)
    calls_1000, took_1000, chosen_1000, unprot_1000 = _plan(cluster)
    assert chosen_1000["teams"] == 300 and chosen_1000["by-prop"] == 100
    assert unprot_1000 == 1000 - sum(chosen_1000.values())
    assert calls_100 == calls_1000, (calls_100, calls_1000)
    print(f"planning pass: {calls_1000} API calls, {took_100 * 1000:.0f} ms at 100 resources, "
          f"{took_1000 * 1000:.0f} ms at 1,000")
    # the time is reported, not asserted (speed targets live in benchmarks)
