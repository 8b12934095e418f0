"""End to end: the service (in-process, real HTTP API, real drbdverify processes, real SQLite)
with a policy `verify_coverage_days = 1` plans and runs the subset rotation over generations a
test clock dated days back; afterwards `drbdbackup report` (the CLI, in-process) states every
retained generation covered and the oldest unverified age <= 1 day. A backup through the API is
followed by verify-new. With a budget too small for the work due, the job says behind and the
report says coverage fails."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from drbdbackup import cli
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.maintenance import InitRequest, init, list_volumes
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.ops.verification import CoverageRequest, coverage_plan, run_coverage_async
from drbdbackup.repo import records
from drbdbackup.service import jobs
from drbdbackup.service.config import load_config
from drbdbackup.service.daemon import Service

TOKEN = "cov-t0ken-9a8b7c6d5e"
CHUNK = 64 * 1024


class _Clock(datetime):
    """records.now() reads `datetime.now`: a fixed time while `at` is set (test-only clock)."""

    at: datetime | None = None

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return cls.at if cls.at is not None else datetime.now(tz)


def _setup(tmp: Path, budget_mib: int) -> tuple[Path, Path]:
    """A repository with two generations of `vol` made 3 and 2 days ago, and the config."""
    repo, img = tmp / "repo", tmp / "vol.img"
    img.write_bytes(os.urandom(32 * CHUNK))  # 2 MiB
    ref = RepositoryRef.of(str(repo))
    now = datetime.now(UTC)
    mp = pytest.MonkeyPatch()
    mp.setattr(records, "datetime", _Clock)
    try:
        _Clock.at = now - timedelta(days=3, hours=1)
        init(ref, InitRequest(chunk_size=CHUNK))
        for ago in (3, 2):
            _Clock.at = now - timedelta(days=ago)
            with open(img, "r+b") as f:
                f.write(os.urandom(4096))
            back_up_file(ref, FileBackup(str(img), "vol", policy="p"), BackupOptions())
    finally:
        _Clock.at = None
        mp.undo()
    (tmp / "token").write_text(TOKEN + "\n")
    cfg = tmp / "service.toml"
    cfg.write_text(f'[service]\nlisten = "127.0.0.1:0"\ntoken_file = "token"\nstate_db = "jobs.sqlite"\n\n'
                   f'[repository]\nlocation = "repo"\n\n[[policy]]\nname = "p"\n'
                   f'files = [{{ path = "vol.img", volume_id = "vol" }}]\nrpo = "3d"\n'
                   f'verify_coverage_days = 1\nverify_budget_mib = {budget_mib}\n')
    return repo, cfg


@asynccontextmanager
async def _service(cfg: Path) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    svc = Service(load_config(str(cfg)))
    await svc.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            yield f"http://127.0.0.1:{svc.port}", http
    finally:
        await svc.stop()


async def _jobs(url: str, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    async with http.get(f"{url}/v1/jobs") as r:
        assert r.status == 200
        body = await r.json()
    return body["jobs"] if isinstance(body, dict) else body


async def _wait_verify_jobs(url: str, http: aiohttp.ClientSession, count: int,
                            timeout: float = 40) -> list[dict[str, Any]]:
    """Wait until `count` verify jobs have finished (and none is queued or running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        js = [j for j in await _jobs(url, http) if j["kind"] == "verify"]
        done = [j for j in js if j["state"] in ("succeeded", "failed")]
        if len(done) >= count and len(done) == len(js):
            return done
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} verify job(s) did not finish in {timeout}s")


def _report(tmp: Path, repo: Path, cfg: Path) -> dict[str, Any]:
    out = tmp / "report.json"
    code = cli.main(["report", "--repo", str(repo), "--config", str(cfg), "--format", "json",
                     "--output", str(out)])
    assert code == 0
    (vol,) = json.loads(out.read_bytes())["summary"]
    return vol["coverage"]


