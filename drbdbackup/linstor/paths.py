"""Where LINSTOR keeps a snapshot's data, per provider kind (NOTES section 3). Pure.

Every name a path is built from is checked first (issue 20): a resource or snapshot name with
'/', '..' or NUL, a backing object with a '..' component or NUL, or a negative volume number is
refused (UnsafeName), so no path leaves the pool it names."""

from __future__ import annotations

from drbdbackup.errors import UsageError
from drbdbackup.linstor.model import ReplyError, safe_backing_object, safe_name, size_value

READABLE_KINDS = ("FILE", "FILE_THIN", "LVM_THIN", "ZFS", "ZFS_THIN")


class UnsafeName(UsageError):
    """A name that would make a snapshot path leave its pool."""


def _checked(backing_object: str, rsc: str, vnr: int, snapshot: str | None = None) -> None:
    try:
        safe_name("resource name", rsc)
        size_value("volume number", vnr)
        safe_backing_object("backing object", backing_object)
        if snapshot is not None:
            safe_name("snapshot name", snapshot)
    except ReplyError as exc:
        raise UnsafeName(f"refusing to build a snapshot path: {exc}") from None


def volume_object_name(rsc: str, vnr: int) -> str:
    """`<rsc>_<vnr:05d>`, as LINSTOR's FORMAT_RSC_TO_LVM_ID."""
    return f"{rsc}_{vnr:05d}"


def snapshot_data_path(kind: str, backing_object: str, rsc: str, vnr: int, snapshot: str) -> str:
    """The path a satellite exposes the snapshot's bytes at (data first, DRBD metadata at the end)."""
    _checked(backing_object, rsc, vnr, snapshot)
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
    _checked(backing_object, rsc, vnr)
    base = volume_object_name(rsc, vnr)
    if kind in ("FILE", "FILE_THIN"):
        return f"{backing_object.rstrip('/')}/{base}.img"
    if kind == "LVM_THIN":
        return f"/dev/{backing_object.split('/', 1)[0]}/{base}"
    if kind in ("ZFS", "ZFS_THIN"):
        return f"/dev/zvol/{backing_object}/{base}"
    raise UsageError(f"provider kind {kind} is not supported")
