"""A 3-node sandbox cluster with one agent per node, all on one config (test support)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fixtures import workload
from fixtures.agents import Agent
from fixtures.sandbox import Sandbox
from tests.helpers import run_cli

MiB = 1 << 20
NODES = ["node-a", "node-b", "node-c"]
# resource -> (nodes with a replica, volume sizes)
LAYOUT = {
    "ca1": (["node-a", "node-b"], [4 * MiB]),
    "ca2": (["node-b", "node-c"], [4 * MiB]),
    "ca3": (["node-a", "node-c"], [4 * MiB]),
    "ca4": (["node-a", "node-b"], [4 * MiB]),
    "ca5": (["node-b", "node-c"], [3 * MiB, 2 * MiB]),
}
# the done-when layout adds a consistency group of two resources on different node pairs
GROUP_LAYOUT = {
    "cg1": (["node-a", "node-b"], [2 * MiB]),
    "cg2": (["node-b", "node-c"], [2 * MiB]),
}
SNAP_RE = re.compile(r"^drbdbackup-[0-9a-f]{8}-(\d+)-(\d+)-[0-9a-f]{6}$")  # <repo>-<cycle>-<attempt>


@dataclass
class Cluster:
    sb: Sandbox
    work: Path
    every_s: int
    heartbeat_s: float
    lease_s: float
    rank_delay_s: float
    with_group: bool = False  # GROUP_LAYOUT exists, protected by a consistency-group policy
    agents: dict[str, Agent] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    @property
    def bound_s(self) -> float:
        """L + h + rank x d for the worst rank of a 2-replica volume (rank 1)."""
        return self.lease_s + self.heartbeat_s + self.rank_delay_s

    def write_config(self) -> Path:
        (self.work / "token").write_text("agent-token")
        cfg = self.work / "drbdbackup.toml"
        cfg.write_text(f"""
[service]
listen = "127.0.0.1:0"
token_file = "{self.work / 'token'}"
state_db = "{self.work / 'state' / 'jobs.sqlite'}"
max_jobs_per_node = 2

[repository]
location = "{self.repo}"

[linstor]
controllers = "{self.sb.controllers}"

[cluster]
node = "auto"
heartbeat_s = {self.heartbeat_s}
lease_s = {self.lease_s}
rank_delay_s = {self.rank_delay_s}

[[policy]]
name = "all"
names = ["ca*"]
every_s = {self.every_s}
""" + (f"""
[[policy]]
name = "group"
names = ["cg*"]
consistency_group = true
every_s = {self.every_s}
""" if self.with_group else ""))
        return cfg

    def start_agents(self) -> None:
        cfg = self.write_config()
        for node in NODES:
            self.start_agent(node, cfg)

    def start_agent(self, node: str, cfg: Path | None = None, *, name: str | None = None,
                    env: dict[str, str] | None = None) -> Agent:
        """An agent of `node`, known as `name` (default: the node) for its log and job store."""
        name = name or node
        agent = Agent(node, cfg or self.work / "drbdbackup.toml", self.sb.pool_root,
                      self.work / f"agent-{name}.log", env=env,
                      private=(self.work / "states" / name, self.work / "state"))
        self.agents[name] = agent.start()
        return agent

    def stop_agents(self) -> None:
        for agent in self.agents.values():
            agent.stop()

    def log(self, name: str) -> str:
        path = self.work / f"agent-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- what the repository says ---------------------------------------------------------

    def records(self) -> list[dict]:
        rows = json.loads(run_cli("list", "--repo", str(self.repo), "--json").stdout)["generations"]
        out = []
        for g in rows:
            rec = json.loads((self.repo / "generations" / g["volume_id"] / g["generation"]).read_bytes())
            out.append({**g, "record": rec})
        return out

    def per_volume(self) -> dict[str, list[dict]]:
        by: dict[str, list[dict]] = defaultdict(list)
        for r in self.records():
            by[r["volume_id"]].append(r)
        return by

    def assert_one_generation_per_volume_and_cycle(self) -> None:
        counts: Counter[tuple[str, int]] = Counter()
        for r in self.records():
            m = SNAP_RE.match(r["record"]["source"]["snapshot"])
            assert m, f"snapshot not named after a claim: {r['record']['source']['snapshot']}"
            counts[(r["volume_id"], int(m.group(1)))] += 1
        twice = {k: n for k, n in counts.items() if n > 1}
        assert not twice, f"more than one committed generation per (volume, cycle): {twice}"

    def wait_for(self, predicate, timeout: float, what: str, step: float = 0.5):  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = predicate()
            if got:
                return got
            time.sleep(step)
        logs = "\n".join(f"--- {n}\n{self.log(n)[-3000:]}" for n in self.agents)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def build(sb: Sandbox, work: Path, *, with_group: bool = False, **timing: float) -> Cluster:
    """Nodes, resources with data identical on every replica, an initialized repository (with
    `with_group`, also GROUP_LAYOUT under a consistency-group policy).
    Snapshots are strict as LINSTOR's: one of a replica that is not UpToDate is refused."""
    sb.set_faults(strict_snapshots=True)
    sb.create_cluster(NODES)
    layout = {**LAYOUT, **(GROUP_LAYOUT if with_group else {})}
    for i, (rsc, (nodes, sizes)) in enumerate(sorted(layout.items())):
        sb.create_resource(rsc, sizes, nodes=nodes)
        info = sb.resource_info(rsc)
        for node in nodes:
            for vnr in range(len(sizes)):
                usable = info.volumes[(node, vnr)].usable_bytes
                workload.fill(str(sb.volume_file(rsc, node, vnr)), size=usable, seed=100 * i + vnr)
    c = Cluster(sb, work, with_group=with_group, **timing)  # type: ignore[arg-type]
    run_cli("init", "--repo", str(c.repo))
    return c


@contextmanager
def sandbox_cluster(work: Path, pool_size_mib: int,
                    make: Callable[[Sandbox], Cluster]) -> Iterator[Cluster]:
    """A started sandbox under `work`, the cluster `make` builds on it; on the way out every
    agent is stopped, then the sandbox (whatever `make` or the test raised)."""
    sb = Sandbox(work / "sb", pool_size_mib=pool_size_mib)
    sb.start()
    c: Cluster | None = None
    try:
        c = make(sb)
        yield c
    finally:
        if c is not None:
            c.stop_agents()
        sb.stop()
