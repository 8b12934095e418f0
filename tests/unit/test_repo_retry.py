"""drbdbackup/repo/retry.py: what is retried, how long it waits, and the two puts that are not
simply repeatable (exclusive put, put_file), driven by the scripted FaultyBackend."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable

import pytest

from drbdbackup.errors import BackendError, DiskFull, ObjectExists, ObjectNotFound
from drbdbackup.repo import retry as retry_mod
from drbdbackup.repo.local import LocalBackend
from drbdbackup.repo.retry import RetryingBackend, is_transient
from tests.doubles.faulty import FaultyBackend
from tests.doubles.memory import MemoryBackend


def _stack(attempts: int = 4, **kw: float) -> tuple[RetryingBackend, FaultyBackend, list[float]]:
    """RetryingBackend(FaultyBackend(MemoryBackend())) that records its sleeps instead of sleeping."""
    faulty = FaultyBackend(MemoryBackend())
    sleeps: list[float] = []
    kw.setdefault("jitter", 0.0)
    return RetryingBackend(faulty, attempts=attempts, sleep=sleeps.append, **kw), faulty, sleeps


def _stage(backend: RetryingBackend, content: bytes) -> str:
    path = os.path.join(backend.staging_dir(), "pack-1.tmp")
    with open(path, "wb") as f:
        f.write(content)
    return path


# fault op -> a call through the wrapper
CALLS: dict[str, Callable[[RetryingBackend], object]] = {
    "get": lambda r: r.get("o"),
    "put": lambda r: r.put("o", b"new"),
    "delete": lambda r: r.delete("o"),
    "list": lambda r: r.list(""),
    "size": lambda r: r.size("o"),
    "exists": lambda r: r.exists("o"),
}


@pytest.mark.parametrize("op", list(CALLS))
def test_transient_errors_are_retried_until_the_call_succeeds(op: str) -> None:
    r, faulty, sleeps = _stack()
    faulty.put("o", b"old")
    faulty.calls.clear()
    faulty.add_fault(op).error_instead(BackendError("connection reset")).times(2)
    CALLS[op](r)
    assert [o for o, _ in faulty.calls] == [op] * 3 and len(sleeps) == 2


def test_get_range_and_put_file_are_retried_too() -> None:
    r, faulty, sleeps = _stack()
    faulty.put("o", b"0123456789")
    faulty.add_fault("get").error_instead(BackendError("timeout"))
    assert r.get_range("o", 2, 3) == b"234"
    faulty.add_fault("put").error_instead(BackendError("timeout"))
    r.put_file("p", _stage(r, b"staged"))
    assert faulty.get("p") == b"staged" and len(sleeps) == 2


def test_gives_up_after_the_last_attempt_with_its_error() -> None:
    r, faulty, sleeps = _stack(attempts=4)
    faulty.add_fault("list").error_instead(BackendError("still down")).times(-1)
    with pytest.raises(BackendError, match="still down"):
        r.list("packs/")
    assert len(faulty.calls) == 4 and len(sleeps) == 3


@pytest.mark.parametrize(
    "error", [ObjectNotFound("missing"), ObjectExists("exists"), DiskFull("full")],
    ids=["ObjectNotFound", "ObjectExists", "DiskFull"],
)
def test_answers_and_a_full_store_are_not_retried(error: Exception) -> None:
    r, faulty, sleeps = _stack()
    faulty.add_fault("put").error_instead(error)
    with pytest.raises(type(error)):
        r.put("o", b"x")
    assert len(faulty.calls) == 1 and sleeps == []
    assert not is_transient(error) and is_transient(BackendError("EIO"))


def test_backoff_doubles_up_to_the_cap() -> None:
    r, faulty, sleeps = _stack(attempts=7, base_delay=0.1, max_delay=0.5)
    faulty.add_fault("get").error_instead(BackendError("EIO")).times(-1)
    with pytest.raises(BackendError):
        r.get("o")
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5])


def test_jitter_only_shortens_the_wait() -> None:
    r = RetryingBackend(MemoryBackend(), base_delay=1.0, max_delay=4.0, jitter=0.5)
    for retry, full in [(1, 1.0), (2, 2.0), (3, 4.0), (9, 4.0)]:
        waits = [r.delay(retry) for _ in range(50)]
        assert all(full * 0.5 <= w <= full for w in waits) and len(set(waits)) > 1


def test_exclusive_put_whose_reply_was_lost_is_its_own_success() -> None:
    """Attempt 1 stores the object but reports a timeout; attempt 2 meets the object. Its bytes
    are the ones being written, so the put succeeded - no ObjectExists for our own write."""
    r, faulty, _ = _stack()
    faulty.add_fault("put").error_after(BackendError("timeout after the write"))
    r.put("audit/000000000001", b"entry 1", exclusive=True)
    assert faulty.get("audit/000000000001") == b"entry 1"
    assert [op for op, _ in faulty.calls] == ["put", "put", "get", "get"]  # last get: the assert


def test_exclusive_put_meeting_another_writers_object_raises_object_exists() -> None:
    """Attempt 1 fails before writing; while we wait another writer takes the name."""
    faulty = FaultyBackend(MemoryBackend())
    faulty.add_fault("put").error_instead(BackendError("connection reset"))
    r = RetryingBackend(faulty, jitter=0, sleep=lambda _s: faulty.inner.put("locks/x", b"theirs"))
    with pytest.raises(ObjectExists):
        r.put("locks/x", b"mine", exclusive=True)
    assert faulty.get("locks/x") == b"theirs"


def test_exclusive_put_whose_object_vanished_while_checking_raises_object_exists() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.add_fault("put").error_instead(BackendError("connection reset"))
    faulty.add_fault("get").error_instead(ObjectNotFound("deleted meanwhile"))
    r = RetryingBackend(faulty, jitter=0, sleep=lambda _s: faulty.inner.put("locks/x", b"mine"))
    with pytest.raises(ObjectExists):
        r.put("locks/x", b"mine", exclusive=True)


def test_exclusive_put_on_an_existing_object_fails_at_once() -> None:
    r, faulty, sleeps = _stack()
    faulty.put("config", b"first")
    faulty.calls.clear()
    with pytest.raises(ObjectExists):
        r.put("config", b"first", exclusive=True)  # equal bytes, but no earlier attempt: not ours
    assert faulty.calls == [("put", "config")] and sleeps == []


@pytest.mark.parametrize("lost_reply", [False, True], ids=["failed-before", "reply-lost"])
def test_put_file_retries_keep_the_staged_content(lost_reply: bool) -> None:
    r, faulty, sleeps = _stack()
    content = os.urandom(50_000)
    staged = _stage(r, content)
    fault = faulty.add_fault("put").times(2)
    error = BackendError("upload interrupted")
    (fault.error_after if lost_reply else fault.error_instead)(error)
    r.put_file("packs/p", staged)
    assert faulty.get("packs/p") == content and len(sleeps) == 2
    assert not os.path.exists(staged) and os.listdir(r.staging_dir()) == []


def test_put_file_over_a_local_backend_installs_the_staged_inode(tmp_path) -> None:
    faulty = FaultyBackend(LocalBackend(str(tmp_path / "repo")))
    faulty.add_fault("put").error_after(BackendError("fsync of the directory failed"))
    r = RetryingBackend(faulty, jitter=0, sleep=lambda _s: None)
    staged = _stage(r, b"pack bytes")
    r.put_file("packs/p", staged)
    assert r.get("packs/p") == b"pack bytes" and r.list("") == ["packs/p"]
    assert os.listdir(r.staging_dir()) == []


def test_put_file_that_gives_up_still_consumes_the_staged_file() -> None:
    r, faulty, _ = _stack(attempts=3)
    staged = _stage(r, b"pack")
    faulty.add_fault("put").error_instead(BackendError("down")).times(-1)
    with pytest.raises(BackendError):
        r.put_file("packs/p", staged)
    assert not faulty.exists("packs/p")
    assert not os.path.exists(staged) and os.listdir(r.staging_dir()) == []


def test_put_file_copies_the_staged_file_where_hard_links_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(retry_mod.os, "link", no_link)
    r, faulty, _ = _stack()
    faulty.add_fault("put").error_instead(BackendError("timeout"))
    staged = _stage(r, b"copied")
    r.put_file("packs/p", staged)
    assert faulty.get("packs/p") == b"copied" and os.listdir(r.staging_dir()) == []


def test_put_file_of_a_missing_staged_file_fails_without_retrying() -> None:
    r, faulty, sleeps = _stack()
    with pytest.raises(BackendError, match="cannot stage packs/p"):
        r.put_file("packs/p", os.path.join(r.staging_dir(), "gone.tmp"))
    assert faulty.calls == [] and sleeps == []


def test_each_retry_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    r, faulty, _ = _stack(attempts=3, base_delay=0.3)
    faulty.add_fault("delete").error_instead(BackendError("EIO")).times(2)
    with caplog.at_level(logging.WARNING, logger="drbdbackup.repo.retry"):
        r.delete("locks/1")
    assert [rec.getMessage() for rec in caplog.records] == [
        "delete locks/1 failed (EIO); retry 1 of 2 in 0.3s",
        "delete locks/1 failed (EIO); retry 2 of 2 in 0.6s",
    ]


def test_it_wraps_rather_than_replaces_the_inner_backend() -> None:
    inner = MemoryBackend()
    r = RetryingBackend(inner)
    assert r.inner is inner and r.location == inner.location
    assert r.staging_dir() == inner.staging_dir()
    r.close()
    assert not os.path.exists(inner.staging_dir())


@pytest.mark.parametrize("kw", [{"attempts": 0}, {"base_delay": -1.0}, {"jitter": 1.5}])
def test_nonsense_settings_are_refused(kw: dict) -> None:
    with pytest.raises(ValueError):
        RetryingBackend(MemoryBackend(), **kw)
