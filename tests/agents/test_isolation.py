"""Each simulated agent sees only its own node's pool and has the node's name as hostname."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fixtures.agents import agent_support, isolated

ok, why = agent_support()
pytestmark = pytest.mark.skipif(not ok, reason=why or "agents unsupported")


def test_agent_sees_only_its_own_pool(tmp_path: Path) -> None:
    pools = tmp_path / "pools"
    for node in ("node-a", "node-b"):
        (pools / node).mkdir(parents=True)
        (pools / node / "vol.img").write_text(node)
    script = f"hostname; ls {pools}; cat {pools}/node-a/vol.img; echo more > {pools}/node-a/new; cat {pools}/node-b/vol.img"
    proc = subprocess.run(isolated(pools, "node-a", ["sh", "-c", script]), capture_output=True,
                          text=True, timeout=20)
    lines = proc.stdout.split()
    assert lines[:3] == ["node-a", "node-a", "node-a"], proc
    assert proc.returncode != 0 and "node-b/vol.img: No such file" in proc.stderr
    assert (pools / "node-a" / "new").read_text() == "more\n"  # writes reach the real pool
    assert sorted(p.name for p in pools.iterdir()) == ["node-a", "node-b"]  # host view unchanged
    assert subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip() != "node-a"
