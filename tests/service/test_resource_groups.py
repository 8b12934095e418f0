"""A policy that names only a resource group protects what is spawned from it, including a
resource spawned later, skips one tagged exclude (listed as unprotected), labels volumes with
a property, and `restore --like-original` recreates a resource in the same group without the
original's identity properties (issue 18's "done when")."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp

from drbdbackup.service.config import load_config
from drbdbackup.service.daemon import Service
from fixtures.sandbox import Sandbox
from tests.helpers import run_cli

from .conftest import TOKEN, Env, write_config

MiB = 1 << 20


async def _backup_job(url: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/v1/jobs", json={"policy": "vms"},
                             headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 202, await r.text()
            job_id = (await r.json())["id"]
        for _ in range(600):
            async with http.get(f"{url}/v1/jobs/{job_id}") as r:
                job = await r.json()
            if job["state"] in ("succeeded", "failed"):
                return job
            await asyncio.sleep(0.05)
    raise AssertionError("job did not finish")


def _spawn(sb: Sandbox, name: str, vm: str, vmid: str, seed: int) -> bytes:
    sb.spawn("vms", name, [4 * MiB], props={"Aux/pm/name": vm, "Aux/pm/vmid": vmid,
                                           "Aux/app/tier": "prod"})
    data = os.urandom(1 * MiB) + bytes([seed]) * MiB
    sb.write(name, 0, 0, data)
    return data


async def test_group_policy_end_to_end(env: Env, tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sb", use_xfs=False, use_loop=False) as sb:
        sb.create_cluster(["node-a", "node-b", "node-c"])
        sb.create_resource_group("vms", place_count=2)
        sb.create_resource_group("other", place_count=1)
        written = {f"pm-{i}": _spawn(sb, f"pm-{i}", f"vm{i}", str(100 + i), i) for i in (1, 2, 3)}
        sb.spawn("vms", "pm-9", [4 * MiB], props={"Aux/drbdbackup/exclude": "true"})
        sb.spawn("other", "scratch", [4 * MiB])
        cfg = write_config(env.tmp, policies=f"""
[linstor]
controllers = "{sb.controllers}"

[[policy]]
name = "vms"
resource_groups = ["vms"]
label_properties = ["Aux/pm/name"]
""")
        svc = Service(load_config(str(cfg)))
        await svc.start()
        try:
            url = f"http://127.0.0.1:{svc.port}"
            job = await _backup_job(url)
            assert job["state"] == "succeeded", job
            assert sorted(b["volume_id"] for b in job["result"]["backups"]) == [
                "linstor.pm-1.0", "linstor.pm-2.0", "linstor.pm-3.0"]
            written["pm-4"] = _spawn(sb, "pm-4", "vm4", "104", 4)  # spawned after the first run
            job = await _backup_job(url)
            assert job["state"] == "succeeded", job
            vols = {b["volume_id"]: b for b in job["result"]["backups"]}
            assert "linstor.pm-4.0" in vols and vols["linstor.pm-4.0"]["mode"] == "full"
            assert vols["linstor.pm-1.0"]["mode"] == "incremental"
            async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/cluster") as r:
                view = await r.json()
        finally:
            await svc.stop()

        why = {u["resource"]: u["reason"] for u in view["unprotected"]}
        assert why == {"pm-9": "Aux/drbdbackup/exclude=true", "scratch": "no policy selects it"}
        assert {i["resource"] for i in view["plan"]["vms"]} == {"pm-1", "pm-2", "pm-3", "pm-4"}
        repo = str(env.repo)
        rows = json.loads(run_cli("list", "--repo", repo, "--json").stdout)["generations"]
        first = next(r for r in rows if r["volume_id"] == "linstor.pm-4.0")
        rec = json.loads((env.repo / "generations" / "linstor.pm-4.0" / first["generation"]).read_bytes())
        assert rec["selected_by"] == "spawned from resource group vms" and rec["policy"] == "vms"
        assert rec["labels"] == {"Aux/pm/name": "vm4"} and rec["linstor"]["resource_group"] == "vms"
        assert "linstor.pm-1.0 (vm1)" in run_cli("list", "--repo", repo).stdout
        out = env.tmp / "report.html"
        run_cli("report", "--repo", repo, "--config", str(cfg), "--format", "html", "--output", str(out))
        html_text = out.read_text()
        assert "Unprotected resources (2)" in html_text and "Aux/drbdbackup/exclude=true" in html_text
        assert "<td>vm1</td>" in html_text  # the label beside the volume id
        status = run_cli("status", "--config", str(cfg), "--unprotected").stdout
        assert "pm-9: Aux/drbdbackup/exclude=true" in status and "linstor.pm-2.0 (vm2)" in status

        # a copy in the same group, byte-identical, without the identity properties
        proc = run_cli("restore", "--repo", repo, "--volume-id", "linstor.pm-2.0",
                       "--to-resource", "pm-2-copy", "--like-original",
                       "--controllers", sb.controllers, "--json")
        assert json.loads(proc.stdout)["size_bytes"] > 0
        assert sb.read("pm-2-copy", 0, 0, len(written["pm-2"])) == written["pm-2"]
        with sb.session() as lin:
            (rd,) = [d for resp in lin.resource_dfn_list(filter_by_resource_definitions=["pm-2-copy"])
                     for d in resp.resource_definitions]
            props = rd.properties
        assert rd.resource_group_name == "vms" and props.get("Aux/app/tier") == "prod"
        assert "Aux/pm/vmid" not in props and "Aux/pm/name" not in props
        assert len(sb.resource_info("pm-2-copy").nodes) == 2  # the group's place count


def test_unknown_resource_group_names_the_groups_that_exist(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sb", use_xfs=False, use_loop=False) as sb:
        sb.create_cluster(["node-a", "node-b"])
        sb.create_resource_group("vms", place_count=2)
        repo = tmp_path / "repo"
        run_cli("init", "--repo", str(repo))
        proc = run_cli("backup", "--repo", str(repo), "--resource-group", "nosuch",
                       "--controllers", sb.controllers, check=False)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert "resource group nosuch does not exist" in line and "vms" in line


def test_restore_into_a_group_that_cannot_place_fails_before_any_data(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sb", use_xfs=False, use_loop=False) as sb:
        sb.create_cluster(["node-a", "node-b"])
        sb.create_resource_group("vms", place_count=2)
        sb.create_resource_group("wide", place_count=5)  # more replicas than nodes
        sb.spawn("vms", "pm-1", [4 * MiB])
        sb.write("pm-1", 0, 0, os.urandom(MiB))
        repo = tmp_path / "repo"
        run_cli("init", "--repo", str(repo))
        run_cli("backup", "--repo", str(repo), "--resource", "pm-1", "--controllers", sb.controllers)
        proc = run_cli("restore", "--repo", str(repo), "--volume-id", "linstor.pm-1.0",
                       "--to-resource", "pm-1-copy", "--resource-group", "wide",
                       "--controllers", sb.controllers, check=False)
        assert proc.returncode in (2, 3), proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith("drbdbackup: error: ") and "pm-1-copy" in line
        with sb.session() as lin:
            names = [d.name for resp in lin.resource_dfn_list() for d in resp.resource_definitions]
        assert "pm-1-copy" not in names  # nothing left behind, no data written anywhere
