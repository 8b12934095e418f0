"""drbdverify against repositories written by the product (drbdbackup), clean and corrupted.

The product is run only as a subprocess (``python -m drbdbackup.cli``); the verifier reads what
it wrote with its own code. Both readers must agree: a clean backup passes both, and every kind
of damage is reported by drbdverify and refused by the product's own restore or check.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from vhelpers import flip, run_verify

from verify.format import generation_name, pack_name
from verify.repository import Repository
from verify.store import LocalStore

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("drbdbackup.cli") is None,
    reason="drbdbackup.cli is not importable: the product writer has not landed",
)

ROOT = Path(__file__).resolve().parents[2]
PW = "drill passphrase"
CHUNK = 65536


def product(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRBDBACKUP_PASSWORD": PW, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "drbdbackup.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=str(ROOT))


def volume(path: Path, chunks: int = 24, seed: int = 5) -> bytes:
    rng = random.Random(seed)
    parts = []
    for i in range(chunks):
        if i % 6 == 5:
            parts.append(bytes(CHUNK))
        elif i % 2:
            parts.append(rng.randbytes(CHUNK))
        else:
            parts.append((f"block {i} " * CHUNK).encode()[:CHUNK])
    data = b"".join(parts) + rng.randbytes(777)
    path.write_bytes(data)
    return data


def _make_template(tmp: Path, encrypted: bool) -> tuple[Path, dict[str, Any]]:
    """Init + one backup with the product CLI."""
    path = tmp / "repo"
    volume(tmp / "disk.img")
    enc = ["--encryption", "aes-256-gcm"] if encrypted else []
    r = product("init", "--repo", str(path), "--chunk-size", str(CHUNK), *enc)
    assert r.returncode == 0, r.stderr
    r = product("backup", "--repo", str(path), "--file", str(tmp / "disk.img"), "--volume-id",
                "vm-1", "--json")
    assert r.returncode == 0, r.stderr
    return tmp, json.loads(r.stdout)


class ProductRepo:
    def __init__(self, tmp: Path, template: tuple[Path, dict[str, Any]]) -> None:
        shutil.copytree(template[0], tmp / "copy")
        self.path = str(tmp / "copy" / "repo")
        self.src = tmp / "copy" / "disk.img"
        self.data = self.src.read_bytes()
        self.backup = template[1]
        self.generation = self.backup["generation"]
        os.environ["DRBDBACKUP_PASSWORD"] = PW
        try:
            self.repo = Repository(LocalStore(self.path), PW)
        finally:
            del os.environ["DRBDBACKUP_PASSWORD"]
        self.record = self.repo.read_record("vm-1", self.generation)

    def obj(self, name: str) -> str:
        return os.path.join(self.path, *name.split("/"))

    def loc(self, bid: bytes) -> tuple[str, int, int]:
        loc = self.repo.locations[bid][0]
        return self.obj(pack_name(loc.pack)), loc.offset, loc.length

    def chunk_ids(self) -> list[bytes]:
        from verify.format import parse_node

        node = parse_node(self.repo.read_blob_at(self.repo.locations[self.record.root][0]))
        assert node.level == 0
        return node.ids

    def restore_ok(self, tmp: Path) -> bool:
        target = tmp / f"restore-{os.urandom(3).hex()}.img"
        r = product("restore", "--repo", self.path, "--volume-id", "vm-1", "--target", str(target))
        return r.returncode == 0 and target.read_bytes() == self.data

    def check_ok(self) -> bool:
        return product("check", "--repo", self.path, "--read-data").returncode == 0


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[Path, dict[str, Any]]]:
    return {enc: _make_template(tmp_path_factory.mktemp(f"tpl{int(enc)}"), enc)
            for enc in (False, True)}


@pytest.fixture(params=[False, True], ids=["plain", "encrypted"])
def prod(request: pytest.FixtureRequest, tmp_path: Path,
         templates: dict[bool, tuple[Path, dict[str, Any]]]) -> ProductRepo:
    return ProductRepo(tmp_path, templates[request.param])


def verify_json(p: ProductRepo, *args: str) -> tuple[int, dict[str, Any]]:
    r = run_verify("--repo", p.path, "--json", *args, password=PW)
    assert "Traceback" not in r.err
    return r.rc, (json.loads(r.out) if r.out else {"findings": [], "err": r.err})


def test_both_readers_agree_on_a_clean_backup(prod: ProductRepo, tmp_path: Path) -> None:
    rc, j = verify_json(prod, "--full", "--source", str(prod.src))
    assert rc == 0, j
    assert j["chunks_checked"] == prod.record.chunk_count == -(-len(prod.data) // CHUNK)
    assert j["bytes_compared_with_source"] == len(prod.data)
    assert j["generation"] == prod.generation
    assert prod.record.size_bytes == len(prod.data)
    assert prod.restore_ok(tmp_path)
    assert prod.check_ok()


def test_incremental_generation(prod: ProductRepo) -> None:
    data = bytearray(prod.data)
    data[3 * CHUNK + 5] ^= 0xFF
    prod.src.write_bytes(bytes(data))
    r = product("backup", "--repo", prod.path, "--file", str(prod.src), "--volume-id", "vm-1",
                "--json")
    assert r.returncode == 0, r.stderr
    rc, j = verify_json(prod, "--full", "--source", str(prod.src))
    assert rc == 0 and j["generation"] == json.loads(r.stdout)["generation"]
    rc, j = verify_json(prod, "--full", "--generation", "all")
    assert rc == 0 and len(j["checks"]) == 2


def _damage_chunk(p: ProductRepo) -> str:
    ids = p.chunk_ids()
    pos = next(i for i, c in enumerate(ids) if c != bytes(32) and ids.count(c) == 1)
    pack, off, ln = p.loc(ids[pos])
    flip(pack, off + ln // 2)
    return ids[pos].hex()


def _damage_toc(p: ProductRepo) -> str:
    pack, _o, _l = p.loc(p.record.root)
    flip(pack, -12 - 3)
    return "pack-damaged"


def _damage_node(p: ProductRepo) -> str:
    pack, off, ln = p.loc(p.record.root)
    flip(pack, off + ln - 2)
    return p.record.root.hex()


def _damage_record(p: ProductRepo) -> str:
    flip(p.obj(generation_name("vm-1", p.generation)), 30)
    return "record"


def _delete_pack(p: ProductRepo) -> str:
    pack, _o, _l = p.loc(p.chunk_ids()[0])
    os.remove(pack)
    return "pack-missing"


def _truncate_pack(p: ProductRepo) -> str:
    pack, _o, _l = p.loc(p.chunk_ids()[0])
    os.truncate(pack, os.path.getsize(pack) - 7)
    return "pack-damaged"


DAMAGE = {
    "chunk-data": _damage_chunk,
    "pack-toc": _damage_toc,
    "tree-node": _damage_node,
    "record": _damage_record,
    "deleted-pack": _delete_pack,
    "truncated-pack": _truncate_pack,
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_each_object_kind_corrupted(prod: ProductRepo, kind: str, tmp_path: Path) -> None:
    marker = DAMAGE[kind](prod)
    rc, j = verify_json(prod, "--full", "--no-quarantine")
    assert rc == 1, j
    assert any(marker in (f["kind"], f["chunk_id"]) for f in j["findings"]), j["findings"]
    assert all(f["volume_id"] == "vm-1" for f in j["findings"] if f["generation"])
    # the product's reader must not succeed where the verifier found damage
    assert not prod.check_ok() or not prod.restore_ok(tmp_path)


def test_audit_log_damage(prod: ProductRepo) -> None:
    names = sorted(os.listdir(prod.obj("audit")))
    flip(prod.obj(f"audit/{names[0]}"), 20)
    rc, j = verify_json(prod, "--no-quarantine")
    assert rc == 1
    assert any(f["kind"] == "audit-chain" for f in j["findings"])


def test_wrong_passphrase_on_product_repo(
    tmp_path: Path, templates: dict[bool, tuple[Path, dict[str, Any]]]
) -> None:
    p = ProductRepo(tmp_path, templates[True])
    r = run_verify("--repo", p.path, password="not it")
    assert (r.rc, r.err) == (2, "drbdverify: error: wrong passphrase\n")


def test_restore_drill_end_to_end(
    tmp_path: Path, templates: dict[bool, tuple[Path, dict[str, Any]]]
) -> None:
    from ci.restore_drill import main as drill

    prod = ProductRepo(tmp_path, templates[True])

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    junit = tmp_path / "drill.xml"
    backup_cmd = f"{sys.executable} -m drbdbackup.cli"
    verify_cmd = f"{sys.executable} -m verify"
    env_before = dict(os.environ)
    os.environ["DRBDBACKUP_PASSWORD"] = PW
    os.environ["PYTHONPATH"] = str(ROOT)
    try:
        rc = drill(["--repo", prod.path, "--scratch", str(scratch), "--junit", str(junit),
                    "--drbdbackup", backup_cmd, "--drbdverify", verify_cmd,
                    "--hook", f"cmp {{target}} {prod.src}"])
        assert rc == 0
        assert list(scratch.iterdir()) == []  # scratch cleaned
        xmlschema = pytest.importorskip("xmlschema")
        xmlschema.XMLSchema(str(Path(__file__).with_name("junit.xsd"))).validate(str(junit))
        text = junit.read_text()
        assert 'tests="3"' in text and 'failures="0"' in text
        _damage_chunk(prod)
        rc = drill(["--repo", prod.path, "--scratch", str(scratch), "--junit", str(junit),
                    "--drbdbackup", backup_cmd, "--drbdverify", verify_cmd])
        assert rc == 1
        xmlschema.XMLSchema(str(Path(__file__).with_name("junit.xsd"))).validate(str(junit))
        assert "<failure" in junit.read_text()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
