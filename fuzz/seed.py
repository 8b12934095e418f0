"""Seed corpora for the harnesses: make small repositories with the real tools (drbdbackup and
drbdverify, in-process), then extract every object kind into OUT/<harness>/.

    python fuzz/seed.py OUT

Repositories: unencrypted with 64 KiB and with 1 MiB chunks (two volumes, two generations each,
a restore, a check, a prune, a verify), and an encrypted one (its key file, config, audit).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

from drbdbackup.cli import main as drbdbackup_main  # noqa: E402
from drbdbackup.repo import pack as rpack  # noqa: E402
from drbdbackup.repo import tree as rtree  # noqa: E402
from verify.cli import main as drbdverify_main  # noqa: E402

PASSWORD = "fuzz-seed"
KIB = 1 << 10


def _volume(seed: int, size: int) -> bytes:
    """Compressible but distinct chunks (so packs stay small): text with a little noise."""
    rnd = hashlib.blake2b(str(seed).encode()).digest()
    line = b"block %d of a seed volume for the fuzz corpora " % seed
    out = bytearray((line * (size // len(line) + 1))[:size])
    for off in range(0, size, 4096):
        out[off : off + len(rnd)] = hashlib.blake2b(rnd + off.to_bytes(8, "little")).digest()
    return bytes(out)


def _cli(*args: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = drbdbackup_main(list(args))
    if rc != 0:
        raise SystemExit(f"seed: drbdbackup {' '.join(args)} failed with exit {rc}")


def _verify(repo: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = drbdverify_main(["--repo", str(repo), "--full"])
    if rc != 0:
        raise SystemExit(f"seed: drbdverify of {repo} failed with exit {rc}")


def make_repo(work: Path, name: str, chunk: str, encrypted: bool) -> Path:
    """A repository written by the product: two volumes, two generations, maintenance runs."""
    repo = work / name
    disk_a, disk_b, target = work / f"{name}-a.img", work / f"{name}-b.img", work / f"{name}.out"
    disk_a.write_bytes(_volume(1, 192 * KIB))
    disk_b.write_bytes(_volume(2, 96 * KIB) + bytes(96 * KIB))
    _cli("init", "--repo", str(repo), "--chunk-size", chunk,
         "--encryption", "aes-256-gcm" if encrypted else "none")
    for disk, vid in ((disk_a, "vm-a"), (disk_b, "vm-b")):
        _cli("backup", "--repo", str(repo), "--file", str(disk), "--volume-id", vid)
    disk_a.write_bytes(_volume(3, 64 * KIB) + _volume(1, 192 * KIB)[64 * KIB :])
    _cli("backup", "--repo", str(repo), "--file", str(disk_a), "--volume-id", "vm-a")
    _cli("restore", "--repo", str(repo), "--volume-id", "vm-a", "--target", str(target))
    _cli("check", "--repo", str(repo), "--read-data")
    _cli("prune", "--repo", str(repo), "--keep-last", "1")
    _verify(repo)
    return repo


class Corpus:
    """OUT/<harness>/<sha1 of the input>."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.count = 0

    def add(self, harnesses: tuple[str, ...], data: bytes) -> None:
        for h in harnesses:
            d = self.out / h
            d.mkdir(parents=True, exist_ok=True)
            (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
            self.count += 1


def _files(repo: Path, sub: str) -> list[Path]:
    return sorted(p for p in (repo / sub).rglob("*") if p.is_file())


def extract_plain(repo: Path, corpus: Corpus) -> None:
    """Packs, blobs, tree nodes and index files (readable only without the key)."""
    cfg = json.loads((repo / "config").read_bytes())
    sel = _common.selector_of(cfg["chunk_size"], cfg.get("tree_fanout", 4096))
    for path in _files(repo, "packs"):
        raw = path.read_bytes()
        corpus.add(("product_pack", "verify_pack"), bytes([sel]) + raw)
        for e in rpack.split_pack(raw, None):
            stored = raw[e.offset : e.offset + e.length]
            corpus.add(("product_blob", "verify_blob"),
                       bytes([sel, e.kind]) + struct.pack("<I", e.plain_length) + stored)
            if e.kind == 1:
                node = rpack_blob_plain(stored, e)
                count = len(rtree.decode_node(node)[1])
                corpus.add(("product_node",), bytes([sel, 1]) + struct.pack("<I", count)
                           + struct.pack("<I", len(node)) + node)
                corpus.add(("verify_node",), bytes([sel]) + struct.pack("<I", count) + node)
    for path in _files(repo, "index"):
        corpus.add(("product_index", "verify_index"), path.read_bytes())
    for path in _files(repo, "generations"):
        corpus.add(("product_record", "verify_record"), path.read_bytes())


def rpack_blob_plain(stored: bytes, e: rpack.PackEntry) -> bytes:
    from drbdbackup.repo.blob import decode_blob

    return decode_blob(stored, e.id, None, e.plain_length)


def extract_any(repo: Path, corpus: Corpus) -> None:
    """Objects both kinds of repository hold in plain JSON."""
    corpus.add(("product_config", "verify_config"), (repo / "config").read_bytes())
    for path in _files(repo, "audit"):
        corpus.add(("product_audit", "verify_audit"), path.read_bytes())
    for path in _files(repo, "keys") if (repo / "keys").is_dir() else []:
        corpus.add(("product_keyfile", "verify_keyfile"), path.read_bytes())


def extract_made(corpus: Corpus) -> None:
    """Objects no finished run leaves behind, made by the writers' own code: locks, quarantine
    records; and the service's and LINSTOR's inputs."""
    from drbdbackup.repo.locks import Lock
    from verify.lock import SharedLock

    for exclusive, op in ((False, "backup"), (True, "prune")):
        corpus.add(("product_lock", "verify_lock"), Lock(None, exclusive, op)._body())  # type: ignore[arg-type]
    corpus.add(("product_lock", "verify_lock"), SharedLock(None)._body())  # type: ignore[arg-type]
    rec = {"id": "ab" * 32, "pack": "cd" * 32, "reason": "blob id mismatch",
           "found_by": "drbdverify", "time": "2026-12-03T14:00:00+00:00"}
    corpus.add(("product_quarantine", "verify_quarantine"),
               f"quarantine/{'ab' * 32}-{'cd' * 32}\n".encode() + json.dumps(rec).encode())
    corpus.add(("product_service_toml",), SERVICE_TOML.encode())
    for body in (b'\x00{"policy": "nightly"}', b'\x00{"policy": "nightly", "kind": "verify"}',
                 b"\x01state=queued&limit=5", b"\x0212"):
        corpus.add(("product_rest",), body)
    corpus.add(("product_linstor",), json.dumps(LINSTOR).encode())


SERVICE_TOML = """[service]
listen = "127.0.0.1:8470"
token_file = "token"
state_db = "state/jobs.sqlite"
max_jobs = 2

[repository]
location = "repo"

[linstor]
controllers = "linstor://c1"

[[policy]]
name = "nightly"
resources = ["vm1"]
schedule = "0 2 * * *"
keep_last = 7
keep_daily = 7

[[policy]]
name = "files"
every_s = 3600
keep_within = "2d"
files = [{ path = "data.img", volume_id = "files.data" }]
"""

_VOLUME = {
    "volume_number": 0, "storage_pool_name": "pool1", "provider_kind": "FILE_THIN",
    "device_path": "/dev/drbd1000", "uuid": "vu", "state": {"disk_state": "UpToDate"},
    "layer_data_list": [{"type": "DRBD", "data": {
        "drbd_volume_definition": {"volume_number": 0, "minor_number": 1000},
        "device_path": "/dev/drbd1000", "usable_size_kib": 4096, "allocated_size_kib": 4100,
        "backing_device": "/pools/p1/vm1_00000.img"}}],
}
LINSTOR = {
    "resources": [{"name": "vm1", "node_name": "n1", "uuid": "ru", "flags": [], "props": {},
                   "volumes": [_VOLUME]}],
    "pools": [{"storage_pool_name": "pool1", "node_name": "n1", "provider_kind": "FILE_THIN",
               "props": {"StorDriver/FileDir": "/pools/p1"}}],
    "snapshots": [{"name": "snap1", "resource_name": "vm1", "uuid": "su",
                   "flags": ["SUCCESSFUL"], "snapshots": []}],
    "definitions": [{"name": "vm1", "uuid": "du", "resource_group_name": "rg",
                     "props": {"Aux/x": "1"},
                     "volume_definitions": [{"volume_number": 0, "size_kib": 4096}]}],
    "nodes": [{"name": "n1", "type": "SATELLITE", "connection_status": "ONLINE",
               "net_interfaces": [{"name": "default", "address": "10.0.0.1"}]}],
}


def _memoize_scrypt() -> None:
    """One derivation per (passphrase, salt): the encrypted repository is opened by every step."""
    from drbdbackup.repo import crypto
    from verify import keys

    crypto._kek = functools.lru_cache(maxsize=8)(crypto._kek)
    keys.derive_kek = functools.lru_cache(maxsize=8)(keys.derive_kek)


def main(argv: list[str] | None = None) -> int:
    _memoize_scrypt()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    os.environ["DRBDBACKUP_PASSWORD"] = PASSWORD
    corpus = Corpus(args.out)
    with tempfile.TemporaryDirectory(prefix="fuzz-seed-") as tmp:
        work = Path(tmp)
        for name, chunk, encrypted in (("small", "64K", False), ("large", "1M", False),
                                       ("sealed", "64K", True)):
            repo = make_repo(work, name, chunk, encrypted)
            if not encrypted:
                extract_plain(repo, corpus)
            extract_any(repo, corpus)
    extract_made(corpus)
    print(f"seed: {corpus.count} inputs under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
