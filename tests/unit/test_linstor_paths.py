"""Where LINSTOR keeps snapshot data, per provider kind (NOTES section 3)."""

from __future__ import annotations

import pytest

from drbdbackup.errors import UsageError
from drbdbackup.linstor.paths import snapshot_data_path, volume_data_path


@pytest.mark.parametrize(
    "kind,backing,expected",
    [
        ("FILE_THIN", "/var/lib/linstor-pool/", "/var/lib/linstor-pool/vm1_00002_snap.img"),
        ("FILE", "/pool", "/pool/vm1_00002_snap.img"),
        ("LVM_THIN", "vg0/thinpool", "/dev/vg0/vm1_00002_snap"),
        ("ZFS", "tank/linstor", "/dev/zvol/tank/linstor/vm1_00002@snap"),
        ("ZFS_THIN", "tank", "/dev/zvol/tank/vm1_00002@snap"),
    ],
)
def test_snapshot_paths(kind: str, backing: str, expected: str) -> None:
    assert snapshot_data_path(kind, backing, "vm1", 2, "snap") == expected


def test_volume_paths() -> None:
    assert volume_data_path("FILE_THIN", "/p", "r", 0) == "/p/r_00000.img"
    assert volume_data_path("LVM_THIN", "vg/tp", "r", 1) == "/dev/vg/r_00001"


@pytest.mark.parametrize("kind", ["LVM", "SPDK", "DISKLESS", "EBS_TARGET", "EXOS"])
def test_unreadable_provider_kinds_are_a_usage_error(kind: str) -> None:
    with pytest.raises(UsageError, match="cannot be read"):
        snapshot_data_path(kind, "x", "r", 0, "s")
