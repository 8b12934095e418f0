"""tests/doubles/faulty.py: faults scripted in one call or step by step, hooks, bit flips."""

from __future__ import annotations

import pytest

from drbdbackup.errors import BackendError, DiskFull, ObjectNotFound
from tests.doubles.faulty import FaultyBackend
from tests.doubles.memory import MemoryBackend


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


def test_error_instead_fires_the_given_number_of_times_after_skips() -> None:
    f = FaultyBackend(MemoryBackend())
    fault = f.add_fault("put", r"^packs/").error_instead(BackendError("EIO")).times(2).skip(1)
    f.put("index/1", b"not matched")
    f.put("packs/1", b"skipped")
    for name in ("packs/2", "packs/3"):
        with pytest.raises(BackendError, match="EIO"):
            f.put(name, b"x")
    f.put("packs/4", b"spent")
    assert fault.hits == 2 and fault.repeat == 0
    assert sorted(f.inner.objects) == ["index/1", "packs/1", "packs/4"]


def test_error_after_performs_the_call_then_raises() -> None:
    f = FaultyBackend(MemoryBackend())
    f.add_fault("put").error_after(BackendError("reply lost"))
    with pytest.raises(BackendError, match="reply lost"):
        f.put("locks/1", b"stored anyway", exclusive=True)
    assert f.get("locks/1") == b"stored anyway"


def test_times_minus_one_fires_on_every_call() -> None:
    f = FaultyBackend(MemoryBackend())
    f.put("a", b"1")
    f.add_fault("get", "^a$").error_instead(ObjectNotFound("gone")).times(-1)
    for _ in range(5):
        with pytest.raises(ObjectNotFound):
            f.get_range("a", 0, 1)  # get_range counts as "get"


def test_hooks_run_before_and_after_the_call() -> None:
    f = FaultyBackend(MemoryBackend())
    seen: list[str] = []
    f.add_fault("delete").on_call(lambda: seen.append(f"before:{f.exists('x')}")).on_return(
        lambda: seen.append(f"after:{f.exists('x')}")
    )
    f.put("x", b"1")
    f.delete("x")
    assert seen == ["before:True", "after:False"]


def test_an_error_instead_skips_the_call_and_its_return_hook() -> None:
    f = FaultyBackend(MemoryBackend())
    seen: list[str] = []
    f.add_fault("put").error_instead(DiskFull("full")).on_return(lambda: seen.append("returned"))
    with pytest.raises(DiskFull):
        f.put("x", b"1")
    assert seen == [] and not f.exists("x")


def test_one_fault_fires_per_call_in_the_order_added() -> None:
    f = FaultyBackend(MemoryBackend())
    first = f.add_fault("list").error_instead(BackendError("first"))
    second = f.add_fault("list").error_instead(BackendError("second"))
    with pytest.raises(BackendError, match="first"):
        f.list("")
    with pytest.raises(BackendError, match="second"):
        f.list("")
    assert f.list("") == [] and (first.hits, second.hits) == (1, 1)


def test_every_operation_is_recorded_and_can_fail() -> None:
    f = FaultyBackend(MemoryBackend())
    f.put("o", b"1")
    f.get("o")
    f.size("o")
    f.exists("o")
    f.list("")
    f.delete("o")
    assert [op for op, _ in f.calls] == ["put", "get", "size", "exists", "list", "delete"]
    for op in ("size", "exists"):
        f.add_fault(op).error_instead(BackendError(op))
    with pytest.raises(BackendError):
        f.size("o")
    with pytest.raises(BackendError):
        f.exists("o")
    with pytest.raises(ValueError, match="unknown backend operation"):
        f.add_fault("get_range")
