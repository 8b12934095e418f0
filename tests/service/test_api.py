"""The REST API against a real server on an ephemeral loopback port, real SQLite, real engine."""

from __future__ import annotations

import logging
import re

import pytest

from drbdbackup.errors import RepositoryLocked
from drbdbackup.repo.listing import list_generations
from drbdbackup.repo.locks import Lock
from drbdbackup.repo.open import backend_for
from drbdbackup.repo.repository import Repository
from drbdbackup.service import jobs as jobs_mod

from .conftest import TOKEN, Running


def generations(repo_path: str, volume: str | None = None) -> list[dict]:
    return list_generations(Repository.open(backend_for(repo_path)), volume)


async def test_get_endpoints_need_no_token(running: Running) -> None:
    st = await running.get("/v1/status")
    assert st["running"] == 0 and st["queued"] == 0 and st["version"]
    assert (await running.get("/v1/jobs"))["jobs"] == []
    pol = {p["name"]: p for p in (await running.get("/v1/policies"))["policies"]}
    assert set(pol) == {"files1", "files2"} and pol["files2"]["keep_last"] == 1
    assert (await running.get("/v1/volumes"))["volumes"] == []
    async with running.http.get(f"{running.url}/metrics") as r:
        assert r.status == 200 and r.content_type == "text/plain"


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"},
])
async def test_post_needs_the_right_token(running: Running, headers: dict[str, str]) -> None:
    async with running.http.post(f"{running.url}/v1/jobs", json={"policy": "files1"},
                                 headers=headers) as r:
        assert r.status == 401
        body = await r.text()
    assert TOKEN not in body
    assert (await running.get("/v1/jobs"))["jobs"] == []


@pytest.mark.parametrize(("body", "status"), [
    (b"not json", 400), (b"[1]", 400), (b'{"kind": "backup"}', 400),
    (b'{"policy": "files1", "kind": "restore"}', 400), (b'{"policy": "files1", "x": 1}', 400),
    (b'{"policy": "nope"}', 404),
])
async def test_post_bad_bodies(running: Running, body: bytes, status: int) -> None:
    async with running.http.post(f"{running.url}/v1/jobs", data=body,
                                 headers={**running.auth(), "Content-Type": "application/json"}) as r:
        assert r.status == status
        assert "error" in await r.json()


async def test_job_lookup_errors(running: Running) -> None:
    for path, status in (("/v1/jobs/999", 404), ("/v1/jobs/abc", 400), ("/v1/jobs?state=bogus", 400),
                         ("/v1/jobs?limit=0", 400), ("/v1/nothing", 404)):
        async with running.http.get(f"{running.url}{path}") as r:
            assert r.status == status, path
            assert "error" in await r.json()


async def test_backup_with_verification_then_metrics(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drbdbackup.service")
    job_id = await running.post_job("files1")
    job = await running.wait_job(job_id)
    assert job["state"] == "succeeded", job
    assert job["exit_code"] == 0 and job["started"] and job["finished"]
    (b,) = job["result"]["backups"]
    assert b["volume_id"] == "vol1" and b["mode"] == "full" and b["read_bytes"] == 2 << 20
    assert b["verification"]["ok"] is True and b["verification"]["sample"] == 0.5
    gens = generations(str(running.env.repo), "vol1")
    assert [g["generation"] for g in gens] == [b["generation"]] and gens[0]["status"] == "ok"

    vols = (await running.get("/v1/volumes"))["volumes"]
    assert vols == [{"volume_id": "vol1", "generations": 1, "last": {
        "generation": b["generation"], "created": gens[0]["created"], "mode": "full", "tracker": "full",
        "size_bytes": 2 << 20, "status": "ok", "fallback_reason": None}}]
    assert [j["id"] for j in (await running.get("/v1/jobs?state=succeeded"))["jobs"]] == [job_id]
    assert (await running.get("/v1/jobs?state=failed"))["jobs"] == []

    async with running.http.get(f"{running.url}/metrics") as r:
        text = await r.text()
    samples = parse_metrics(text)
    assert samples["drbdbackup_bytes_read_total"] == 2 << 20
    assert samples["drbdbackup_bytes_stored_total"] == b["stored_bytes"] > 0
    assert samples['drbdbackup_last_success_timestamp_seconds{volume_id="vol1"}'] > 1e9
    assert samples['drbdbackup_change_ratio{volume_id="vol1"}'] == 1.0
    assert samples["drbdbackup_fallbacks_total"] == 0
    assert samples["drbdbackup_verification_failures_total"] == 0
    assert samples['drbdbackup_job_duration_seconds_count{kind="backup"}'] == 1
    assert samples['drbdbackup_jobs{state="succeeded"}'] == 1
    lines = [m for m in caplog.messages if f"job {job_id} " in m]
    assert len(lines) == 2 and "started" in lines[0] and "succeeded" in lines[1]
    assert TOKEN not in caplog.text and TOKEN not in text


def parse_metrics(text: str) -> dict[str, float]:
    """Every non-comment line must be `name{labels} value`."""
    out: dict[str, float] = {}
    pat = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_]+="[^"]*"(?:,[a-zA-Z_]+="[^"]*")*\})?) (\S+)$')
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = pat.match(line)
        assert m, f"bad metrics line {line!r}"
        out[m.group(1)] = float(m.group(2))
    return out


