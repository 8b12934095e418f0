"""Lineage invalidation (DESIGN section 5): each cause forces a full backup with a reason that
names it, the data still restores byte-identical, and the next backup is incremental again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures import workload
from fixtures.sandbox import Sandbox
from tests.helpers import files_equal, run_cli
from tests.linstor.lsupport import (
    Ctx,
    MiB,
    changed_bytes_for,
    expected_tracker,
    read_range,
    save_copy,
)

SIZE = 6 * MiB


@pytest.fixture(scope="module")
def ctx(auto_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Ctx:
    """One repository for the module; every case has its own resource (volume ids differ)."""
    return Ctx(auto_sandbox, tmp_path_factory.mktemp("lineage") / "repo").init()


def _delete_snapshot(keep_definition: bool) -> Callable[[Ctx, str, str], None]:
    def cause(c: Ctx, rsc: str, snap: str) -> None:
        c.sb.action("delete_snapshot_out_of_band", resource=rsc, snapshot=snap,
                    keep_definition=keep_definition)
    return cause


def _recreate(c: Ctx, rsc: str, snap: str) -> None:
    c.sb.action("recreate_resource_definition", resource=rsc, keep_data=True)


def _resize(c: Ctx, rsc: str, snap: str) -> None:
    c.sb.action("resize_volume", resource=rsc, volume_number=0, size_kib=(SIZE + 2 * MiB) // 1024)


def _outdate(c: Ctx, rsc: str, snap: str) -> None:
    c.sb.action("set_disk_state", resource=rsc, node="node-a", disk_state="Outdated")


def _heal(c: Ctx, rsc: str) -> None:
    c.sb.action("set_disk_state", resource=rsc, node="node-a", disk_state="UpToDate")


def _rollback(c: Ctx, rsc: str, snap: str) -> None:
    """Roll the resource back to our own snapshot: the definition keeps its uuid."""
    with c.sb.session() as lin:
        replies = lin.snapshot_rollback(rsc, snap)
        assert not any(r.is_error() for r in replies), replies


# (cause, map_validity, words the fallback_reason must contain, undo before the next backup)
CASES = {
    "snapshot-deleted": (_delete_snapshot(False), "parent-snapshot-missing", ["snapshot"], None),
    "snapshot-files-deleted": (_delete_snapshot(True), "parent-snapshot-missing", ["snapshot"], None),
    "resource-recreated": (_recreate, "resource-recreated", ["uuid"], None),
    "volume-resized": (_resize, "size-changed", ["size"], None),
    "replica-outdated": (_outdate, "replica-not-uptodate", ["UpToDate"], _heal),
    "snapshot-rollback": (_rollback, "volume-recreated", ["rollback"], None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lineage_invalidation_forces_full_then_incremental(
    case: str, ctx: Ctx, auto_sandbox: Sandbox, tmp_path: Path
) -> None:
    cause, validity, words, undo = CASES[case]
    sb = auto_sandbox
    rsc = "ln" + case.replace("-", "")[:20]
    vid = f"linstor.{rsc}.0"
    sb.create_resource(rsc, [SIZE], nodes=["node-a"])
    ctx.add_diskless(rsc, "node-b")  # node-a stays the only diskful replica
    dev, usable, _b = ctx.device(rsc)
    workload.sequential_run(dev, 0, 3 * MiB, seed=1)

    (first,) = ctx.backup(rsc)
    assert first["mode"] == "full" and first["fallback_reason"] is None
    snap = ctx.assert_only_newest_snapshot(rsc, [first])

    cause(ctx, rsc, snap)
    dev, usable, _b = ctx.device(rsc)  # the size may have changed
    workload.scattered_writes(dev, 3, seed=2, size=usable)
    (second,) = ctx.backup(rsc)
    assert second["mode"] == "full", second
    assert second["tracker"] == "full"
    assert second["map_validity"] == validity, second
    reason = second["fallback_reason"] or ""
    assert all(w.lower() in reason.lower() for w in words), reason
    assert second["parent"] is None
    assert second["size_bytes"] == usable
    ctx.assert_only_newest_snapshot(rsc, [second])
    at_second = save_copy(dev, usable, tmp_path / "second.img")
    listed = run_cli("list", "--repo", str(ctx.repo), "--volume-id", vid, "--json").stdout
    assert second["fallback_reason"] in listed  # the reason is recorded with the generation

    if undo is not None:
        undo(ctx, rsc)
    touched = workload.scattered_writes(dev, 2, seed=3, size=usable)
    (third,) = ctx.backup(rsc)
    assert third["mode"] == "incremental", third
    assert third["fallback_reason"] is None and third["parent"] == second["generation"]
    if sb.mounted:
        assert third["tracker"] == expected_tracker(sb)
    assert third["changed_bytes"] == changed_bytes_for(touched, usable)
    ctx.assert_only_newest_snapshot(rsc, [third])

    # the fallback generation and the incremental on top of it restore byte-identical
    out = tmp_path / "restored-second.img"
    run_cli("restore", "--repo", str(ctx.repo), "--volume-id", vid, "--generation",
            second["generation"], "--target", str(out))
    assert files_equal(out, at_second)
    ctx.restore(vid, f"{rsc}r")
    rdev, rusable, _rb = ctx.device(f"{rsc}r")
    assert rusable == usable
    assert read_range(rdev, usable) == read_range(dev, usable)


def test_backup_of_one_volume_selects_only_that_volume(ctx: Ctx, auto_sandbox: Sandbox) -> None:
    auto_sandbox.create_resource("lnsel", [2 * MiB, 2 * MiB], nodes=["node-a"])
    assert [r["mode"] for r in ctx.backup("lnsel")] == ["full", "full"]
    (only,) = ctx.backup("lnsel", extra=["--volume-nr", "1"])
    assert only["volume_id"] == "linstor.lnsel.1" and only["mode"] == "incremental"


def test_backup_of_one_volume_keeps_the_other_volumes_lineage(ctx: Ctx, auto_sandbox: Sandbox) -> None:
    auto_sandbox.create_resource("lnkeep", [2 * MiB, 2 * MiB], nodes=["node-a"])
    ctx.backup("lnkeep")
    ctx.backup("lnkeep", extra=["--volume-nr", "1"])
    results = ctx.backup("lnkeep")
    assert [(r["volume_id"], r["mode"], r["fallback_reason"]) for r in results] == [
        ("linstor.lnkeep.0", "incremental", None), ("linstor.lnkeep.1", "incremental", None)]


def test_checksum_every_bounds_native_map_chains(ctx: Ctx, auto_sandbox: Sandbox) -> None:
    """With --checksum-every 3, at most two native-map generations follow each other; the third
    reads everything (checksum) and says why; restores stay byte-identical."""
    if not auto_sandbox.mounted:
        pytest.skip("needs the XFS reflink pool (root + mkfs.xfs) for native maps")
    info = auto_sandbox.create_resource("lnchk", [4 * MiB], nodes=["node-a"])
    dev = info.volumes[("node-a", 0)].device_path
    trackers, reasons = [], []
    for i in range(5):
        with open(dev, "r+b") as f:
            f.seek(i * 65536)
            f.write(bytes([i + 1]) * 4096)
        (res,) = ctx.backup("lnchk", extra=["--checksum-every", "3"])
        trackers.append(res["tracker"])
        reasons.append(res["fallback_reason"])
    assert trackers == ["full", "reflink", "reflink", "checksum", "reflink"], trackers
    assert "periodic checksum read" in reasons[3] and reasons[4] is None
