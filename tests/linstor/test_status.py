"""`drbdbackup status` against the emulator: volumes with node and age, the plan per policy,
what is unprotected and why, and a deleted resource shown as "source gone"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.sandbox import Sandbox
from tests.helpers import run_cli
from tests.linstor.conftest import start_sandbox
from tests.linstor.lsupport import Ctx

MiB = 1 << 20


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp("status"), "plain")
    try:
        for name in ("st-a", "st-b", "st-gone"):
            box.create_resource(name, [4 * MiB], nodes=["node-a"])
        yield box
    finally:
        box.stop()


def _config(tmp: Path, sb: Sandbox, repo: Path) -> Path:
    (tmp / "token").write_text("t")
    cfg = tmp / "drbdbackup.toml"
    cfg.write_text(f"""
[service]
token_file = "token"
state_db = "jobs.db"

[repository]
location = "{repo}"

[linstor]
controllers = "{sb.controllers}"

[[policy]]
name = "named"
resources = ["st-a", "st-gone"]

[[policy]]
name = "pattern"
names = ["st-*"]
""")
    return cfg


def test_status_shows_volumes_plan_and_unprotected(sb: Sandbox, tmp_path: Path) -> None:
    c = Ctx(sb, tmp_path / "repo").init()
    for rsc in ("st-a", "st-gone"):
        c.backup(rsc)
    with sb.session() as lin:  # LINSTOR deletes a definition only without snapshots
        for resp in lin.snapshot_dfn_list(filter_by_resources=["st-gone"]):
            for snap in getattr(resp, "snapshots", []):
                assert not lin.snapshot_delete("st-gone", snap.name)[0].is_error()
        assert not lin.resource_dfn_delete("st-gone")[0].is_error()
    cfg = _config(tmp_path, sb, c.repo)
    proc = run_cli("status", "--config", str(cfg), "--plan", "--unprotected", "--json")
    rep = json.loads(proc.stdout)
    vols = {v["volume_id"]: v for v in rep["volumes"]}
    assert vols["linstor.st-a.0"]["node"] == "node-a" and vols["linstor.st-a.0"]["source"] == "present"
    assert vols["linstor.st-a.0"]["last_good"] and vols["linstor.st-a.0"]["age_s"] >= 0
    assert vols["linstor.st-gone.0"]["source"] == "gone"
    plan = {p: {i["resource"]: i["reason"] for i in items} for p, items in rep["plan"].items()}
    assert plan["named"] == {"st-a": "named in resources"}
    assert plan["pattern"] == {"st-b": "name matches st-*"}  # st-a went to the first policy
    assert any("st-a is selected by named and pattern: named wins" in x for x in rep["conflicts"])
    assert rep["unprotected"] == []
    # no agent heartbeats here: the next agent is the plan's rank 0 among the replicas' nodes
    assert {i["resource"]: i["agent"] for i in rep["plan"]["named"]} == {"st-a": "node-a"}
    listed = json.loads(run_cli("list", "--repo", str(c.repo), "--source-status", "--controllers",
                                sb.controllers, "--json").stdout)["generations"]
    assert {g["resource"]: g["source"] for g in listed} == {"st-a": "present", "st-gone": "gone"}
    assert "source gone" in run_cli("list", "--repo", str(c.repo), "--source-status",
                                    "--controllers", sb.controllers).stdout
    text = run_cli("status", "--config", str(cfg), "--plan", "--unprotected").stdout
    assert "policy named: 1 resource(s)" in text and "gone" in text


def test_status_without_policies_lists_everything_unprotected(sb: Sandbox, tmp_path: Path) -> None:
    c = Ctx(sb, tmp_path / "repo").init()
    rep = json.loads(run_cli("status", "--repo", str(c.repo), "--controllers", sb.controllers,
                             "--unprotected", "--json").stdout)
    assert {u["resource"] for u in rep["unprotected"]} >= {"st-a", "st-b"}
    assert all(u["reason"] == "no policy selects it" for u in rep["unprotected"])
    empty = json.loads(run_cli("status", "--repo", str(c.repo), "--json").stdout)
    assert empty["volumes"] == [] and "plan" not in empty
