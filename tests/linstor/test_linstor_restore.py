"""Consistency groups and restore --to-resource onto new and existing resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import workload
from fixtures.sandbox import Sandbox
from tests.linstor.lsupport import (
    Ctx,
    MiB,
    assert_metadata_tail_intact,
    assert_one_error_line,
    changed_bytes_for,
    expected_tracker,
    read_range,
    save_copy,
)


@pytest.fixture
def ctx(auto_sandbox: Sandbox, tmp_path: Path) -> Ctx:
    return Ctx(auto_sandbox, tmp_path / "repo").init()


@pytest.fixture(scope="module")
def backed_up(auto_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Resource `src` (4 MiB, node-a) backed up once; its content saved to `copy`."""
    work = tmp_path_factory.mktemp("restore")
    c = Ctx(auto_sandbox, work / "repo").init()
    auto_sandbox.create_resource("src", [4 * MiB], nodes=["node-a"])
    dev, usable, _b = c.device("src")
    workload.sequential_run(dev, 0, usable, seed=41)
    c.backup("src")
    return {"ctx": c, "usable": usable, "copy": save_copy(dev, usable, work / "src.img")}


def test_consistency_group_of_three_resources(ctx: Ctx, auto_sandbox: Sandbox, tmp_path: Path) -> None:
    sb = auto_sandbox
    names = ["cga", "cgb", "cgc"]
    for i, name in enumerate(names):
        sb.create_resource(name, [(2 + i) * MiB], nodes=["node-a"])
        dev, usable, _b = ctx.device(name)
        workload.sequential_run(dev, 0, usable, seed=20 + i)

    def group_backup(tag: str) -> tuple[list[dict], str]:
        results = ctx.backup(*names)
        assert sorted(r["volume_id"] for r in results) == [f"linstor.{n}.0" for n in names]
        snaps = {k: v for k, v in ctx.snapshots().items() if k in names}
        assert sorted(snaps) == names, snaps
        shared = {tuple(v) for v in snaps.values()}
        assert len(shared) == 1 and len(next(iter(shared))) == 1, f"one shared snapshot name: {snaps}"
        name = snaps[names[0]][0]
        for r in results:
            src = ctx.record_source(r["volume_id"], r["generation"])
            assert src["snapshot"] == name
            assert src["consistency_group"] == names
        for n in names:
            dev, usable, _b = ctx.device(n)
            save_copy(dev, usable, tmp_path / f"{tag}-{n}.img")
        return results, name

    first, snap1 = group_backup("g1")
    assert all(r["mode"] == "full" for r in first)
    touched = {}
    for i, n in enumerate(names):
        dev, usable, _b = ctx.device(n)
        touched[n] = workload.scattered_writes(dev, 1 + i, seed=30 + i, size=usable)
    second, snap2 = group_backup("g2")
    assert snap2 != snap1
    for r in second:
        n = r["volume_id"].split(".")[1]
        assert r["mode"] == "incremental", r
        if sb.mounted:
            assert r["tracker"] == expected_tracker(sb), r
        assert r["changed_bytes"] == changed_bytes_for(touched[n], ctx.device(n)[1])
    for n in names:
        ctx.restore(f"linstor.{n}.0", f"{n}-r")
        dev, usable, _b = ctx.device(f"{n}-r")
        assert read_range(dev, usable) == (tmp_path / f"g2-{n}.img").read_bytes()
    ctx.check()


def test_consistency_group_across_nodes(ctx: Ctx, auto_sandbox: Sandbox) -> None:
    auto_sandbox.create_resource("cgx", [2 * MiB], nodes=["node-a"])
    auto_sandbox.create_resource("cgy", [2 * MiB], nodes=["node-b"])
    proc = ctx.backup_proc("cgx", "cgy")
    assert proc.returncode == 0, proc.stderr
    snaps = ctx.snapshots()
    assert snaps["cgx"] == snaps["cgy"] and len(snaps["cgx"]) == 1


def test_restore_onto_existing_resource_needs_force(backed_up: dict, auto_sandbox: Sandbox) -> None:
    c: Ctx = backed_up["ctx"]
    usable = backed_up["usable"]
    auto_sandbox.create_resource("busy", [usable], nodes=["node-a"])
    dev, busy_usable, backing = c.device("busy")
    assert busy_usable == usable
    workload.sequential_run(dev, 0, usable, seed=99)
    before = read_range(dev, usable)

    proc = c.restore_proc("linstor.src.0", "busy")
    line = assert_one_error_line(proc, 2)
    assert "--force" in line
    assert read_range(dev, usable) == before, "the existing resource's data was touched"

    c.restore("linstor.src.0", "busy", "--force")
    assert c.device("busy")[0] == dev
    assert read_range(dev, usable) == backed_up["copy"].read_bytes()
    assert_metadata_tail_intact(backing, usable)


def test_restore_force_onto_smaller_resource_is_refused_untouched(backed_up: dict, auto_sandbox: Sandbox) -> None:
    c: Ctx = backed_up["ctx"]
    auto_sandbox.create_resource("small", [2 * MiB], nodes=["node-a"])
    dev, usable, _b = c.device("small")
    workload.sequential_run(dev, 0, usable, seed=98)
    before = read_range(dev, usable)
    proc = c.restore_proc("linstor.src.0", "small", "--force")
    assert_one_error_line(proc, 2)
    assert read_range(dev, usable) == before
    assert c.resource_exists("small")  # an existing resource is never deleted on failure


def test_restore_to_other_node(backed_up: dict) -> None:
    c: Ctx = backed_up["ctx"]
    out = c.restore("linstor.src.0", "onb", "--node", "node-b", "--storage-pool", "pool1")
    assert "node-b" in out["target"]
    dev, usable, _b = c.device("onb", "node-b")
    assert read_range(dev, usable) == backed_up["copy"].read_bytes()


def test_failed_restore_removes_the_resource_it_created(backed_up: dict, auto_sandbox: Sandbox) -> None:
    c: Ctx = backed_up["ctx"]
    auto_sandbox.set_faults(error_routes=[r"^GET /v1/view/resources"])  # after the resource is created
    try:
        proc = c.restore_proc("linstor.src.0", "halfmade")
    finally:
        auto_sandbox.set_faults(reset=True)
    assert_one_error_line(proc, 3)
    assert not c.resource_exists("halfmade")


def test_restore_unknown_volume_creates_nothing(backed_up: dict) -> None:
    c: Ctx = backed_up["ctx"]
    proc = c.restore_proc("linstor.nosuch.0", "ghost")
    assert_one_error_line(proc, 2)
    assert not c.resource_exists("ghost")


def test_restore_into_volume_number(backed_up: dict) -> None:
    c: Ctx = backed_up["ctx"]
    c.restore("linstor.src.0", "vnr3", "--volume-nr", "3")
    vols = c.sb.resource_info("vnr3").volumes
    assert list(vols) == [("node-a", 3)]
    vol = vols[("node-a", 3)]
    assert vol.usable_bytes == backed_up["usable"]
    assert read_range(vol.device_path, vol.usable_bytes) == backed_up["copy"].read_bytes()
