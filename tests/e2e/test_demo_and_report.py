"""The README's main job (`drbdbackup demo`) and compliance reports."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.helpers import cli_json, make_mixed_image, run_cli


@pytest.mark.slow
def test_demo_runs_the_whole_job(tmp_path: Path) -> None:
    proc = run_cli("demo", "--workdir", str(tmp_path / "demo"), "--json", timeout=900)
    art = json.loads(proc.stdout)
    full, incr = art["backups"]
    assert full["mode"] == "full" and incr["mode"] == "incremental"
    assert incr["changed_bytes"] < full["size_bytes"] // 4
    assert incr["verification"]["ok"] is True
    assert art["verification"] is True
    suite = ElementTree.parse(art["junit"]).getroot()
    assert suite.tag in ("testsuites", "testsuite")
    assert Path(art["report"]).read_text().startswith("<!doctype html>")
    listing = cli_json("list", "--repo", art["repository"])["generations"]
    assert [g["mode"] for g in listing] == ["full", "incremental"]
    assert all(g["status"] == "ok" for g in listing)


def test_report_json_and_broken_chain(tmp_path: Path) -> None:
    img = tmp_path / "v.img"
    make_mixed_image(img, 3)
    repo = tmp_path / "repo"
    run_cli("init", "--repo", str(repo))
    cli_json("backup", "--repo", str(repo), "--file", str(img), "--volume-id", "v")
    out = tmp_path / "r.json"
    summary = cli_json("report", "--repo", str(repo), "--format", "json", "--output", str(out))
    rep = json.loads(out.read_text())
    assert summary["chain_ok"] and rep["audit_chain_ok"]
    assert rep["event_counts"] == {"init": 1, "backup": 1}
    assert rep["generations"][0]["status"] == "ok"
    # Tamper with the first audit entry: the report says the chain is broken and exits 1.
    first = repo / "audit" / "000000000001"
    first.write_bytes(first.read_bytes().replace(b'"init"', b'"INIT"'))
    proc = run_cli("report", "--repo", str(repo), "--format", "html", "--output", str(tmp_path / "r.html"),
                   check=False)
    assert proc.returncode == 1
    assert "BROKEN" in (tmp_path / "r.html").read_text()
