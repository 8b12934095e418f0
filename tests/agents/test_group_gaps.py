"""Incomplete consistency groups as `list` reports them, and the lineage base a member's next
generation gets (ops/backup_member): in-process, on a stand-in repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drbdbackup.errors import IntegrityError
from drbdbackup.ops.backup_member import complete_parent, group_complete, group_gaps

A, B = "linstor.g1.0", "linstor.g2.0"


@dataclass
class Rec:
    volume_id: str
    generation: str
    snapshot: str
    group_members: list[str] | None = field(default_factory=lambda: [A, B])

    @property
    def source(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot}


class Repo:
    """generation_ids / read_record / chunk_ids, as much of a Repository as the code reads."""

    def __init__(self, *recs: Rec, broken: tuple[str, ...] = ()) -> None:
        self.recs = {(r.volume_id, r.generation): r for r in recs}
        self.broken = broken

    def generation_ids(self, vol: str) -> list[str]:
        return sorted(g for v, g in self.recs if v == vol)

    def read_record(self, vol: str, gen: str) -> Rec:
        if gen in self.broken:
            raise IntegrityError(f"record {gen} unreadable")
        return self.recs[(vol, gen)]

    def chunk_ids(self, rec: Rec) -> list[bytes]:
        return [rec.generation.encode()]


def test_a_group_missing_a_member_is_reported_with_the_member() -> None:
    repo = Repo(Rec(A, "1", "s1"), Rec(B, "1", "s1"), Rec(A, "2", "s2"), Rec(B, "3", "s3", None))
    rows = [{"snapshot": r.snapshot, "group_members": r.group_members} for r in repo.recs.values()]
    assert group_gaps(repo, rows) == {"s2": [B]}  # type: ignore[arg-type]
    assert group_gaps(repo, rows[:1]) == {}  # a filtered listing still looks at every member
    assert group_gaps(repo, [rows[2]]) == {"s2": [B]}  # type: ignore[arg-type]


def test_an_unreadable_record_counts_as_missing() -> None:
    repo = Repo(Rec(A, "1", "s1"), Rec(B, "1", "s1"), broken=("1",))
    assert group_gaps(repo, [{"snapshot": "s1", "group_members": [A, B]}]) == {"s1": [A, B]}  # type: ignore[arg-type]


def test_the_base_of_a_member_is_its_newest_complete_group_generation() -> None:
    repo = Repo(Rec(A, "1", "s1"), Rec(B, "1", "s1"), Rec(A, "2", "s2"))
    assert group_complete(repo, repo.recs[(A, "1")])  # type: ignore[arg-type]
    assert not group_complete(repo, repo.recs[(A, "2")])  # type: ignore[arg-type]
    assert complete_parent(repo, A).record is repo.recs[(A, "1")]  # type: ignore[arg-type]
    assert complete_parent(repo, B).record is repo.recs[(B, "1")]  # type: ignore[arg-type]
    only_half = Repo(Rec(A, "2", "s2"))
    assert complete_parent(only_half, A).record is None  # type: ignore[arg-type]
    assert complete_parent(Repo(Rec(A, "1", "s1", None)), A).record is not None  # type: ignore[arg-type]
