"""A resources policy against the LINSTOR emulator sandbox (throttled controller sessions)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from drbdbackup.service.config import load_config
from drbdbackup.service.daemon import Service
from fixtures.sandbox import Sandbox

from .conftest import TOKEN, Env, write_config

LS_TOKEN = "linstor-T0KEN-4a7b"


async def test_resources_policy_backup(env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (env.tmp / "ls-token").write_text(LS_TOKEN)
    with Sandbox(tmp_path / "sb", token=LS_TOKEN, use_xfs=False, use_loop=False) as sb:
        sb.create_cluster()
        sb.create_resource("r1", [8 << 20])
        cfg = write_config(env.tmp, extra_service="linstor_api_rate = 50", policies=f"""
[linstor]
controllers = "{sb.controllers}"
token_file = "ls-token"
allow_insecure = true

[[policy]]
name = "vm"
resources = ["r1"]
verify_sample = 1.0
""")
        svc = Service(load_config(str(cfg)))
        await svc.start()
        try:
            url = f"http://127.0.0.1:{svc.port}"
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/v1/jobs", json={"policy": "vm"},
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    assert r.status == 202
                    job_id = (await r.json())["id"]
                job: dict = {}
                for _ in range(600):
                    async with http.get(f"{url}/v1/jobs/{job_id}") as r:
                        job = await r.json()
                        raw = await r.text()
                    if job["state"] in ("succeeded", "failed"):
                        break
                    await asyncio.sleep(0.05)
                assert job["state"] == "succeeded", (job["error"], job)
                (b,) = job["result"]["backups"]
                assert b["volume_id"] == "linstor.r1.0" and b["verification"]["ok"]
                assert LS_TOKEN not in raw and TOKEN not in raw
                async with http.get(f"{url}/v1/volumes") as r:
                    vols = (await r.json())["volumes"]
                assert [v["volume_id"] for v in vols] == ["linstor.r1.0"]
            assert svc.scheduler is not None
            assert svc.scheduler.ctx.throttle.calls >= 3  # connect + lists + snapshot calls
        finally:
            await svc.stop()
    assert LS_TOKEN not in caplog.text and TOKEN not in caplog.text
