"""`drbdbackup status --repo` shows the agents' heartbeats, each key's owner and alarms from the
coordination objects in the repository, and incomplete consistency groups from the records."""

from __future__ import annotations

import json
from pathlib import Path

from drbdbackup.cluster.agent import ClusterSettings
from drbdbackup.cluster.coordinator import Coordinator
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.ops.status import incomplete_groups
from drbdbackup.repo.local import LocalBackend
from tests.helpers import run_cli


def test_status_shows_agents_and_owners(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", "--repo", str(repo))
    rid = json.loads((repo / "config").read_bytes())["repository_id"]
    settings = ClusterSettings(heartbeat_s=0.5, liveness_s=3, rank_step_s=0)
    agents = {n: Coordinator(LocalBackend(str(repo)), n, rid, settings) for n in ("node-a", "node-b")}
    for c in agents.values():
        c.start()
        c.heartbeat()
    key = ClusterKey.resource("vm1")
    claim = agents["node-b"].try_claim(key, 100, 0)
    assert claim is not None
    agents["node-b"].commit(claim, "20261203T000000000000Z-00000000")
    rep = json.loads(run_cli("status", "--repo", str(repo), "--json").stdout)
    assert [a["node"] for a in rep["agents"]] == ["node-a", "node-b"]
    assert all(a["seq"] >= 1 and a["heartbeat_age_s"] is not None for a in rep["agents"])
    assert rep["owners"] == {"rsc:vm1": {"cycle": 100, "node": "node-b",
                                         "generation": "20261203T000000000000Z-00000000"}}
    text = run_cli("status", "--repo", str(repo)).stdout
    assert "node-b" in text and "LAST HEARTBEAT" in text


def test_incomplete_group_is_named() -> None:
    rows = [{"volume_id": "c.a.0", "snapshot": "s1", "group_members": ["c.a.0", "c.b.0"]},
            {"volume_id": "c.a.0", "snapshot": "s2", "group_members": ["c.a.0", "c.b.0"]},
            {"volume_id": "c.b.0", "snapshot": "s2", "group_members": ["c.a.0", "c.b.0"]}]
    assert incomplete_groups(rows) == [{"snapshot": "s1", "missing": ["c.b.0"], "stored": ["c.a.0"]}]
