"""Lineage validity: may a previous generation's map be used? Pure rules (DESIGN section 5)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lineage:
    """Facts gathered about the parent generation and the current source.

    `None` for a fact means it does not apply to this source (e.g. no snapshot for a plain file).
    """

    parent_exists: bool
    parent_intact: bool = True
    size_now: int = 0
    size_parent: int = 0
    chunk_size_now: int = 0
    chunk_size_parent: int = 0
    parent_snapshot_exists: bool | None = None
    parent_snapshot_uuid_matches: bool | None = None
    same_placement: bool | None = None
    placement_change: str = ""
    resource_uuid_matches: bool | None = None
    volume_uuid_matches: bool | None = None
    replica_up_to_date: bool | None = None
    forced_full: bool = False
    forced_full_reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """`usable` is True when the parent map may be trusted; otherwise `reason` says why not."""

    usable: bool
    code: str
    reason: str | None


def judge(facts: Lineage) -> Verdict:
    """Apply the rules in order; the first failing rule decides."""
    if not facts.parent_exists:
        return Verdict(False, "no-parent", "no previous generation: first backup of this volume")
    if facts.forced_full:
        return Verdict(False, "forced-full", facts.forced_full_reason or "full backup requested")
    if not facts.parent_intact:
        return Verdict(False, "parent-damaged", "the previous generation's record or index is damaged")
    if facts.chunk_size_now != facts.chunk_size_parent:
        return Verdict(False, "chunk-size-changed", "the chunk size differs from the previous generation")
    if facts.size_now != facts.size_parent:
        return Verdict(
            False,
            "size-changed",
            f"volume size changed from {facts.size_parent} to {facts.size_now} bytes",
        )
    if facts.resource_uuid_matches is False:
        return Verdict(
            False,
            "resource-recreated",
            "the resource definition uuid changed (deleted and re-created, restored or rolled back)",
        )
    if facts.parent_snapshot_exists is False:
        return Verdict(False, "parent-snapshot-missing", "the previous generation's snapshot no longer exists")
    if facts.parent_snapshot_uuid_matches is False:
        return Verdict(
            False, "parent-snapshot-replaced", "the previous snapshot was replaced (uuid differs)"
        )
    if facts.same_placement is False:
        return Verdict(
            False,
            "storage-migrated",
            f"storage placement changed since the previous generation: {facts.placement_change}",
        )
    if facts.volume_uuid_matches is False:
        return Verdict(
            False,
            "volume-recreated",
            "the volume's uuid on this node changed (snapshot rollback, restore or re-creation)",
        )
    if facts.replica_up_to_date is False:
        return Verdict(False, "replica-not-uptodate", "the source replica is not UpToDate")
    return Verdict(True, "valid", None)
