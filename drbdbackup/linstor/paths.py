"""Where LINSTOR keeps a snapshot's data, per provider kind (NOTES section 3). Pure."""

from __future__ import annotations

from drbdbackup.errors import UsageError

READABLE_KINDS = ("FILE", "FILE_THIN", "LVM_THIN", "ZFS", "ZFS_THIN")


def volume_object_name(rsc: str, vnr: int) -> str:
    """`<rsc>_<vnr:05d>`, as LINSTOR's FORMAT_RSC_TO_LVM_ID."""
    return f"{rsc}_{vnr:05d}"


def snapshot_data_path(kind: str, backing_object: str, rsc: str, vnr: int, snapshot: str) -> str:
    """The path a satellite exposes the snapshot's bytes at (data first, DRBD metadata at the end)."""
    base = volume_object_name(rsc, vnr)
    if kind in ("FILE", "FILE_THIN"):
        return f"{backing_object.rstrip('/')}/{base}_{snapshot}.img"
    if kind == "LVM_THIN":
        vg = backing_object.split("/", 1)[0]
        return f"/dev/{vg}/{base}_{snapshot}"
    if kind in ("ZFS", "ZFS_THIN"):
        return f"/dev/zvol/{backing_object}/{base}@{snapshot}"
    raise UsageError(
        f"provider kind {kind} cannot be read by drbdbackup (readable: {', '.join(READABLE_KINDS)})"
    )


def volume_data_path(kind: str, backing_object: str, rsc: str, vnr: int) -> str:
    """The path of the live volume's backing object."""
    base = volume_object_name(rsc, vnr)
    if kind in ("FILE", "FILE_THIN"):
        return f"{backing_object.rstrip('/')}/{base}.img"
    if kind == "LVM_THIN":
        return f"/dev/{backing_object.split('/', 1)[0]}/{base}"
    if kind in ("ZFS", "ZFS_THIN"):
        return f"/dev/zvol/{backing_object}/{base}"
    raise UsageError(f"provider kind {kind} is not supported")
