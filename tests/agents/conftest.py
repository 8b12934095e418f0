"""A 3-node cluster with short cycles and leases for the fault tests (every 4 s, h 0.5 s,
L 3 s, d 1 s): each scenario runs well under two minutes. `@pytest.mark.every(8)` lengthens
the cycle for a test that needs a takeover within one cycle (L + h + d = 4.5 s > 4 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.cluster import Cluster, build, sandbox_cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "every(seconds): the fast_cluster's cycle length")


@pytest.fixture
def fast_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    marker = request.node.get_closest_marker("every")
    every = int(marker.args[0]) if marker else 4
    with sandbox_cluster(tmp_path, 512, lambda sb: build(
            sb, tmp_path, every_s=every, heartbeat_s=0.5, lease_s=3.0, rank_delay_s=1.0)) as c:
        yield c
