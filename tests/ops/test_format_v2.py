"""Format version 2: new repositories are 2, a version-1 repository migrates in place on the
first backup, version-1 records stay readable, and both readers accept the result."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT, run_cli


def _records(repo: Path) -> list[dict]:
    return [json.loads(p.read_bytes()) for p in sorted((repo / "generations").rglob("*")) if p.is_file()]


def _strip_audit_ties(repo: Path) -> None:
    """The log as the previous release wrote it: no `record` ties (format.md 12), re-chained."""
    prev = "0" * 64
    for path in sorted((repo / "audit").iterdir()):
        entry = {k: v for k, v in json.loads(path.read_bytes()).items() if k != "record"}
        data = json.dumps({**entry, "prev": prev}, sort_keys=True).encode()
        path.write_bytes(data)
        prev = hashlib.sha256(data).hexdigest()


def test_version_1_repository_migrates_on_first_backup(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "v.img"
    src.write_bytes(os.urandom(2 << 20))
    run_cli("init", "--repo", str(repo))
    assert json.loads((repo / "config").read_bytes())["format"] == 2
    run_cli("backup", "--repo", str(repo), "--file", str(src), "--volume-id", "v")
    # make it a version-1 repository as the previous release wrote it
    cfg = json.loads((repo / "config").read_bytes())
    (repo / "config").write_text(json.dumps({**cfg, "format": 1}, indent=1))
    rec_path = next((repo / "generations" / "v").iterdir())
    v1 = {k: v for k, v in json.loads(rec_path.read_bytes()).items()
          if k not in ("tracker_reason", "policy", "selected_by", "labels", "linstor", "group_members",
                    "audit_prev")}
    rec_path.write_text(json.dumps({**v1, "format": 1}, sort_keys=True, indent=1))
    _strip_audit_ties(repo)

    listed = json.loads(run_cli("list", "--repo", str(repo), "--json").stdout)["generations"]
    assert [g["status"] for g in listed] == ["ok"] and listed[0]["tracker_reason"] is None
    assert json.loads((repo / "config").read_bytes())["format"] == 1  # reading does not migrate

    out = json.loads(run_cli("backup", "--repo", str(repo), "--file", str(src), "--volume-id", "v",
                             "--json").stdout)
    assert out["mode"] == "incremental" and out["tracker_reason"]
    assert json.loads((repo / "config").read_bytes())["format"] == 2
    formats = sorted(r["format"] for r in _records(repo))
    assert formats == [1, 2]
    new = next(r for r in _records(repo) if r["format"] == 2)
    assert new["tracker_reason"] == out["tracker_reason"] and new["labels"] == {}
    proc = subprocess.run([sys.executable, "-m", "verify", "--repo", str(repo), "--full", "--json"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(run_cli("check", "--repo", str(repo), "--read-data", "--json").stdout)["ok"]
