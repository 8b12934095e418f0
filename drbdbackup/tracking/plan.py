"""The one place that decides how a generation is read: mode, tracker and why (pure).

Inputs are facts (lineage, the native map the storage offered or why it offered none, whether a
periodic checksum read is due); the output is a `BackupPlan` the pipeline executes. A native map
that fails its spot check turns into a full read here too (`after_spot_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from drbdbackup.tracking.validity import Lineage, judge


class Tracker(StrEnum):
    """How a change map is obtained (DESIGN section 5); AUTO lets the plan choose."""

    AUTO = "auto"
    CHECKSUM = "checksum"
    REFLINK = "reflink"
    THIN_DELTA = "thin-delta"
    FULL = "full"

    @property
    def native(self) -> bool:
        return self in (Tracker.REFLINK, Tracker.THIN_DELTA)


class Mode(StrEnum):
    """A full generation trusts nothing; an incremental one trusts its parent's map."""

    FULL = "full"
    INCREMENTAL = "incremental"


def parse_tracker(text: str) -> Tracker:
    """'reflink' -> Tracker.REFLINK; ValueError names the choices."""
    try:
        return Tracker(text)
    except ValueError:
        raise ValueError(
            f"unknown tracker {text!r}: use one of {', '.join(t.value for t in Tracker)}"
        ) from None


@dataclass(frozen=True)
class NativeMap:
    """A change map from the storage (reflink extents, thin_delta): chunk positions that changed."""

    tracker: Tracker
    positions: frozenset[int]


@dataclass(frozen=True)
class NativeOffer:
    """What the storage offered: a map, or the reason there is none (None: not applicable)."""

    map: NativeMap | None = None
    unavailable: str | None = None


@dataclass(frozen=True)
class BackupPlan:
    """What the pipeline reads and what the generation record says about it.

    `positions` is None for a read of every chunk; otherwise the chunks a native map calls
    changed (the pipeline adds a spot-check sample of the rest).
    """

    mode: Mode
    tracker: Tracker
    positions: frozenset[int] | None
    map_validity: str
    fallback_reason: str | None
    tracker_reason: str


class TrackerUnavailable(ValueError):
    """An explicitly requested native tracker cannot be used for this source."""


def periodic_checksum_due(native_streak: int, every: int) -> bool:
    """True when the next native generation would exceed `every - 1` native ones in a row."""
    return every > 0 and native_streak >= every - 1


def plan_backup(
    requested: Tracker,
    lineage: Lineage,
    offer: NativeOffer | None = None,
    *,
    periodic_streak: int = 0,
    checksum_every: int = 0,
) -> BackupPlan:
    """Decide mode, tracker and the reasons from the facts (DESIGN section 5).

    `offer` None means the source has no native tracking at all (a plain file): asking for a
    native tracker then is a usage error. A source that could offer one but did not this time
    (`offer.unavailable`) falls back to the checksum diff and says why.
    """
    if requested is Tracker.FULL:
        lineage = replace(lineage, forced_full=True,
                          forced_full_reason="full backup requested (--tracker full)")
    verdict = judge(lineage)
    if not verdict.usable:
        reason = verdict.reason or verdict.code
        fallback = None if verdict.code in ("no-parent", "forced-full") else reason
        return BackupPlan(Mode.FULL, Tracker.FULL, None, verdict.code, fallback, reason)
    if requested.native and offer is None:
        raise TrackerUnavailable(f"tracker {requested.value} is not available for this source")
    offer = offer or NativeOffer()
    native = offer.map
    if native is not None and requested is Tracker.AUTO and periodic_checksum_due(
        periodic_streak, checksum_every
    ):
        reason = (
            f"periodic checksum read: {periodic_streak} {native.tracker.value} generations in a "
            f"row (--checksum-every {checksum_every}) bound silent drift of native maps"
        )
        return BackupPlan(Mode.INCREMENTAL, Tracker.CHECKSUM, None, verdict.code, reason, reason)
    if native is not None and requested in (Tracker.AUTO, native.tracker):
        return BackupPlan(Mode.INCREMENTAL, native.tracker, native.positions, verdict.code, None,
                          f"{native.tracker.value} map of the storage, lineage valid")
    if requested is Tracker.CHECKSUM:
        why = "checksum diff requested (--tracker checksum)"
    elif offer.unavailable:
        why = f"native map unavailable: {offer.unavailable}; checksum diff"
    else:
        why = "no native map for this source; checksum diff against the previous generation"
    return BackupPlan(Mode.INCREMENTAL, Tracker.CHECKSUM, None, verdict.code, None, why)


def after_spot_check(plan: BackupPlan, bad: list[int], sampled: int) -> BackupPlan:
    """A native map whose spot check found a changed chunk it called unchanged: read everything."""
    if not bad:
        return plan
    reason = (
        f"{plan.tracker.value} map failed its spot check: chunk {bad[0]} changed but the map "
        f"called it unchanged ({len(bad)} of {sampled} sampled); full read"
    )
    return BackupPlan(Mode.FULL, Tracker.FULL, None, "spot-check-failed", reason, reason)
