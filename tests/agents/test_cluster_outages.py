"""Issue 17, bad input and faults (2/2): the controller down for a while, a node OFFLINE, a
replica Outdated, a backend without exclusive create; the agents' state in the controller's
key-value store and the LINSTOR API calls each agent makes per cycle."""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import pytest

from fixtures import workload
from fixtures.agents import agent_support
from fixtures.sandbox import Sandbox
from tests.agents.cluster import NODES, Cluster
from tests.agents.lying_s3 import lying_s3
from tests.agents.observe import (
    VOLUMES,
    caught_up,
    claims,
    cycle_now,
    finish,
    first_round,
    jobs,
    kv_states,
    latest,
    snapshot_cycle,
)
from tests.helpers import run_cli
from tests.s3server import moto_s3

ok, why = agent_support()
pytestmark = [pytest.mark.skipif(not ok, reason=why or "agents unsupported"), pytest.mark.slow]


def test_controller_down_skips_cycles_with_a_reason_then_catches_up(fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    first_round(c)
    down_at = time.time()
    c.sb.stop_emulator()
    time.sleep(10)
    c.sb.start_emulator()
    up_at, up = time.time(), time.monotonic()
    up_cycle = cycle_now(c.every_s)
    c.wait_for(lambda: caught_up(c, up_cycle), c.every_s + c.bound_s + 10, "the catch-up")
    caught = time.monotonic() - up
    must = {k for k in range(up_cycle - 4 * c.every_s, up_cycle + 1, c.every_s)
            if down_at + 0.5 < k < up_at - 0.5}
    for node in NODES:
        assert "cycle skipped: LINSTOR controller unreachable" in c.log(node), node
        skips = [j for j in jobs(c, node) if j["target"].startswith("policy ")]
        cycles = [json.loads(j["result_json"])["cluster"]["cycle"] for j in skips]
        assert len(cycles) == len(set(cycles)), (node, cycles)  # once per cycle, not per poll
        assert must <= set(cycles) and all(down_at - c.every_s < k <= up_at for k in cycles), \
            (node, cycles, must)
        assert all("controller unreachable" in j["error"] and j["error"].startswith(
            f"cycle {k} skipped: ") for j, k in zip(skips, cycles, strict=True)), skips
    finish(c)
    print(f"controller down {up_at - down_at:.0f}s: {len(must)} cycle(s) skipped on every agent "
          f"(recorded once each); every volume caught up {caught:.1f}s after it was back")


def _takeover(c: Cluster, vols: list[str], away: str) -> tuple[dict[str, dict], float]:
    """Write through replication (the surviving replicas get it), wait for generations of a
    later cycle made elsewhere, restore them (the bytes written); returns the first generation
    of each volume made elsewhere and how long after the writes the data was backed up."""
    expected = {}
    for i, v in enumerate(vols):
        rsc, vnr = v.split(".")[1], int(v.split(".")[2])
        vol = c.sb.volume(rsc, vnr)
        workload.scattered_writes(vol, count=6, seed=900 + i)
        expected[v] = c.sb.read(rsc, vnr, 0, vol.size())
    after, written = cycle_now(c.every_s) + c.every_s, time.monotonic()

    def done() -> dict[str, dict] | None:
        first = {}
        for v in vols:
            gens = [g for g in c.per_volume().get(v, [])
                    if snapshot_cycle(g["record"]["source"]["snapshot"]) >= after]
            if not gens:
                return None
            first[v] = gens[0]
        return first

    gens = c.wait_for(done, c.bound_s + 3 * c.every_s + 15, f"takeover of {vols} from {away}")
    stored = time.monotonic() - written
    for v, g in gens.items():
        assert g["node"] != away, (v, g["node"])
        # the first generation made elsewhere says why the lineage broke
        history = c.per_volume()[v]
        last_there = max(i for i, h in enumerate(history) if h["node"] == away)
        rec = history[last_there + 1]["record"]
        assert rec["fallback_reason"] and rec["map_validity"] != "valid", rec
        out = c.work / f"{v}.{g['generation']}.img"
        run_cli("restore", "--repo", str(c.repo), "--volume-id", v, "--generation",
                g["generation"], "--target", str(out))
        assert out.read_bytes() == expected[v], v
    history = c.per_volume()
    return {v: history[v][max(i for i, h in enumerate(history[v]) if h["node"] == away) + 1]
            for v in vols}, stored


def _first_claim_after(c: Cluster, vols: list[str], away: str, since: float) -> float:
    keys = {f"rsc-{v.split('.')[1]}" for v in vols}
    return min(x.mtime for x in claims(c.repo) if x.key in keys and x.node != away
               and x.mtime > since) - since


def test_an_offline_nodes_volumes_are_taken_over_and_nothing_leaks(fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    first_round(c)
    owned = {v: g["node"] for v, g in latest(c).items()}
    victim = max(NODES, key=lambda n: sum(1 for o in owned.values() if o == n))
    mine = [v for v, n in owned.items() if n == victim]
    c.sb.node_offline(victim)
    off_wall = time.time()
    gens, stored = _takeover(c, mine, victim)
    claimed = _first_claim_after(c, mine, victim, off_wall)
    c.sb.node_online(victim)
    back = cycle_now(c.every_s)
    c.wait_for(lambda: caught_up(c, back + 2 * c.every_s), 3 * c.every_s + 15, "two more rounds")
    finish(c)  # no duplicate; no drbdbackup-* snapshot left anywhere, the victim's pool included
    print(f"node {victim} OFFLINE: its {len(mine)} volume(s) claimed elsewhere after "
          f"{claimed:.1f}s (bound L+h+d = {c.bound_s:.1f}s plus up to one cycle of "
          f"{c.every_s}s); data written while it was away stored {stored:.1f}s after the writes; "
          f"reasons: {sorted({g['record']['fallback_reason'] for g in gens.values()})}")
    assert claimed <= c.bound_s + c.every_s + 1.5, claimed


def test_an_outdated_replicas_volume_is_taken_over_by_the_up_to_date_one(
        fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    first_round(c)
    vol = "linstor.ca1.0"
    owner = latest(c)[vol]["node"]
    c.sb.outdate("ca1", owner)
    out_wall = time.time()
    gens, stored = _takeover(c, [vol], owner)
    claimed = _first_claim_after(c, [vol], owner, out_wall)
    c.sb.set_disk_state("ca1", owner, "UpToDate")
    back = cycle_now(c.every_s)
    c.wait_for(lambda: caught_up(c, back + 2 * c.every_s), 3 * c.every_s + 15, "two more rounds")
    finish(c)
    print(f"replica of ca1 on {owner} Outdated: claimed by {gens[vol]['node']} after "
          f"{claimed:.1f}s; data written meanwhile stored {stored:.1f}s after the writes; "
          f"reason: {gens[vol]['record']['fallback_reason']}")
    assert claimed <= c.bound_s + c.every_s + 1.5, claimed


CYCLE_CALLS = re.compile(r"cycle \d+ begins; (\d+) LINSTOR API calls during the previous one")


def test_agents_publish_their_state_and_make_few_api_calls(fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    c.wait_for(lambda: all(any(g["mode"] == "incremental" for g in c.per_volume().get(v, []))
                           for v in VOLUMES), 90, "incremental generations of every volume")
    steady = cycle_now(c.every_s)
    c.wait_for(lambda: all((kv_states(c.sb).get(n) or {}).get("cycle", 0) >= steady
                           + 3 * c.every_s for n in NODES), 6 * c.every_s, "three more cycles")
    states = kv_states(c.sb)
    c.stop_agents()
    for node, st in states.items():
        assert st["node"] == node and st["format"] == 1 and st["stopped"] is None, st
        assert st["cycle"] % c.every_s == 0 and st["last_error"] is None, st
        assert st["api_calls_last_cycle"] > 0 and isinstance(st["committed"], list), st
    per_node = {n: [int(m) for m in CYCLE_CALLS.findall(c.log(n))][-4:] for n in NODES}
    assert all(calls for calls in per_node.values()), per_node
    print("LINSTOR API calls per cycle per agent (steady state, last 4 cycles): " + "; ".join(
        f"{n} {calls} (median {statistics.median(calls):.0f})" for n, calls in per_node.items()))
    assert max(max(calls) for calls in per_node.values()) < 60, per_node


def test_a_backend_without_exclusive_create_refuses_cluster_mode(tmp_path: Path) -> None:
    with moto_s3() as env, Sandbox(tmp_path / "sb") as sb, lying_s3(env["AWS_ENDPOINT_URL"]) as url:
        sb.create_cluster(["node-a"])
        run_cli("init", "--repo", "s3://backups/liar", env=env)
        (tmp_path / "token").write_text("t")
        cfg = tmp_path / "liar.toml"
        cfg.write_text(f"""
[service]
listen = "127.0.0.1:0"
token_file = "{tmp_path / 'token'}"
state_db = "{tmp_path / 'state' / 'jobs.sqlite'}"

[repository]
location = "s3://backups/liar"

[linstor]
controllers = "{sb.controllers}"

[cluster]
node = "node-a"

[[policy]]
name = "all"
names = ["*"]
every_s = 60
""")
        proc = run_cli("serve", "--config", str(cfg), env={**env, "AWS_ENDPOINT_URL": url},
                       check=False, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("drbdbackup serve: error: cluster mode needs exclusive create"), lines
    print(f"no exclusive create: {lines[0]}")

