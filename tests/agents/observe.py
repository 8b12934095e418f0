"""What the tests look at besides generations: the coordination objects in the repository,
LINSTOR's snapshots and the pools' snapshot files, each agent's job store, the key-value store."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fixtures.sandbox import Sandbox
from tests.agents.cluster import LAYOUT, NODES, SNAP_RE, Cluster
from tests.helpers import run_cli

KV_INSTANCE = "drbdbackup"
VOLUMES = [f"linstor.{r}.{v}" for r, (_n, sizes) in sorted(LAYOUT.items()) for v in range(len(sizes))]


@dataclass(frozen=True)
class ClaimObj:
    key: str  # the key's path segment, e.g. rsc-ca1
    cycle: int
    attempt: int
    node: str
    snapshot: str
    released: str | None  # the release reason
    committed_attempt: int | None  # the attempt that committed the cycle, if any
    mtime: float

    @property
    def job_target(self) -> str:
        """How the agent's job store names this (key, cycle): `rsc:ca1 cycle K`."""
        return f"{self.key.replace('-', ':', 1)} cycle {self.cycle}"


def claims(repo: Path) -> list[ClaimObj]:
    """Every claim under cluster/claims/, with its release and the cycle's commit."""
    out = []
    for d in sorted((repo / "cluster" / "claims").glob("*")):
        for f in sorted(d.iterdir()):
            parts = f.name.split(".")
            if len(parts) != 2:
                continue
            try:
                body = json.loads(f.read_bytes())
                st = f.stat()
            except (OSError, ValueError):
                continue  # pruned or being written
            rel = f.with_name(f.name + ".released")
            reason = _field(rel, "reason") if rel.exists() else None
            commit = repo / "cluster" / "commits" / d.name / parts[0]
            done = _field(commit, "attempt") if commit.exists() else None
            out.append(ClaimObj(d.name, int(parts[0]), int(parts[1]), body["node"],
                                body["snapshot"], None if reason is None else str(reason),
                                None if done is None else int(done), st.st_mtime))
    return out


def _field(path: Path, name: str) -> object:
    try:
        return json.loads(path.read_bytes()).get(name, "")
    except (OSError, ValueError):
        return ""


def open_claims(repo: Path, node: str) -> list[ClaimObj]:
    """Claims `node` holds now: neither released nor any commit of their cycle."""
    return [c for c in claims(repo) if c.node == node and c.released is None
            and c.committed_attempt is None]


def linstor_snapshots(sb: Sandbox) -> dict[str, set[str]]:
    """`drbdbackup-*` snapshot definitions per resource, as python-linstor lists them."""
    out: dict[str, set[str]] = {}
    with sb.session() as lin:
        for resp in lin.snapshot_dfn_list():
            for sd in getattr(resp, "snapshots", []):
                if sd.name.startswith("drbdbackup-"):
                    out.setdefault(sd.resource_name, set()).add(sd.name)
    return out


def snapshot_files(sb: Sandbox) -> list[Path]:
    """Snapshot files of `drbdbackup-*` snapshots in every node's pool."""
    return sorted(p for node in sb.nodes for p in sb.pool_dir(node).glob("*_drbdbackup-*"))


def jobs(c: Cluster, name: str) -> list[dict]:
    """The finished jobs in agent `name`'s job store."""
    db = c.work / "states" / name / "jobs.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM jobs WHERE state IN ('succeeded', 'failed') "
                           "ORDER BY id").fetchall()
        return [dict(r) for r in rows]
    finally:
        con.close()


def kv_states(sb: Sandbox) -> dict[str, dict]:
    """The agents' published states (key-value store `drbdbackup`, keys `agent/<node>`)."""
    with sb.session() as lin:
        props = lin.keyvaluestore_list(KV_INSTANCE).properties
    return {k.lstrip("/").split("/", 1)[1]: json.loads(v) for k, v in props.items()
            if k.lstrip("/").startswith("agent/")}


def snapshot_cycle(snapshot: str) -> int:
    m = SNAP_RE.match(snapshot)
    assert m, snapshot
    return int(m.group(1))


def latest(c: Cluster) -> dict[str, dict]:
    """Each volume's newest generation."""
    return {v: gens[-1] for v, gens in c.per_volume().items()}


def newest_commits(repo: Path) -> dict[str, dict]:
    """Each key's newest commit object."""
    out = {}
    for d in sorted((repo / "cluster" / "commits").glob("*")):
        cycles = sorted(int(f.name) for f in d.iterdir() if f.name.isdigit())
        if cycles:
            out[d.name] = json.loads((d / str(cycles[-1])).read_bytes())
    return out


def assert_no_leaked_snapshots(c: Cluster) -> None:
    """With the agents stopped: the only `drbdbackup-*` snapshots left (in LINSTOR and in the
    pools) are each volume's newest generation's snapshot and each key's newest committed one
    (the bases of the next incrementals; docs/format.md 16.3)."""
    keep = {g["record"]["source"]["snapshot"] for g in latest(c).values()}
    keep |= {body["snapshot"] for body in newest_commits(c.repo).values()}
    listed = {n for names in linstor_snapshots(c.sb).values() for n in names}
    assert listed <= keep, f"leaked snapshots in LINSTOR: {sorted(listed - keep)}"
    files = [p for p in snapshot_files(c.sb) if not any(k in p.name for k in keep)]
    assert not files, f"leaked snapshot files in the pools: {[str(p) for p in files]}"


def cycle_now(every_s: int) -> int:
    return int(time.time()) // every_s * every_s


def poll(predicate: Callable[[], object], timeout: float, step: float = 0.02) -> object:
    """The first truthy value of `predicate` within `timeout` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(step)
    return None


def first_round(c: Cluster) -> None:
    c.wait_for(lambda: set(c.per_volume()) >= set(VOLUMES), 60, "a generation of every volume")


def caught_up(c: Cluster, since_cycle: int, vols: list[str] | None = None) -> bool:
    """Every volume (of `vols`) has a generation of cycle `since_cycle` or later."""
    last = latest(c)
    return all(v in last and snapshot_cycle(last[v]["record"]["source"]["snapshot"]) >= since_cycle
               for v in vols or VOLUMES)


def finish(c: Cluster) -> None:
    """Stop every agent, then the invariants every scenario keeps."""
    c.stop_agents()
    c.assert_one_generation_per_volume_and_cycle()
    assert_no_leaked_snapshots(c)
    assert json.loads(run_cli("check", "--repo", str(c.repo), "--read-data", "--json").stdout)["ok"]


def pause_holding_a_claim(c: Cluster, key: str | None = None,
                          within_s: float | None = None) -> tuple[str, ClaimObj]:
    """SIGSTOP an agent right after it claimed (`key`, or any key), before it commits; with
    `within_s`, only a claim made that early in its cycle."""
    for _ in range(10):
        found = poll(lambda: [x for n in NODES for x in open_claims(c.repo, n)
                              if (key is None or x.key == key)
                              and (within_s is None or x.mtime - x.cycle <= within_s)],
                     3 * c.every_s)
        if not found:
            continue
        held = found[0]  # type: ignore[index]
        c.agents[held.node].pause()
        time.sleep(0.2)
        if any(x == held for x in open_claims(c.repo, held.node)):
            return held.node, held
        c.agents[held.node].resume()  # it committed before the signal landed: try again
    raise AssertionError("never caught an agent holding an uncommitted claim")
