"""Sandboxes for the LINSTOR end-to-end tests (one per module; each start costs ~1 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.sandbox import Sandbox, xfs_possible


def start_sandbox(workdir: Path, mode: str, token: str = "") -> Sandbox:
    """mode "xfs": XFS reflink pool on a loop device (skips when impossible);
    "plain": plain directory, no loop devices (device_path is the .img file itself);
    "auto": XFS when possible, else plain.
    LINSTOR_TEST_SANDBOX=plain forces the non-root path (no XFS, no loop devices) as root."""
    if os.environ.get("LINSTOR_TEST_SANDBOX") == "plain" and mode != "plain":
        if mode == "xfs":
            pytest.skip("XFS reflink pool disabled by LINSTOR_TEST_SANDBOX=plain")
        mode = "plain"
    if mode == "xfs":
        possible, why = xfs_possible()
        if not possible:
            pytest.skip(f"XFS reflink pool unavailable: {why}")
        sb = Sandbox(workdir, token=token, use_xfs=True, pool_size_mib=512)
    elif mode == "plain":
        sb = Sandbox(workdir, token=token, use_xfs=False, use_loop=False)
    else:
        sb = Sandbox(workdir, token=token, pool_size_mib=512)
    sb.start()
    try:
        sb.create_cluster(["node-a", "node-b"], pool="pool1")
    except BaseException:
        sb.stop()
        raise
    return sb


@pytest.fixture(scope="module")
def auto_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(tmp_path_factory.mktemp("lsb"), "auto")
    try:
        yield sb
    finally:
        sb.stop()
