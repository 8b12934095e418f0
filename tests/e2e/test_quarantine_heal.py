"""Issue 4: a bad chunk is quarantined (not deleted), its generation shows damaged, and the next
backup stores the data again, healing every generation that needs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from drbdbackup.repo.blob import KIND_DATA
from drbdbackup.repo.local import LocalBackend
from drbdbackup.repo.pack import pack_name
from drbdbackup.repo.repository import Repository
from tests.helpers import cli_json, files_equal, make_mixed_image, run_cli


def _verify(repo: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "verify", "--repo", str(repo), "--json", *args],
                          capture_output=True, text=True)
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_corrupt_chunk_is_quarantined_and_healed(tmp_path: Path) -> None:
    img = tmp_path / "v.img"
    make_mixed_image(img, 8)
    repo = tmp_path / "repo"
    run_cli("init", "--repo", str(repo), "--chunk-size", "256K")
    g1 = cli_json("backup", "--repo", str(repo), "--file", str(img), "--volume-id", "v")

    r = Repository.open(LocalBackend(str(repo)))
    r.load_index()
    ids = r.chunk_ids(r.read_record("v", g1["generation"]))
    victim_pos = next(i for i, cid in enumerate(ids) if any(loc.kind == KIND_DATA for loc in r.index.locations.get(cid, [])))
    victim = ids[victim_pos]
    loc = r.index.locations[victim][0]
    pack = repo / pack_name(loc.pack)
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0xFF
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))

    code, verdict = _verify(repo, "--full")
    assert code == 1 and not verdict["ok"]
    text = json.dumps(verdict)
    assert victim.hex() in text and str(victim_pos * 256 * 1024) in text
    assert (repo / "quarantine" / f"{victim.hex()}-{loc.pack}").exists()
    listing = cli_json("list", "--repo", str(repo))["generations"]
    assert [g["status"] for g in listing] == ["damaged"]
    assert run_cli("restore", "--repo", str(repo), "--volume-id", "v", "--target",
                   str(tmp_path / "bad.img"), check=False).returncode == 1

    g2 = cli_json("backup", "--repo", str(repo), "--file", str(img), "--volume-id", "v")
    assert g2["new_chunks"] >= 1 and g2["stored_bytes"] > 0  # the quarantined chunk stored again
    listing = cli_json("list", "--repo", str(repo))["generations"]
    assert [g["status"] for g in listing] == ["ok", "ok"]
    for gen in (g1, g2):
        out = tmp_path / f"{gen['generation']}.img"
        run_cli("restore", "--repo", str(repo), "--volume-id", "v", "--generation", gen["generation"],
                "--target", str(out))
        assert files_equal(out, img)
    assert pack.exists(), "quarantined evidence must not be deleted"
    run_cli("check", "--repo", str(repo), "--read-data")
    run_cli("prune", "--repo", str(repo), "--keep-last", "1")
    assert pack.exists(), "prune keeps packs named by quarantine records"
    code, verdict = _verify(repo, "--full", "--generation", "all")
    assert code == 0, verdict
