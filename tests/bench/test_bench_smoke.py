"""Smoke test for bench/run.py: a 64 MiB run must produce every metric line, all positive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "run.py"

METRICS = [
    "dd_direct_read_s",
    "dd_direct_read_mib_s",
    "drbd_full_s",
    "drbd_full_inner_s",
    "drbd_full_ratio",
    "drbd_full_rss_mib",
    "drbd_full_cpu_s",
    "drbd_full_repo_mib",
    "drbd_full_stored_mib",
    "drbd_incr_s",
    "drbd_incr_inner_s",
    "drbd_incr_ratio",
    "drbd_incr_rss_mib",
    "drbd_incr_cpu_s",
    "drbd_incr_changed_mib",
    "drbd_incr_growth_mib",
    "dd_direct_write_s",
    "dd_direct_write_mib_s",
    "drbd_restore_s",
    "drbd_restore_inner_s",
    "drbd_restore_mib_s",
    "drbd_restore_ratio",
    "drbd_restore_rss_mib",
    "drbd_restore_cpu_s",
    "drbd_peak_rss_mib",
    "dd_direct_read2_s",
]
VERIFY_METRICS = [
    "drbd_verify_s",
    "drbd_verify_ratio",
    "drbd_verify_rss_mib",
    "drbd_verify_cpu_s",
]
TARGETS = ["full", "incr", "restore", "verify", "rss", "growth"]


def _verify_available() -> bool:
    r = subprocess.run(
        [sys.executable, "-m", "verify", "--help"], cwd=ROOT, capture_output=True, check=False
    )
    return r.returncode == 0


@pytest.mark.slow
def test_bench_runs_and_reports_every_metric(tmp_path: Path) -> None:
    work = tmp_path / "work"
    out_json = tmp_path / "bench.json"
    # Never drop the page cache from a test: it would slow everything else on the machine.
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--size-mib",
            "64",
            "--workdir",
            str(work),
            "--json",
            str(out_json),
            "--no-drop-caches",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    values: dict[str, float] = {}
    verdicts: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("target_"):
            verdicts[parts[0][len("target_") :]] = parts[1]
        elif len(parts) == 2:
            try:
                values[parts[0]] = float(parts[1])
            except ValueError:
                pass

    expected = METRICS + (VERIFY_METRICS if _verify_available() else [])
    missing = [m for m in expected if m not in values]
    assert not missing, f"metric lines missing: {missing}\n{proc.stdout}"
    for m in expected:
        assert values[m] > 0, f"{m} = {values[m]} is not positive"

    assert set(verdicts) == set(TARGETS), verdicts
    assert all(v in ("PASS", "MISS", "SKIP") for v in verdicts.values()), verdicts
    assert verdicts["growth"] == "SKIP"  # no --peers
    if _verify_available():
        assert verdicts["verify"] in ("PASS", "MISS")

    data = json.loads(out_json.read_text())
    assert data["size_mib"] == 64 and data["exit_status"] == 0
    assert data["info"].get("restore_identical") is True
    for m in expected:
        assert data["metrics"][m] == pytest.approx(values[m], rel=1e-2, abs=1e-3)
    # the work directory did not exist before the run: it is removed afterwards
    assert not work.exists()
