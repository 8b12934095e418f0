"""Waiting for a snapshot that is deleted meanwhile (or whose resource is) fails within seconds,
naming it, instead of at the 120 s timeout (a cluster agent stopped mid-claim while an operator
deleted the resource held its job that long)."""

from __future__ import annotations

import time

import pytest

from drbdbackup.linstor.client import ControllerError, ControllerSettings
from fixtures.sandbox import Sandbox


def test_a_snapshot_deleted_while_waited_for_fails_fast(auto_sandbox: Sandbox) -> None:
    auto_sandbox.create_resource("waited", [1 << 20], nodes=["node-a"])
    with ControllerSettings(auto_sandbox.controllers).connect() as ctl:
        ctl.create_snapshot(["waited"], "s1", {"waited": ["node-a"]})
        assert ctl.wait_successful(["waited"], "s1")["waited"].successful
        ctl.delete_snapshot("waited", "s1")
        t0 = time.monotonic()
        with pytest.raises(ControllerError, match="snapshot s1 of waited is gone"):
            ctl.wait_successful(["waited"], "s1", gone_after_s=1)
        assert time.monotonic() - t0 < 10
