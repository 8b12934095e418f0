"""Fixtures: a real local repository, small data files, a config file, an in-process service."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from drbdbackup.repo.open import backend_for
from drbdbackup.repo.repository import Repository
from drbdbackup.service.config import load_config
from drbdbackup.service.daemon import Service

TOKEN = "s3cr3t-T0KEN-value-8f1c2d9e"


@dataclass
class Env:
    tmp: Path
    repo: Path
    config: Path
    data1: Path
    data2: Path
    token: str = TOKEN


def write_config(tmp: Path, *, listen: str = "127.0.0.1:0", extra_service: str = "",
                 policies: str | None = None) -> Path:
    cfg = tmp / "drbdbackup.toml"
    if policies is None:
        policies = """
[[policy]]
name = "files1"
files = [{ path = "data1.img", volume_id = "vol1" }]
verify_sample = 0.5

[[policy]]
name = "files2"
files = [{ path = "data2.img", volume_id = "vol2" }]
keep_last = 1
"""
    cfg.write_text(f"""
[service]
listen = "{listen}"
token_file = "token"
state_db = "state/jobs.sqlite"
{extra_service}

[repository]
location = "repo"
{policies}
""")
    return cfg


@pytest.fixture
def env(tmp_path: Path) -> Env:
    repo = tmp_path / "repo"
    Repository.init(backend_for(str(repo), create=True), chunk_size=256 * 1024)
    (tmp_path / "token").write_text(TOKEN + "\n")
    data1, data2 = tmp_path / "data1.img", tmp_path / "data2.img"
    data1.write_bytes(os.urandom(2 << 20))
    data2.write_bytes(os.urandom(1 << 20) + bytes(1 << 20))
    return Env(tmp_path, repo, write_config(tmp_path), data1, data2)


@dataclass
class Running:
    svc: Service
    url: str
    http: aiohttp.ClientSession
    env: Env

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.env.token}"}

    async def post_job(self, policy: str, kind: str = "backup") -> int:
        async with self.http.post(f"{self.url}/v1/jobs", json={"policy": policy, "kind": kind},
                                  headers=self.auth()) as r:
            assert r.status == 202, await r.text()
            return int((await r.json())["id"])

    async def get(self, path: str) -> Any:
        async with self.http.get(f"{self.url}{path}") as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def wait_job(self, job_id: int, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = await self.get(f"/v1/jobs/{job_id}")
            if job["state"] in ("succeeded", "failed"):
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s")


@pytest.fixture
async def running(env: Env) -> AsyncIterator[Running]:
    svc = Service(load_config(str(env.config)))
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Running(svc, f"http://127.0.0.1:{svc.port}", http, env)
    finally:
        await svc.stop()
