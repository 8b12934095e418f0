"""The same three agents with the repository on S3 (moto's real server on loopback): every
volume gets incremental generations on a node that holds it, at most one per (volume, cycle)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from fixtures.agents import Agent, agent_support
from fixtures.sandbox import Sandbox
from tests.agents.cluster import LAYOUT, NODES, build
from tests.helpers import run_cli
from tests.s3server import moto_s3

ok, why = agent_support()
pytestmark = [pytest.mark.skipif(not ok, reason=why or "agents unsupported"), pytest.mark.slow]
SNAP_RE = re.compile(r"^drbdbackup-[0-9a-f]{8}-(\d+)-(\d+)-[0-9a-f]{6}$")
REPO = "s3://backups/cluster/repo"


def _config(work: Path, sb: Sandbox) -> Path:
    (work / "token").write_text("t")
    cfg = work / "s3.toml"
    cfg.write_text(f"""
[service]
listen = "127.0.0.1:0"
token_file = "{work / 'token'}"
state_db = "{work / 'state' / 'jobs.sqlite'}"
max_jobs_per_node = 3

[repository]
location = "{REPO}"

[linstor]
controllers = "{sb.controllers}"

[cluster]
heartbeat_s = 0.5
lease_s = 3
rank_delay_s = 2

[[policy]]
name = "all"
names = ["ca*"]
every_s = 5
""")
    return cfg


def test_three_agents_on_an_s3_repository(tmp_path: Path) -> None:
    with moto_s3() as env, Sandbox(tmp_path / "sb", pool_size_mib=512) as sb:
        build(sb, tmp_path, every_s=5, heartbeat_s=0.5, lease_s=3.0, rank_delay_s=2.0)
        run_cli("init", "--repo", REPO, env=env)
        cfg = _config(tmp_path, sb)
        agents = [Agent(n, cfg, sb.pool_root, tmp_path / f"s3-agent-{n}.log", env=env,
                        private=(tmp_path / "s3states" / n, tmp_path / "state")).start()
                  for n in NODES]
        vols = [f"linstor.{r}.{v}" for r, (_n, sizes) in LAYOUT.items() for v in range(len(sizes))]
        rows: list[dict] = []
        try:
            deadline = time.monotonic() + 240  # moto under a loaded 2-core CI host is slow
            while time.monotonic() < deadline:
                rows = json.loads(run_cli("list", "--repo", REPO, "--json", env=env).stdout)["generations"]
                if all(any(r["volume_id"] == v and r["mode"] == "incremental" for r in rows) for v in vols):
                    break
                time.sleep(1)
        finally:
            for a in agents:
                a.stop()
        logs = {n: (tmp_path / f"s3-agent-{n}.log").read_text() for n in NODES}
        assert all(any(r["volume_id"] == v and r["mode"] == "incremental" for r in rows) for v in vols), logs
        per_cycle = Counter((r["volume_id"], SNAP_RE.match(r["snapshot"]).group(1)) for r in rows)  # type: ignore[union-attr]
        assert max(per_cycle.values()) == 1, per_cycle
        for r in rows:
            assert r["node"] in LAYOUT[r["volume_id"].split(".")[1]][0], r
        assert json.loads(run_cli("check", "--repo", REPO, "--json", env=env).stdout)["ok"]
