"""serve() in a real process: SIGTERM while a 64 MiB backup runs -> the job finishes, exit 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import TOKEN, Env, write_config

POLICY = """
[[policy]]
name = "big"
files = [{ path = "big.img", volume_id = "big" }]
"""


def _wait_port(log: Path, proc: subprocess.Popen, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
        if m:
            return int(m.group(1))
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError("service did not start: " + log.read_text())


def _req(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        req.add_header("Authorization", f"Bearer {TOKEN}")
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return r.status, json.loads(raw)


def test_sigterm_waits_for_running_backup(env: Env) -> None:
    big = env.tmp / "big.img"
    with open(big, "wb") as f:
        for _ in range(16):
            f.write(os.urandom(4 << 20))
    cfg = write_config(env.tmp, policies=POLICY)
    log = env.tmp / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drbdbackup", "serve", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=err, cwd=env.tmp,
        )
    try:
        url = f"http://127.0.0.1:{_wait_port(log, proc)}"
        status, body = _req(f"{url}/v1/jobs", {"policy": "big", "kind": "backup"})
        assert status == 202
        job_id = body["id"]
        deadline = time.monotonic() + 20
        while _req(f"{url}/v1/jobs/{job_id}")[1]["state"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert TOKEN not in text
    assert f"job {job_id} started" in text and f"job {job_id} succeeded" in text
    assert text.index("shutdown requested") < text.index(f"job {job_id} succeeded"), text

    import sqlite3

    row = sqlite3.connect(env.tmp / "state" / "jobs.sqlite").execute(
        "SELECT state, exit_code, result_json FROM jobs WHERE id=?", (job_id,)).fetchone()
    assert row[0] == "succeeded" and row[1] == 0
    assert json.loads(row[2])["backups"][0]["read_bytes"] == 64 << 20
    check = subprocess.run([sys.executable, "-m", "drbdbackup", "check", "--repo", str(env.repo)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    lst = subprocess.run([sys.executable, "-m", "drbdbackup", "list", "--repo", str(env.repo), "--json"],
                         capture_output=True, text=True)
    assert [g["volume_id"] for g in json.loads(lst.stdout)["generations"]] == ["big"]
