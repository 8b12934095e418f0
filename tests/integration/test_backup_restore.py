"""Issue 2 'done when': incremental backups of a 1 GiB file, byte-identical restores, encryption."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import cli_json, files_equal, make_mixed_image, run_cli, scatter_writes

MiB = 1 << 20


@pytest.mark.slow
@pytest.mark.parametrize("encryption", ["none", "aes-256-gcm"])
def test_1gib_incremental_scattered_churn(tmp_path: Path, encryption: str) -> None:
    env = {"DRBDBACKUP_PASSWORD": "correct horse battery staple"}
    repo = tmp_path / "repo"
    img = tmp_path / "vol.img"
    make_mixed_image(img, 1024)
    shutil.copy(img, tmp_path / "gen1.img")
    run_cli("init", "--repo", str(repo), "--encryption", encryption, env=env)

    first = cli_json("backup", "--repo", str(repo), "--file", str(img), "--volume-id", "vm1", env=env)
    assert first["mode"] == "full" and first["size_bytes"] == 1024 * MiB
    assert first["zero_chunks"] == 256  # every 4th MiB is zero: never stored

    touched = scatter_writes(img, 0.01)
    chunks = {off // MiB for off, _len in touched}
    shutil.copy(img, tmp_path / "gen2.img")
    repo_before = _repo_bytes(repo)
    second = cli_json("backup", "--repo", str(repo), "--file", str(img), "--volume-id", "vm1", env=env)
    assert second["mode"] == "incremental"
    assert second["tracker"] == "checksum"
    assert second["parent"] == first["generation"]
    assert second["changed_bytes"] == len(chunks) * MiB
    assert second["new_chunks"] == len(chunks)
    # Only the touched chunks (compressed, some random) plus a few tree nodes are stored.
    assert second["stored_bytes"] <= len(chunks) * MiB + 64 * 1024
    growth = _repo_bytes(repo) - repo_before
    assert growth <= len(chunks) * MiB + 256 * 1024

    listing = cli_json("list", "--repo", str(repo), env=env)["generations"]
    assert [g["generation"] for g in listing] == [first["generation"], second["generation"]]
    assert all(g["status"] == "ok" for g in listing)

    for gen, expected in ((first, "gen1.img"), (second, "gen2.img")):
        out = tmp_path / f"restored-{gen['generation']}.img"
        run_cli("restore", "--repo", str(repo), "--volume-id", "vm1", "--generation",
                gen["generation"], "--target", str(out), env=env)
        assert files_equal(out, tmp_path / expected)
        # zero chunks are holes in the restored file
        assert out.stat().st_blocks * 512 < out.stat().st_size
        out.unlink()
    check = run_cli("check", "--repo", str(repo), "--read-data", env=env)
    assert "no errors" in check.stdout
    if encryption != "none":
        blob = b"".join(p.read_bytes() for p in repo.rglob("*") if p.is_file())
        assert b"lorem ipsum" not in blob
        assert env["DRBDBACKUP_PASSWORD"].encode() not in blob


def _repo_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())


def test_unchanged_volume_stores_nothing(tmp_path: Path) -> None:
    img = tmp_path / "v.img"
    make_mixed_image(img, 8)
    repo = str(tmp_path / "repo")
    run_cli("init", "--repo", repo, "--chunk-size", "64K")
    cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v")
    again = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v")
    assert again["mode"] == "incremental" and again["changed_bytes"] == 0
    assert again["stored_bytes"] == 0 and again["new_chunks"] == 0


def test_size_change_falls_back_to_full_and_says_why(tmp_path: Path) -> None:
    img = tmp_path / "v.img"
    make_mixed_image(img, 4)
    repo = str(tmp_path / "repo")
    run_cli("init", "--repo", repo)
    cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v")
    with open(img, "ab") as f:
        f.write(b"x" * 4096)
    res = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v")
    assert res["mode"] == "full" and res["tracker"] == "full"
    assert "size changed" in res["fallback_reason"]
    out = tmp_path / "out"
    run_cli("restore", "--repo", repo, "--volume-id", "v", "--target", str(out))
    assert files_equal(out, img)


def test_forced_full_and_odd_tail(tmp_path: Path) -> None:
    img = tmp_path / "v.img"
    img.write_bytes(b"abc" * 100001)  # not a multiple of the chunk size or of 4096
    repo = str(tmp_path / "repo")
    run_cli("init", "--repo", repo, "--chunk-size", "64K")
    cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v")
    res = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v", "--tracker", "full")
    assert res["mode"] == "full" and res["fallback_reason"] is None
    assert res["map_validity"] == "forced-full" and res["stored_bytes"] == 0  # dedup still applies
    out = tmp_path / "out"
    run_cli("restore", "--repo", repo, "--volume-id", "v", "--target", str(out))
    assert files_equal(out, img)


def test_prune_keeps_restorable_generations(tmp_path: Path) -> None:
    img = tmp_path / "v.img"
    make_mixed_image(img, 6)
    repo = str(tmp_path / "repo")
    run_cli("init", "--repo", repo, "--chunk-size", "64K")
    gens = []
    for i in range(4):
        scatter_writes(img, 0.05, seed=i)
        gens.append(cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v"))
    shutil.copy(img, tmp_path / "last.img")
    dry = cli_json("prune", "--repo", repo, "--keep-last", "1", "--dry-run")
    assert len(dry["removed_generations"]) == 3 and dry["removed_packs"] >= 1
    assert len(cli_json("list", "--repo", repo)["generations"]) == 4
    done = cli_json("prune", "--repo", repo, "--keep-last", "1")
    assert done["removed_packs"] == dry["removed_packs"]
    listing = cli_json("list", "--repo", repo)["generations"]
    assert [g["generation"] for g in listing] == [gens[-1]["generation"]]
    run_cli("check", "--repo", repo, "--read-data")
    out = tmp_path / "out"
    run_cli("restore", "--repo", repo, "--volume-id", "v", "--target", str(out))
    assert files_equal(out, tmp_path / "last.img")


def test_read_limit_paces_the_source_reads(tmp_path: Path) -> None:
    import time

    img = tmp_path / "v.img"
    make_mixed_image(img, 48)
    repo = str(tmp_path / "repo")
    run_cli("init", "--repo", repo)
    t = time.monotonic()
    res = cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v", "--read-limit", "16M")
    elapsed = time.monotonic() - t
    # 48 MiB at 16 MiB/s: the last 16 MiB segment may start at 2 s, so at least ~2 s
    assert res["read_bytes"] == 48 << 20 and elapsed >= 1.9
    bad = run_cli("backup", "--repo", repo, "--file", str(img), "--volume-id", "v", "--read-limit", "fast",
                  check=False)
    assert bad.returncode == 2 and "invalid size" in bad.stderr
