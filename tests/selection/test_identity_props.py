"""A restored copy never carries another resource's identity properties."""

from __future__ import annotations

from drbdbackup.linstor.identity_props import is_identity, without_identity


def test_identity_properties_are_left_out_and_named() -> None:
    props = {
        "Aux/pm/vmid": "101", "Aux/csi-volume-annotations": "{}", "Aux/cs/volume-uuid": "x",
        "Aux/drbdbackup/policy": "vms", "Aux/incus/volatile.uuid": "y", "Aux/owner": "team-a",
        "DrbdOptions/Net/protocol": "C", "Aux/app": "db",
    }
    kept, left = without_identity(props)
    assert kept == {"Aux/owner": "team-a", "DrbdOptions/Net/protocol": "C", "Aux/app": "db"}
    assert left == sorted(set(props) - set(kept))
    assert not is_identity("Aux/label") and is_identity("Aux/some-uuid")
