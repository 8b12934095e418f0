"""An S3 repository end to end against a real S3 server (moto's), through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_json, files_equal, make_mixed_image, run_cli, scatter_writes

pytest.importorskip("moto.server", reason="moto[server] is not installed")


def test_s3_backup_incremental_restore_prune(tmp_path: Path) -> None:
    from tests.s3server import moto_s3

    img = tmp_path / "v.img"
    make_mixed_image(img, 12)
    with moto_s3() as env:
        env["DRBDBACKUP_PASSWORD"] = "s3 secret phrase"
        repo = "s3://backups/cluster1/repo"
        run_cli("init", "--repo", repo, "--encryption", "aes-256-gcm", env=env)
        first = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v", env=env)
        scatter_writes(img, 0.02)
        second = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v", env=env)
        assert first["mode"] == "full" and second["mode"] == "incremental"
        third = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v",
                         "--verify-sample", "0.5", env=env)
        assert third["verification"]["ok"] is True and third["verification"]["chunks_checked"] > 0
        proc = subprocess.run([sys.executable, "-m", "verify", "--repo", repo, "--full", "--json"],
                              capture_output=True, text=True, env={**os.environ, **env})
        verdict = json.loads(proc.stdout)
        assert proc.returncode == 0 and verdict["ok"] and verdict["chunks_failed"] == 0, proc.stderr
        out = tmp_path / "out.img"
        run_cli("restore", "--repo", repo, "--volume-id", "v", "--target", str(out), env=env)
        assert files_equal(out, img)
        run_cli("prune", "--repo", repo, "--keep-last", "1", env=env)
        run_cli("check", "--repo", repo, "--read-data", env=env)
        bad = run_cli("list", "--repo", "s3://no-such-bucket/x", env=env, check=False)
        assert bad.returncode in (2, 3) and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
