"""A cycle taken over late never commits after a later cycle of the same key (its generation
would hold older data than the newest one): docs/format.md 16.3 steps 4 and 6. In-process, on a
local directory backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from drbdbackup.cluster import names as N
from drbdbackup.cluster.errors import Fenced
from drbdbackup.cluster.names import ClusterKey
from tests.cluster.helpers import ManualClock, MtimeLocalBackend, coordinator

KEY = ClusterKey.resource("ca1")
K = 1_800_000_000


def _pair(tmp_path: Path):  # noqa: ANN202
    backend = MtimeLocalBackend(str(tmp_path / "repo"), durable=False)
    a, b = coordinator(backend, "a", ManualClock()), coordinator(backend, "b", ManualClock())
    a.start()
    b.start()
    return backend, a, b


def test_no_claim_of_a_cycle_older_than_the_newest_commit(tmp_path: Path) -> None:
    _backend, a, b = _pair(tmp_path)
    newer = b.try_claim(KEY, K + 60, 0)
    assert newer is not None
    b.commit(newer, "gen-new")
    assert a.try_claim(KEY, K, 0) is None  # too late for cycle K
    assert a.try_claim(KEY, K + 120, 0) is not None  # a later cycle is fine


def test_a_late_commit_is_withdrawn_after_its_create(tmp_path: Path) -> None:
    backend, a, b = _pair(tmp_path)
    late = a.try_claim(KEY, K, 0)
    newer = b.try_claim(KEY, K + 60, 0)
    assert late is not None and newer is not None
    b.commit(newer, "gen-new")  # while `late` still reads
    with pytest.raises(Fenced, match="comes too late: cycle 1800000060 is committed"):
        a.commit(late, "gen-old")
    assert not backend.exists(N.commit_name(KEY, K))
    assert backend.exists(N.commit_name(KEY, K + 60))
    assert backend.exists(N.release_name(KEY, K, 0))  # over: a group's members abandon it
    with pytest.raises(Fenced):  # and stays refused
        a.commit(late, "gen-old")
    assert b.try_claim(KEY, K, 0) is None  # nobody takes the old cycle up again
