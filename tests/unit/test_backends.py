"""One conformance suite for every backend: atomic put, exclusive put, list, ranges, errors."""

from __future__ import annotations

import os

import pytest

from drbdbackup.errors import DiskFull, ObjectExists, ObjectNotFound
from drbdbackup.repo.local import LocalBackend
from tests.doubles.faulty import FaultyBackend
from tests.doubles.memory import MemoryBackend


@pytest.fixture(scope="module")
def s3_env():
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from tests.s3server import moto_s3

    with moto_s3() as env:
        yield env


@pytest.fixture(params=["local", "memory", "faulty", "s3"])
def backend(request, tmp_path, monkeypatch):
    if request.param == "s3":
        env = request.getfixturevalue("s3_env")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        from drbdbackup.repo.s3 import S3Backend

        return S3Backend.from_url(f"s3://backups/{tmp_path.name}")
    if request.param == "local":
        return LocalBackend(str(tmp_path / "r"))
    if request.param == "memory":
        return MemoryBackend()
    return FaultyBackend(MemoryBackend())


def test_conformance(backend) -> None:
    backend.put("a/b/c", b"hello")
    assert backend.get("a/b/c") == b"hello"
    assert backend.get_range("a/b/c", 1, 3) == b"ell"
    assert backend.size("a/b/c") == 5 and backend.exists("a/b/c")
    backend.put("a/b/c", b"world")
    assert backend.get("a/b/c") == b"world"
    with pytest.raises(ObjectExists):
        backend.put("a/b/c", b"x", exclusive=True)
    backend.put("a/d", b"1", exclusive=True)
    assert backend.list("a/") == ["a/b/c", "a/d"]
    assert backend.list("zzz/") == []
    with pytest.raises(ObjectNotFound):
        backend.get("missing")
    backend.delete("a/d")
    backend.delete("a/d")
    assert not backend.exists("a/d")
    staged = os.path.join(backend.staging_dir(), "x.tmp")
    with open(staged, "wb") as f:
        f.write(b"staged")
    backend.put_file("p/q", staged)
    assert backend.get("p/q") == b"staged" and not os.path.exists(staged)


def test_local_leaves_no_temp_files(tmp_path) -> None:
    b = LocalBackend(str(tmp_path / "r"))
    for i in range(5):
        b.put(f"o/{i}", b"x" * i)
    left = [n for n in os.listdir(b.staging_dir())]
    assert left == []
    assert b.list("") == [f"o/{i}" for i in range(5)]


def test_faulty_scripts_errors_and_flips() -> None:
    f = FaultyBackend(MemoryBackend())
    f.add_fault("put", "^packs/", DiskFull("full"), repeat=1, after=1)
    f.put("packs/1", b"a")
    with pytest.raises(DiskFull):
        f.put("packs/2", b"b")
    f.put("packs/3", b"c")
    f.put("data", b"\x00\x00\x00")
    f.flip_on_load("^data$")
    assert f.get("data") == b"\x00\xff\x00"
