"""Native change maps of the storage: reflink extents (FILE*) and thin_delta (LVM_THIN).

`native_offer` never raises for an unavailable map: it says why there is none, so the plan can
record the reason instead of silently falling back.
"""

from __future__ import annotations

from dataclasses import dataclass

from drbdbackup.tracking.changemap import positions_for_ranges
from drbdbackup.tracking.plan import NativeMap, NativeOffer, Tracker
from drbdbackup.tracking.reflink import FiemapUnsupported, changed_ranges, fiemap, shared_bytes
from drbdbackup.tracking.thindelta import (
    ThinDeltaError,
    reserved_metadata_snapshot,
    run_thin_delta,
    thin_delta_map,
    thin_id,
)

REFLINK_KINDS = ("FILE", "FILE_THIN")


@dataclass(frozen=True)
class SnapshotPair:
    """The previous and the current snapshot of one volume, as the storage names them."""

    provider_kind: str
    backing_object: str  # FILE*: the pool directory; LVM_THIN: "vg/thinpool"
    resource: str
    volume_number: int
    usable_bytes: int
    parent_snapshot: str | None
    parent_path: str | None  # None when the parent snapshot's data is gone
    snapshot: str
    path: str


def native_offer(requested: Tracker, pair: SnapshotPair, chunk_size: int) -> NativeOffer:
    """The storage's change map between the two snapshots, or why there is none."""
    kind, size = pair.provider_kind, pair.usable_bytes
    if requested in (Tracker.CHECKSUM, Tracker.FULL):
        return NativeOffer(unavailable=f"{requested.value} requested")
    if kind in REFLINK_KINDS:
        if requested is Tracker.THIN_DELTA:
            return NativeOffer(unavailable=f"thin_delta needs LVM_THIN, this pool is {kind}")
        if pair.parent_path is None or pair.parent_snapshot is None:
            return NativeOffer(unavailable="the previous snapshot's data is not available")
        try:
            old, new = fiemap(pair.parent_path), fiemap(pair.path)
        except FiemapUnsupported as exc:
            return NativeOffer(unavailable=f"FIEMAP unsupported: {exc}")
        if not shared_bytes(old, new, size):
            return NativeOffer(unavailable="the snapshots share no extents (no reflink on this "
                               "filesystem)")
        ranges = changed_ranges(old, new, size)
        return NativeOffer(NativeMap(Tracker.REFLINK, frozenset(
            positions_for_ranges(ranges, chunk_size, size))))
    if kind == "LVM_THIN":
        if requested is Tracker.REFLINK:
            return NativeOffer(unavailable="reflink needs a FILE/FILE_THIN pool, this pool is LVM_THIN")
        if pair.parent_path is None or pair.parent_snapshot is None:
            return NativeOffer(unavailable="the previous snapshot's data is not available")
        if "/" not in pair.backing_object:
            return NativeOffer(unavailable=f"LVM_THIN pool {pair.backing_object!r} is not vg/pool")
        vg, pool = pair.backing_object.split("/", 1)
        base = f"{pair.resource}_{pair.volume_number:05d}"
        try:
            with reserved_metadata_snapshot(vg, pool) as tmeta:
                delta = run_thin_delta(
                    tmeta, thin_id(f"{vg}/{base}_{pair.parent_snapshot}"),
                    thin_id(f"{vg}/{base}_{pair.snapshot}"), metadata_snap=True,
                )
        except (ThinDeltaError, OSError) as exc:
            return NativeOffer(unavailable=f"thin_delta failed: {exc}")
        return NativeOffer(NativeMap(Tracker.THIN_DELTA, frozenset(
            thin_delta_map(delta, size, chunk_size))))
    return NativeOffer(unavailable=f"native map unavailable on this pool ({kind})")
