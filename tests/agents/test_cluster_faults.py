"""Issue 17, bad input and faults (1/2): an owner stopped past its lease, two agents under one
node name, clock skew, the repository locked by a manual prune, a resource deleted while
claimed. Each: at most one committed generation per (volume, cycle), no leaked snapshot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from drbdbackup.service.cluster_report import TEST_CLOCK_OFFSET_ENV
from fixtures.agents import agent_support
from tests.agents.cluster import LAYOUT, NODES, Cluster
from tests.agents.observe import (
    VOLUMES,
    ClaimObj,
    caught_up,
    claims,
    cycle_now,
    finish,
    first_round,
    jobs,
    kv_states,
    latest,
    linstor_snapshots,
    pause_holding_a_claim,
    snapshot_files,
)
from tests.helpers import run_cli

ok, why = agent_support()
pytestmark = [pytest.mark.skipif(not ok, reason=why or "agents unsupported"), pytest.mark.slow]
@pytest.mark.every(8)
def test_a_stopped_owner_resumed_after_the_takeover_is_fenced_off(fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    first_round(c)
    # a claim made early in its cycle: the takeover (within L + h + d) falls in the same cycle
    victim, held = pause_holding_a_claim(c, within_s=c.every_s - c.bound_s - 2)
    paused_wall, paused = time.time(), time.monotonic()

    def taken_over() -> list[ClaimObj]:
        return [x for x in claims(c.repo) if (x.key, x.cycle) == (held.key, held.cycle)
                and x.attempt > held.attempt and x.committed_attempt == x.attempt]

    took_over = c.wait_for(taken_over, c.bound_s + 20, f"takeover of {held.key} from {victim}")
    committed_s = time.monotonic() - paused
    claimed_s = took_over[0].mtime - paused_wall
    c.agents[victim].resume()
    c.wait_for(lambda: "late commit refused (fenced)" in c.log(victim), 30,
               f"{victim}'s late commit of {held.key} cycle {held.cycle} refused")
    refused = c.wait_for(lambda: [j for j in jobs(c, victim) if j["target"] == held.job_target],
                         10, "the refused job")
    assert refused[0]["state"] == "failed" and "already committed" in refused[0]["error"], refused
    # the next cycles go on on every node; the fenced snapshot is gone
    c.wait_for(lambda: caught_up(c, cycle_now(c.every_s)), 3 * c.every_s + 15, "two more rounds")
    finish(c)
    mine = [g for g in c.records() if g["record"]["source"]["snapshot"] == held.snapshot]
    assert not mine, f"the fenced-off owner wrote a record: {mine}"
    assert held.snapshot not in {n for s in linstor_snapshots(c.sb).values() for n in s}
    assert not [p for p in snapshot_files(c.sb) if held.snapshot in p.name]
    print(f"SIGSTOP of {victim} holding {held.key} cycle {held.cycle}: attempt "
          f"{took_over[0].attempt} claimed by {took_over[0].node} {claimed_s:.1f}s later, "
          f"committed {committed_s:.1f}s later (bound L+h+d = {c.bound_s:.1f}s)")
    assert claimed_s <= c.bound_s + 1.5, claimed_s


def test_two_agents_under_one_node_name_both_stop_with_an_alarm(fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    first_round(c)
    c.start_agent("node-a", name="node-a-twin")
    alarm = c.repo / "cluster" / "alarms" / "node-a"
    c.wait_for(lambda: alarm.exists() and all("this agent stops claiming" in c.log(n)
                                              for n in ("node-a", "node-a-twin")),
               20, "both node-a agents stopping with an alarm")
    stopped_cycle = cycle_now(c.every_s)
    assert len(json.loads(alarm.read_bytes())["instances"]) == 2
    assert "two agents run as node 'node-a'" in c.log("node-a-twin")
    assert c.agents["node-a"].running and c.agents["node-a-twin"].running  # alarm, no crash
    # node-a's volumes go to the other replicas' agents; node-a claims nothing any more
    mine = [v for v in VOLUMES if "node-a" in LAYOUT[v.split(".")[1]][0]]
    c.wait_for(lambda: caught_up(c, stopped_cycle + c.every_s, mine), c.bound_s + 3 * c.every_s + 10,
               "node-a's volumes backed up elsewhere")
    assert not [x for x in claims(c.repo) if x.node == "node-a" and x.cycle > stopped_cycle]
    assert all(latest(c)[v]["node"] != "node-a" for v in mine)
    c.wait_for(lambda: (kv_states(c.sb).get("node-a") or {}).get("stopped"), 10,
               "the alarm in the key-value store")
    finish(c)


def test_agents_with_skewed_clocks_agree_on_the_cycle(fast_cluster: Cluster) -> None:
    c = fast_cluster
    offsets = {"node-a": 200.0, "node-b": -170.0, "node-c": 0.0}
    cfg = c.write_config()
    t0 = time.time()
    for node in NODES:
        c.start_agent(node, cfg, env={TEST_CLOCK_OFFSET_ENV: str(offsets[node])})
    c.wait_for(lambda: all(any(g["mode"] == "incremental" for g in c.per_volume().get(v, []))
                           for v in VOLUMES), 90, "incremental generations of every volume")
    finish(c)
    t1 = time.time()  # after the agents stopped: a cycle may begin while they are stopping
    assert "test-only clock offset +200.0 s" in c.log("node-a")
    seen = claims(c.repo)
    by_cycle: dict[int, set[str]] = {}
    for x in seen:
        # k comes from the repository's clock: on the grid, within the real run
        assert x.cycle % c.every_s == 0 and t0 - c.every_s <= x.cycle <= t1, (x, t0, t1)
        by_cycle.setdefault(x.cycle, set()).add(x.node)
        # ... while the claim's display time carries the agent's own (skewed) clock
        shown = _claim_time(c, x)
        assert abs(shown - x.mtime - offsets[x.node]) < 10, (x, shown)
    assert any(len(nodes) >= 2 for nodes in by_cycle.values()), by_cycle
    # every agent, whatever its clock, starts the same cycles (ownership is sticky: an agent that
    # came late may own nothing, so its claims cannot show it)
    begun = {n: {int(k) for k in re.findall(r"cycle (\d+) begins", c.log(n))} for n in NODES}
    common = set.intersection(*begun.values())
    assert common and all(k % c.every_s == 0 for k in common), begun


def _claim_time(c: Cluster, x: ClaimObj) -> float:
    from datetime import datetime

    body = json.loads((c.repo / "cluster" / "claims" / x.key / f"{x.cycle}.{x.attempt}").read_bytes())
    return datetime.fromisoformat(body["time"]).timestamp()


HOLD_LOCK = """
import sys, time
from drbdbackup.repo.local import LocalBackend
from drbdbackup.repo.locks import Lock
# as `prune --lock-wait 60s`: running backups finish, new ones fail (agents back up continuously)
lock = Lock(LocalBackend(sys.argv[1]), exclusive=True, operation="prune").acquire(wait_s=60)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
print("released", flush=True)
"""


def _released_at(c: Cluster, x: ClaimObj) -> float:
    """The modification time of a claim's release marker (the repository's clock)."""
    return (c.repo / "cluster" / "claims" / x.key / f"{x.cycle}.{x.attempt}.released").stat().st_mtime


def test_a_manual_prune_lock_fails_backups_with_exit_4_then_they_catch_up(
        fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    first_round(c)
    before_lock = time.time()
    hold = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(c.repo), "9"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout is not None and hold.stdout.readline().strip() == "locked"
        assert hold.stdout.readline().strip() == "released"
        hold.wait(10)
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()
    released, free_cycle = time.monotonic(), cycle_now(c.every_s)
    c.wait_for(lambda: caught_up(c, free_cycle), c.every_s + c.bound_s + 10, "the catch-up")
    caught = time.monotonic() - released
    failed = {n: [j for j in jobs(c, n) if j["state"] == "failed"] for n in NODES}
    assert all(j["exit_code"] == 4 and "repository is locked" in j["error"]
               for js in failed.values() for j in js), failed
    backups = [j for js in failed.values() for j in js if j["target"].startswith("rsc:")]
    assert backups, failed
    # then each agent looks before claiming: one skipped-cycle record per cycle, not a storm
    for node, js in failed.items():
        skips = [j["target"] for j in js if j["target"].startswith("policy ")]
        assert skips and len(skips) == len(set(skips)) <= 4, (node, skips)
    # each failed backup released its claim while the lock was held (a run claimed in the cycle
    # before may meet it too); claims of cycles prune already removed are not looked at
    objs = claims(c.repo)
    present = {x.job_target for x in objs}
    released = Counter(x.job_target for x in objs if x.released and "locked" in x.released
                       and _released_at(c, x) >= before_lock)
    failed_targets = Counter(j["target"] for j in backups if j["target"] in present)
    assert failed_targets and released == failed_targets, (released, failed_targets)
    finish(c)
    print(f"repository locked for 9 s: {len(backups)} backup(s) failed with exit 4 and released "
          f"their claims, then {sum(len(js) for js in failed.values()) - len(backups)} skipped "
          f"cycle(s) recorded; every volume caught up {caught:.1f}s after the release")


def test_a_resource_deleted_while_claimed_fails_once_and_drops_out(fast_cluster: Cluster) -> None:
    c = fast_cluster
    c.start_agents()
    first_round(c)
    holder, held = pause_holding_a_claim(c, key="rsc-ca4")
    try:
        with c.sb.session() as lin:
            for resp in lin.snapshot_dfn_list(filter_by_resources=["ca4"]):
                for sd in getattr(resp, "snapshots", []):
                    lin.snapshot_delete("ca4", sd.name)
            lin.resource_dfn_delete("ca4")
    finally:
        c.agents[holder].resume()
    c.wait_for(lambda: next((x.released for x in claims(c.repo) if (x.key, x.cycle, x.attempt)
                             == (held.key, held.cycle, held.attempt)), None),
               20, f"{holder} releasing {held.key} cycle {held.cycle}")
    others = [v for v in VOLUMES if not v.startswith("linstor.ca4.")]
    c.wait_for(lambda: caught_up(c, held.cycle + 2 * c.every_s, others), 4 * c.every_s + 10,
               "two more rounds of the other volumes")
    failed = [j for n in NODES for j in jobs(c, n) if j["state"] == "failed"]
    assert failed and all(j["target"] == held.job_target for j in failed), failed
    assert not [x for x in claims(c.repo) if x.key == "rsc-ca4" and x.cycle > held.cycle]
    st = json.loads(run_cli("status", "--repo", str(c.repo), "--controllers", c.sb.controllers,
                            "--json").stdout)
    gone = {v["volume_id"]: v["source"] for v in st["volumes"]}
    assert gone["linstor.ca4.0"] == "gone" and gone["linstor.ca1.0"] == "present", gone
    c.stop_agents()
    c.assert_one_generation_per_volume_and_cycle()
    assert not [g for g in c.records() if g["record"]["source"]["snapshot"] == held.snapshot]
    listed = {n for s in linstor_snapshots(c.sb).values() for n in s}
    keep = {g["record"]["source"]["snapshot"] for v, g in latest(c).items() if v in others}
    assert listed <= keep and not [p for p in snapshot_files(c.sb)
                                   if not any(k in p.name for k in keep)]
    assert json.loads(run_cli("check", "--repo", str(c.repo), "--read-data", "--json").stdout)["ok"]
