"""Done-when for LINSTOR: full + incremental backup of a two-volume resource, byte-identical
restores into new resources, DRBD metadata never backed up, consistency groups, and proof
that the client really spoke python-linstor to the (emulated) controller.

Runs twice: on an XFS reflink pool with loop devices (root only; tracker reflink) and on a
plain directory where ``device_path`` is the ``.img`` file (tracker checksum).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import workload
from fixtures.sandbox import Sandbox
from tests.helpers import files_equal, run_cli
from tests.linstor.conftest import start_sandbox
from tests.linstor.lsupport import (
    CHUNK,
    SNAP_RE,
    Ctx,
    KiB,
    MiB,
    assert_metadata_tail_intact,
    assert_no_metadata,
    changed_bytes_for,
    read_range,
    save_copy,
)

SIZES = [40 * MiB, 3 * MiB + 12 * KiB]  # volume 1 ends in a short (12 KiB) chunk
DATA0 = 12 * MiB  # volume 0: random data here, zeros (thin) after


@pytest.fixture(scope="module", params=["xfs", "plain"])
def sb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp(f"bk-{request.param}"), request.param)
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def ctx(sb: Sandbox, tmp_path: Path) -> Ctx:
    return Ctx(sb, tmp_path / "repo").init()


@pytest.fixture(scope="module")
def two_volume(sb: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The done-when scenario, run once per sandbox; the tests below check its pieces."""
    work = tmp_path_factory.mktemp("dw")
    c = Ctx(sb, work / "repo").init()
    rsc = "dw"
    sb.create_resource(rsc, SIZES, nodes=["node-a"])
    c.add_diskless(rsc, "node-b")  # a diskless replica must never be chosen as the source
    vols = {vnr: c.device(rsc, "node-a", vnr) for vnr in range(len(SIZES))}
    for vnr, (_dev, usable, backing) in vols.items():
        assert usable == -(-SIZES[vnr] // 4096) * 4096
        assert_metadata_tail_intact(backing, usable)  # the tail the backup must not contain
    workload.sequential_run(vols[0][0], 0, DATA0, seed=1)
    workload.fill(vols[1][0], size=vols[1][1], seed=2)  # mixed: random, zero, text

    out: dict = {"ctx": c, "rsc": rsc, "vols": vols, "copies": {}, "snaps": []}
    out["gen1"] = c.backup(rsc)
    out["snaps"].append(c.assert_only_newest_snapshot(rsc, out["gen1"]))
    out["list1"] = c.generations()
    for vnr, (dev, usable, _b) in vols.items():
        out["copies"][(1, vnr)] = save_copy(dev, usable, work / f"gen1-v{vnr}.img")

    touched: dict[int, list[tuple[int, int]]] = {}
    dev0, usable0, _ = vols[0]
    touched[0] = workload.scattered_writes(dev0, 12, seed=5, size=usable0)
    touched[0] += workload.zero_range(dev0, 0, 64 * KiB)  # chunk 0 holds random data
    dev1, usable1, _ = vols[1]
    touched[1] = workload.scattered_writes(dev1, 2, seed=6, size=usable1)
    touched[1] += workload.sequential_run(dev1, usable1 - 4 * KiB, 4 * KiB, seed=7)  # short tail chunk
    out["touched"] = touched

    out["gen2"] = c.backup(rsc)
    out["snaps"].append(c.assert_only_newest_snapshot(rsc, out["gen2"]))
    for vnr, (dev, usable, _b) in vols.items():
        out["copies"][(2, vnr)] = save_copy(dev, usable, work / f"gen2-v{vnr}.img")
    return out


def _by_vnr(results: list[dict], rsc: str) -> dict[int, dict]:
    out = {int(r["volume_id"].rsplit(".", 1)[1]): r for r in results}
    assert sorted(r["volume_id"] for r in results) == [f"linstor.{rsc}.{v}" for v in sorted(out)]
    return out


def test_full_backup_of_both_volumes(two_volume: dict) -> None:
    gen1 = _by_vnr(two_volume["gen1"], two_volume["rsc"])
    assert sorted(gen1) == [0, 1]
    for vnr, r in gen1.items():
        usable = two_volume["vols"][vnr][1]
        assert r["mode"] == "full" and r["tracker"] == "full"
        assert r["fallback_reason"] is None and r["map_validity"] == "no-parent"
        # clipped at the DRBD usable size: the metadata tail is neither read nor stored
        assert r["size_bytes"] == usable
        assert r["read_bytes"] == usable
        assert r["chunk_count"] == -(-usable // CHUNK)
    assert len(two_volume["list1"]) == 2


def test_incremental_changed_bytes_are_the_touched_chunks(two_volume: dict, sb: Sandbox) -> None:
    gen1 = _by_vnr(two_volume["gen1"], two_volume["rsc"])
    gen2 = _by_vnr(two_volume["gen2"], two_volume["rsc"])
    for vnr, r in gen2.items():
        usable = two_volume["vols"][vnr][1]
        touched = two_volume["touched"][vnr]
        chunks = workload.touched_chunks(touched, CHUNK)
        assert r["mode"] == "incremental", r
        # reflink when the snapshots share extents (XFS pool), else checksum
        assert r["tracker"] == ("reflink" if _reflinked(sb, two_volume) else "checksum"), r
        assert r["fallback_reason"] is None and r["map_validity"] == "valid"
        assert r["parent"] == gen1[vnr]["generation"]
        assert r["size_bytes"] == usable
        assert r["changed_bytes"] == changed_bytes_for(touched, usable), (chunks, r)
        assert r["new_chunks"] == len(chunks)
        if r["tracker"] == "checksum":
            assert r["read_bytes"] == usable
        elif sb.mounted:
            # only the mapped chunks plus the spot-check sample are read
            assert r["read_bytes"] <= (len(chunks) + 16) * CHUNK
            if vnr == 0:
                assert r["read_bytes"] < usable


def _reflinked(sb: Sandbox, two_volume: dict) -> bool:
    """Whether the emulator's snapshot copies were real reflinks (it records that)."""
    state = json.loads((sb.state_dir / "cluster.json").read_text())
    snap = two_volume["snaps"][-1]
    vols = state["snapshots"][two_volume["rsc"]][snap]["nodes"]["node-a"]["volumes"].values()
    return all(v["reflink"] for v in vols)


def test_tracker_is_checksum_without_reflink(two_volume: dict, sb: Sandbox) -> None:
    if _reflinked(sb, two_volume):
        pytest.skip("snapshots are real reflinks here: the reflink tracker is right")
    for r in two_volume["gen2"]:
        assert r["tracker"] == "checksum", r


def test_restore_to_new_resource_is_byte_identical(two_volume: dict) -> None:
    c: Ctx = two_volume["ctx"]
    rsc = two_volume["rsc"]
    for vnr, (_dev, usable, _b) in two_volume["vols"].items():
        target = f"dwr{vnr}"
        res = c.restore(f"linstor.{rsc}.{vnr}", target)
        assert res["size_bytes"] == usable
        dev, new_usable, backing = c.device(target, "node-a", 0)
        assert new_usable == usable
        data = read_range(dev, usable)
        assert data == two_volume["copies"][(2, vnr)].read_bytes()
        assert_no_metadata(data, f"restored {target}")
        assert_metadata_tail_intact(backing, usable)  # the restore stopped at the usable size


def test_restore_older_generation_to_new_resource(two_volume: dict) -> None:
    c: Ctx = two_volume["ctx"]
    rsc = two_volume["rsc"]
    for vnr, (_dev, usable, _b) in two_volume["vols"].items():
        gen = _by_vnr(two_volume["gen1"], rsc)[vnr]["generation"]
        target = f"dwold{vnr}"
        c.restore(f"linstor.{rsc}.{vnr}", target, "--generation", gen)
        dev, _u, _b2 = c.device(target, "node-a", 0)
        assert read_range(dev, usable) == two_volume["copies"][(1, vnr)].read_bytes()


def test_restore_to_file_has_exactly_usable_bytes_and_no_metadata(two_volume: dict, tmp_path: Path) -> None:
    c: Ctx = two_volume["ctx"]
    for vnr, (_dev, usable, _b) in two_volume["vols"].items():
        out = tmp_path / f"v{vnr}.img"
        run_cli("restore", "--repo", str(c.repo), "--volume-id", f"linstor.{two_volume['rsc']}.{vnr}",
                "--target", str(out))
        assert out.stat().st_size == usable
        assert files_equal(out, two_volume["copies"][(2, vnr)])
        assert_no_metadata(out.read_bytes(), out.name)


def test_snapshot_rotation_keeps_only_the_newest(two_volume: dict) -> None:
    c: Ctx = two_volume["ctx"]
    first, second = two_volume["snaps"]
    assert first != second
    assert c.snapshots(two_volume["rsc"]) == {two_volume["rsc"]: [second]}
    c.check()


def test_client_used_python_linstor_against_the_controller(two_volume: dict, sb: Sandbox) -> None:
    """Contract: the snapshot our generation records exists on the controller (listed by
    python-linstor), named drbdbackup-<timestamp>-<hex>, SUCCESSFUL on the source node,
    and its data is the FILE_THIN snapshot file LINSTOR would have made."""
    c: Ctx = two_volume["ctx"]
    rsc = two_volume["rsc"]
    gen2 = two_volume["gen2"]
    src = c.record_source(gen2[0]["volume_id"], gen2[0]["generation"])
    assert src["kind"] == "linstor" and src["resource"] == rsc
    assert src["controller"] == sb.controllers
    assert src["node"] == "node-a" and src["storage_pool"] == "pool1"
    assert src["provider_kind"] == "FILE_THIN"
    assert SNAP_RE.match(src["snapshot"]), src["snapshot"]
    with sb.session() as lin:
        sds = [sd for sd in lin.snapshot_dfn_list_raise(filter_by_resources=[rsc]).snapshots
               if sd.name == src["snapshot"]]
        rd_uuid = next(rd.uuid for rd in lin.resource_dfn_list_raise(
            filter_by_resource_definitions=[rsc]).resource_definitions if rd.name == rsc)
    assert len(sds) == 1
    sd = sds[0]
    assert "SUCCESSFUL" in sd.flags
    assert [s.node_name for s in sd.snapshots] == ["node-a"]  # the diskless node-b was skipped
    assert str(sd.uuid) == src["snapshot_uuid"]
    assert src["resource_uuid"] == str(rd_uuid)
    for vnr, (_dev, usable, _b) in two_volume["vols"].items():
        snap_file = sb.snapshot_file(rsc, "node-a", src["snapshot"], vnr)
        assert snap_file.exists()
        # the snapshot file carries the metadata tail; the backup stopped before it
        assert_metadata_tail_intact(str(snap_file), usable)
        assert read_range(snap_file, usable) == two_volume["copies"][(2, vnr)].read_bytes()
    if sb.mounted:  # on the XFS pool the emulator made a real reflink, as LINSTOR does
        state = json.loads((sb.state_dir / "cluster.json").read_text())
        vols = state["snapshots"][rsc][src["snapshot"]]["nodes"]["node-a"]["volumes"].values()
        assert all(v["reflink"] for v in vols)
