"""Prune repacks (and so verifies the live blobs it copies) before it deletes anything
(format.md section 13): a damaged blob in a pack to be repacked stops the prune with exit 1
naming the blob, and every generation record is still there."""

from __future__ import annotations

import json
import os
from pathlib import Path

from drbdbackup.repo.blob import KIND_DATA
from drbdbackup.repo.local import LocalBackend
from drbdbackup.repo.pack import pack_name
from drbdbackup.repo.repository import Repository
from tests.helpers import run_cli

CHUNK = 64 * 1024


def _backup(repo: Path, img: Path) -> str:
    out = run_cli("backup", "--repo", str(repo), "--file", str(img), "--volume-id", "v", "--json")
    return json.loads(out.stdout)["generation"]


def test_a_damaged_blob_to_repack_stops_prune_before_any_deletion(tmp_path: Path) -> None:
    repo, img = tmp_path / "repo", tmp_path / "v.img"
    run_cli("init", "--repo", str(repo), "--chunk-size", "64K")
    img.write_bytes(b"".join(os.urandom(CHUNK) for _ in range(8)))
    g1 = _backup(repo, img)
    with open(img, "r+b") as f:  # half the chunks change: g1's pack is half unused after prune
        for i in range(0, 8, 2):
            f.seek(i * CHUNK)
            f.write(os.urandom(CHUNK))
    g2 = _backup(repo, img)

    r = Repository.open(LocalBackend(str(repo)))
    r.load_index()
    live = r.chunk_ids(r.read_record("v", g2))[1]  # unchanged since g1: lives in g1's pack
    (loc,) = [x for x in r.index.locations[live] if x.kind == KIND_DATA]
    pack = repo / pack_name(loc.pack)
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0xFF
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))

    proc = run_cli("prune", "--repo", str(repo), "--keep-last", "1", check=False)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and live.hex() in lines[0] and "prune stopped" in lines[0], proc.stderr
    assert {p.name for p in (repo / "generations" / "v").iterdir()} == {g1, g2}