def _selections(repo: Path) -> list[tuple[str, str, str]]:
    out = []
    for p in sorted((repo / "audit").iterdir(), key=lambda p: int(p.name)):
        e = json.loads(p.read_bytes())
        if e["event"] == "verify":
            out += [(e["details"]["selection"], c["generation"], c["verdict"]) for c in e["details"]["checks"]]
    return out


async def test_rotation_covers_every_generation_and_verify_new_follows_a_backup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, cfg = _setup(tmp_path, budget_mib=1)  # t = 2: one 1 MiB piece per run
    before = _report(tmp_path, repo, cfg)
    assert before["verdict"] == "fail" and before["oldest_unverified_age_days"] >= 3
    monkeypatch.setattr(jobs, "COVERAGE_TICK_S", 0.3)
    gens = [g["generation"] for g in list_volumes(RepositoryRef.of(str(repo)))]
    async with _service(cfg) as (url, http):
        done = await _wait_verify_jobs(url, http, 2)
        assert all(j["state"] == "succeeded" for j in done)
        assert sorted({s for s, _g, _v in _selections(repo)}) == ["subset 1/2", "subset 2/2"]
        cov = _report(tmp_path, repo, cfg)
        assert cov["verdict"] == "pass" and cov["never_fully_verified"] == []
        assert cov["oldest_unverified_age_days"] <= 1
        async with http.post(f"{url}/v1/jobs", json={"policy": "p", "kind": "backup"}) as r:
            assert r.status == 202
        await _wait_verify_jobs(url, http, 3)
    (new,) = [g["generation"] for g in list_volumes(RepositoryRef.of(str(repo)))
              if g["generation"] not in gens]
    assert any(g == new and v == "pass" for _s, g, v in _selections(repo))  # verify-new
    cov = _report(tmp_path, repo, cfg)
    assert cov["verdict"] == "pass" and cov["oldest_unverified_age_days"] <= 1


async def test_a_budget_too_small_is_behind_and_the_report_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, cfg = _setup(tmp_path, budget_mib=1)
    monkeypatch.setattr(jobs, "COVERAGE_TICK_S", 3600.0)  # one planning round in this test
    async with _service(cfg) as (url, http):
        (job,) = await _wait_verify_jobs(url, http, 1)
        async with http.get(f"{url}/v1/jobs/{job['id']}") as r:
            job = await r.json()
        async with http.get(f"{url}/metrics") as r:
            metrics = await r.text()
        async with http.get(f"{url}/v1/policies") as r:
            (pol,) = (await r.json())["policies"]
    assert 'drbdbackup_verify_coverage_behind{policy="p"} 1' in metrics, metrics
    assert pol["verify_coverage_days"] == 1 and pol["verify_budget_mib"] == 1
    assert job["state"] == "succeeded"
    assert job["result"]["behind"] is True and [d["subset"] for d in job["result"]["deferred"]] == ["2/2"]
    assert [s for s, _g, _v in _selections(repo)] == ["subset 1/2", "subset 1/2"]
    cov = _report(tmp_path, repo, cfg)
    assert cov["verdict"] == "fail" and cov["oldest_unverified_age_days"] >= 2
    assert len(cov["never_fully_verified"]) == 2


async def test_without_a_budget_one_full_run_covers_the_volume(tmp_path: Path) -> None:
    """N = 1 and no budget: t = 1, the piece is `drbdverify --full --generation all` (through
    ops, in-process); a second plan right after has nothing due."""
    repo, cfg = _setup(tmp_path, budget_mib=1)
    req = CoverageRequest(("vol",), 1, 3600.0)
    out = await run_coverage_async(RepositoryRef.of(str(repo)), req)
    assert [p["subset"] for p in out["planned"]] == ["1/1"] and not out["behind"]
    assert [v["ok"] for v in out["verifications"]] == [True]
    assert [s for s, _g, _v in _selections(repo)] == ["full", "full"]
    assert coverage_plan(RepositoryRef.of(str(repo)), req).run == []
    cov = _report(tmp_path, repo, cfg)
    assert cov["verdict"] == "pass" and cov["oldest_unverified_age_days"] <= 1
