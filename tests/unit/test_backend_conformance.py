"""The Backend contract (drbdbackup/repo/backend.py), one test per property, run against every
backend: local, memory, faulty (pass-through), retrying (over memory) and S3 (moto's server).

A failure reads as `test_<property>[<backend>]`.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from drbdbackup.errors import DiskFull, ObjectExists, ObjectNotFound
from drbdbackup.repo import local as local_mod
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.local import LocalBackend
from drbdbackup.repo.retry import RetryingBackend
from tests.doubles.faulty import FaultyBackend
from tests.doubles.memory import MemoryBackend

BACKENDS = ["local", "memory", "faulty", "retrying", "s3"]
READS: dict[str, Callable[[Backend, str], object]] = {  # the calls that name one object
    "get": lambda b, name: b.get(name),
    "get_range": lambda b, name: b.get_range(name, 0, 1),
    "size": lambda b, name: b.size(name),
}


@dataclass
class Store:
    """A backend under test and, where the backend can simulate it, a way to fill it up."""

    backend: Backend
    fill: Callable[[], None] | None  # from now on every write that needs room raises DiskFull

    def staged(self, content: bytes, name: str = "staged.tmp") -> str:
        path = os.path.join(self.backend.staging_dir(), name)
        with open(path, "wb") as f:
            f.write(content)
        return path


@pytest.fixture(scope="module")
def s3_client() -> Iterator[Any]:
    """One moto S3 server for the whole module (stopped at its end) and a client for it."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import boto3

    from tests.s3server import moto_s3

    with moto_s3() as env:
        yield boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )


def _fill_memory(mem: MemoryBackend) -> Callable[[], None]:
    def fill() -> None:
        mem.capacity = mem.used()

    return fill