async def test_verify_job(running: Running) -> None:
    job = await running.wait_job(await running.post_job("files2", "verify"))
    assert job["state"] == "failed" and job["exit_code"] == 2  # nothing backed up yet
    assert (await running.wait_job(await running.post_job("files2")))["state"] == "succeeded"
    job = await running.wait_job(await running.post_job("files2", "verify"))
    assert job["state"] == "succeeded", job
    (v,) = job["result"]["verifications"]
    assert v["ok"] is True and v["volume_id"] == "vol2" and v["sample"] == "full"
    assert v["chunks_checked"] >= 4


async def test_backup_prunes_per_policy_and_prune_job(running: Running) -> None:
    first = await running.wait_job(await running.post_job("files2"))
    assert first["state"] == "succeeded" and first["result"]["prune"]["removed_generations"] == []
    running.env.data2.write_bytes(running.env.data2.read_bytes()[:-4096] + b"x" * 4096)
    second = await running.wait_job(await running.post_job("files2"))
    assert second["state"] == "succeeded", second
    b = second["result"]["backups"][0]
    assert b["mode"] == "incremental" and b["changed_bytes"] == 256 * 1024
    gen1 = first["result"]["backups"][0]["generation"]
    assert second["result"]["prune"]["removed_generations"] == [f"vol2/{gen1}"]
    assert [g["generation"] for g in generations(str(running.env.repo), "vol2")] == [b["generation"]]
    job = await running.wait_job(await running.post_job("files2", "prune"))
    assert job["state"] == "succeeded" and job["result"]["prune"]["removed_generations"] == []
    job = await running.wait_job(await running.post_job("files1", "prune"))
    assert job["state"] == "failed" and job["exit_code"] == 2 and "keep" in job["error"]


async def test_prune_job_while_locked_fails_with_exit_4(running: Running) -> None:
    with Lock(backend_for(str(running.env.repo)), exclusive=True, operation="test"):
        job = await running.wait_job(await running.post_job("files2", "prune"))
    assert job["state"] == "failed" and job["exit_code"] == 4


async def test_post_backup_prune_locked_is_skipped(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(*_a: object) -> dict:
        raise RepositoryLocked("locked by someone else")

    monkeypatch.setattr(jobs_mod, "prune_policy", locked)
    job = await running.wait_job(await running.post_job("files2"))
    assert job["state"] == "succeeded" and job["result"]["prune"] == "skipped: locked"


async def test_failed_backup_is_recorded(running: Running) -> None:
    running.env.data1.unlink()
    job = await running.wait_job(await running.post_job("files1"))
    assert job["state"] == "failed" and job["exit_code"] == 3 and job["error"]
    assert job["result"] == {"backups": []}
    async with running.http.get(f"{running.url}/metrics") as r:
        samples = parse_metrics(await r.text())
    assert samples['drbdbackup_jobs{state="failed"}'] == 1
    assert not any(k.startswith("drbdbackup_last_success") for k in samples)


async def test_cluster_view_shows_each_volume_with_its_last_good_generation(running: Running) -> None:
    assert (await running.get("/v1/cluster"))["volumes"] == []
    job = await running.wait_job(await running.post_job("files2"))
    assert job["state"] == "succeeded", job
    (b,) = job["result"]["backups"]
    (vol,) = (await running.get("/v1/cluster"))["volumes"]
    assert vol["volume_id"] == "vol2" and vol["last_good"] == b["generation"]
    assert vol["generations"] == 1 and vol["age_s"] >= 0 and vol["source"] == "unknown"


async def test_metrics_carry_the_cluster_view(running: Running) -> None:
    job = await running.wait_job(await running.post_job("files2"))
    assert job["state"] == "succeeded", job
    async with running.http.get(f"{running.url}/metrics") as r:
        samples = parse_metrics(await r.text())
    assert samples['drbdbackup_last_good_age_seconds{node="",volume_id="vol2"}'] >= 0
    assert samples["drbdbackup_incomplete_groups"] == 0
