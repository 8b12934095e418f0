"""The keep rules decide as restic's `forget` does (same snapshots, same rules, real restic)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drbdbackup.repo.retention import KeepRules, decide, parse_duration

TIMES = [  # year, month and day boundaries, two on one day, within-boundary distances
    "2024-12-31 23:30:00", "2025-01-01 00:30:00", "2025-01-15 10:00:00", "2025-01-15 12:00:00",
    "2025-01-31 23:00:00", "2025-02-01 01:00:00", "2025-02-02 09:00:00", "2025-02-03 08:00:00",
]
RULES = [
    {"within": "2d"},
    {"daily": 3},
    {"monthly": 2, "yearly": 2},
    {"last": 2, "weekly": 2},
    {"hourly": 3, "within": "26h"},
    {"within": "21d", "monthly": 1},
]

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")


def _restic(env: dict, *args: str) -> str:
    return subprocess.run(["restic", *args], env=env, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_same_decisions_as_restic_forget(tmp_path: Path) -> None:
    env = {**os.environ, "RESTIC_PASSWORD": "test", "RESTIC_REPOSITORY": str(tmp_path / "repo"),
           "TZ": "UTC", "RESTIC_CACHE_DIR": str(tmp_path / "cache")}
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("x")
    _restic(env, "init", "-q")
    procs = [subprocess.Popen(["restic", "backup", "-q", "--host", "h", "--time", t, str(data)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for t in TIMES]
    for p in procs:  # backups take a shared lock: they run side by side
        assert p.wait(timeout=60) == 0, p.stderr.read() if p.stderr else ""
    gens = [(t, _when(t.replace(" ", "T") + "Z")) for t in TIMES]
    for rule in RULES:
        flags = [x for k, v in rule.items() for x in (f"--keep-{k}", str(v))]
        out = json.loads(_restic(env, "forget", "--dry-run", "--json", *flags))
        restic_kept = {_when(s["time"]) for group in out for s in group["keep"]}
        within = parse_duration(str(rule["within"])) if "within" in rule else None
        ours = decide(gens, KeepRules(**{**rule, "within": within}))
        assert {t for g, t in gens if g in ours.kept} == restic_kept, rule