def _fill_local(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """ENOSPC where a full filesystem reports it for a staged write: at the fsync."""

    def fill() -> None:
        def fsync(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(local_mod.os, "fsync", fsync)

    return fill


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    kind = request.param
    backend: Any
    if kind == "local":
        backend = LocalBackend(str(tmp_path / "repo"))
        subject = Store(backend, _fill_local(monkeypatch))
    elif kind == "s3":
        from drbdbackup.repo.s3 import S3Backend

        backend = S3Backend("backups", f"conformance/{uuid.uuid4().hex}", request.getfixturevalue("s3_client"))
        subject = Store(backend, None)  # S3 has no "full"; moto cannot be given a quota
    else:
        mem = MemoryBackend()
        backend = {"memory": mem, "faulty": FaultyBackend(mem), "retrying": RetryingBackend(mem)}[kind]
        subject = Store(backend, _fill_memory(mem))
    yield subject
    close = getattr(backend, "close", None)
    if close is not None:
        close()
    if kind == "s3":
        shutil.rmtree(backend.staging_dir(), ignore_errors=True)


def _in_threads(n: int, work: Callable[[int], object]) -> list[object]:
    """Run work(0..n-1) in n threads started together; return results or raised exceptions."""
    barrier = threading.Barrier(n)
    out: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# ---- reading what was written -----------------------------------------------------------------


def test_read_after_write(store: Store) -> None:
    b = store.backend
    b.put("a/b/c", b"hello")
    data = b.get("a/b/c")
    assert data == b"hello" and isinstance(data, bytes)
    assert b.exists("a/b/c") and b.list("a/") == ["a/b/c"]


def test_put_replaces_an_existing_object(store: Store) -> None:
    b = store.backend
    b.put("o", b"first version")
    b.put("o", b"second")
    assert b.get("o") == b"second" and b.size("o") == 6


def test_empty_and_binary_objects_round_trip(store: Store) -> None:
    b = store.backend
    every_byte = bytes(range(256)) * 3
    b.put("bin", every_byte)
    b.put("empty", b"")
    assert b.get("bin") == every_byte
    assert b.get("empty") == b"" and b.size("empty") == 0 and b.exists("empty")


def test_nested_names_round_trip(store: Store) -> None:
    b = store.backend
    names = ["top", "a/b", "a/c/d/e/f", "packs/ab/" + "ab" * 32]
    for i, name in enumerate(names):
        b.put(name, name.encode() * (i + 1))
    for i, name in enumerate(names):
        assert b.get(name) == name.encode() * (i + 1)


def test_put_is_atomic_for_concurrent_readers(store: Store) -> None:
    """A reader racing the writer sees no object or a whole one - never a part, never a temp name."""
    b = store.backend
    versions = [bytes([i]) * (256 << 10) for i in range(1, 7)]
    names = ["obj"] + [f"new/{i}" for i in range(4)]
    b.put("obj", versions[0])
    bad: list[object] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                for name in names:
                    try:
                        data = b.get(name)
                    except ObjectNotFound:
                        continue
                    if data not in versions:
                        bad.append(f"{name}: {len(data)} bytes, not one whole version")
                listed = b.list("")
                if not set(listed) <= set(names):
                    bad.append(f"listed {listed}")
        except Exception as exc:  # noqa: BLE001 - reported below
            bad.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i, data in enumerate(versions[1:] + versions[:1]):
            b.put("obj", data)
            if i < 4:
                b.put(f"new/{i}", versions[i])
    finally:
        done.set()
        thread.join()
    assert bad == []
    assert b.get("obj") == versions[0]


# ---- create-exclusive ---------------------------------------------------------------------------


def test_exclusive_put_creates_an_absent_object(store: Store) -> None:
    store.backend.put("locks/x", b"mine", exclusive=True)
    assert store.backend.get("locks/x") == b"mine"


def test_exclusive_put_of_an_existing_object_raises_object_exists(store: Store) -> None:
    b = store.backend
    b.put("config", b"original")
    with pytest.raises(ObjectExists):
        b.put("config", b"intruder", exclusive=True)
    assert b.get("config") == b"original"


def test_exclusive_put_race_has_exactly_one_winner(store: Store) -> None:
    b = store.backend

    def claim(i: int) -> bytes:
        content = f"writer {i}".encode()
        b.put("audit/000000000001", content, exclusive=True)
        return content

    results = _in_threads(8, claim)
    winners = [r for r in results if isinstance(r, bytes)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ObjectExists) for r in results if r is not winners[0]), results
    assert b.get("audit/000000000001") == winners[0]


# ---- missing objects ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(READS))
def test_missing_object_raises_object_not_found(store: Store, op: str) -> None:
    b = store.backend
    b.put("present", b"x")
    with pytest.raises(ObjectNotFound):
        READS[op](b, "missing")


def test_exists_reports_presence(store: Store) -> None:
    b = store.backend
    assert not b.exists("e/1")
    b.put("e/1", b"1")
    assert b.exists("e/1") and not b.exists("e/2")


@pytest.mark.parametrize("op", list(READS))
def test_a_prefix_is_not_an_object(store: Store, op: str) -> None:
    b = store.backend
    b.put("dir/obj", b"x")
    assert not b.exists("dir")
    with pytest.raises(ObjectNotFound):
        READS[op](b, "dir")


# ---- ranges and sizes ---------------------------------------------------------------------------


def test_get_range_returns_exactly_the_requested_bytes(store: Store) -> None:
    b = store.backend
    data = bytes(range(256)) * 4
    b.put("r", data)
    for offset, length in [(0, 1), (1, 3), (100, 200), (0, 1024), (1023, 1)]:
        assert b.get_range("r", offset, length) == data[offset : offset + length], (offset, length)


def test_get_range_is_clipped_at_the_end(store: Store) -> None:
    b = store.backend
    data = bytes(range(256)) * 4
    b.put("r", data)
    b.put("empty", b"")
    assert b.get_range("r", 1000, 100) == data[1000:]
    assert b.get_range("r", 1024, 10) == b""
    assert b.get_range("r", 5000, 10) == b""
    assert b.get_range("r", 5, 0) == b""
    assert b.get_range("empty", 0, 10) == b""


def test_size_is_the_stored_length(store: Store) -> None:
    b = store.backend
    for n in (0, 1, 1000, 65537):
        b.put(f"s/{n}", b"z" * n)
    assert [b.size(f"s/{n}") for n in (0, 1, 1000, 65537)] == [0, 1, 1000, 65537]


# ---- delete -------------------------------------------------------------------------------------


def test_delete_removes_the_object(store: Store) -> None:
    b = store.backend
    b.put("d/1", b"1")
    b.put("d/2", b"2")
    b.delete("d/1")
    assert not b.exists("d/1") and b.list("d/") == ["d/2"]
    with pytest.raises(ObjectNotFound):
        b.get("d/1")


def test_delete_of_a_missing_object_is_not_an_error(store: Store) -> None:
    b = store.backend
    b.delete("never/was")
    b.put("d", b"1")
    b.delete("d")
    b.delete("d")
    assert not b.exists("d")


# ---- list ---------------------------------------------------------------------------------------


def test_list_is_recursive_and_sorted(store: Store) -> None:
    b = store.backend
    names = ["z", "a/1", "a/b/2", "a/b/c/3", "m/x", "a0", "b/5"]
    for name in random.Random(7).sample(names, len(names)):
        b.put(name, b".")
    assert b.list("") == sorted(names)


def test_list_by_prefix_selects_one_subtree(store: Store) -> None:
    b = store.backend
    for name in ["a/1", "a/b/2", "a/b/c/3", "ab/4", "a0", "b/a/5"]:
        b.put(name, b".")
    assert b.list("a/") == ["a/1", "a/b/2", "a/b/c/3"]
    assert b.list("a/b/") == ["a/b/2", "a/b/c/3"]
    assert b.list("b/") == ["b/a/5"]


def test_list_of_an_absent_prefix_is_empty(store: Store) -> None:
    b = store.backend
    assert b.list("") == [] and b.list("packs/") == []
    b.put("index/1", b".")
    assert b.list("packs/") == []


def test_concurrent_puts_of_distinct_names_all_land(store: Store) -> None:
    b = store.backend

    def write(i: int) -> None:
        for j in range(6):
            b.put(f"packs/{i}/{j}", f"{i}.{j}".encode())

    assert [r for r in _in_threads(6, write) if r is not None] == []
    assert b.list("packs/") == sorted(f"packs/{i}/{j}" for i in range(6) for j in range(6))


# ---- staged files -------------------------------------------------------------------------------


def test_put_file_stores_and_consumes_the_staged_file(store: Store) -> None:
    b = store.backend
    content = os.urandom(100_000)
    staged = store.staged(content)
    b.put_file("packs/p", staged)
    assert b.get("packs/p") == content and not os.path.exists(staged)


def test_put_file_replaces_an_existing_object(store: Store) -> None:
    b = store.backend
    b.put("packs/p", b"old")
    b.put_file("packs/p", store.staged(b"new"))
    assert b.get("packs/p") == b"new"


def test_staged_files_are_never_listed(store: Store) -> None:
    b = store.backend
    assert os.path.isdir(b.staging_dir())
    store.staged(b"half a pack", "pack-1.tmp")
    store.staged(b"something else", "scratch")
    b.put("o", b".")
    assert b.list("") == ["o"]


# ---- full store ---------------------------------------------------------------------------------


def test_disk_full_raises_disk_full_and_leaves_nothing_partial(store: Store) -> None:
    if store.fill is None:
        pytest.skip("this backend cannot simulate a full store")
    b = store.backend
    b.put("kept", b"old contents")
    store.fill()
    big = os.urandom(64 << 10)
    with pytest.raises(DiskFull):
        b.put("new", big)
    with pytest.raises(DiskFull):
        b.put("kept", big)
    with pytest.raises(DiskFull):
        b.put("exclusive", big, exclusive=True)
    staged = store.staged(big)
    with pytest.raises(DiskFull):
        b.put_file("packs/p", staged)
    assert not os.path.exists(staged), "put_file must consume the staged file also on failure"
    assert b.list("") == ["kept"] and b.get("kept") == b"old contents"
    assert not any(b.exists(n) for n in ("new", "exclusive", "packs/p"))
    assert os.listdir(b.staging_dir()) == []
