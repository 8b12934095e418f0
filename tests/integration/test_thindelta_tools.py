"""thin_delta tracker against the REAL thin-provisioning-tools, without device-mapper.

Pool metadata is described in thin_dump XML, turned into a binary metadata file with
`thin_restore`, and diffed with `thin_delta` (as thin-provisioning-tools' own tests do).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from drbdbackup.tracking.thindelta import (
    ThinDeltaError,
    parse_thin_delta,
    run_thin_delta,
    thin_delta_map,
)

pytestmark = pytest.mark.skipif(
    shutil.which("thin_delta") is None or shutil.which("thin_restore") is None,
    reason="thin-provisioning-tools (thin_delta, thin_restore) not installed",
)

NR_BLOCKS = 40  # virtual blocks per thin device
# Old snapshot (dev 1): virtual block -> data block. Runs of consecutive data blocks become
# <range_mapping>, isolated ones <single_mapping>.
LEFT = {v: v for v in range(0, 12)} | {15: 50, 16: 51, 20: 60, 30: 70, 31: 71, 39: 90}
RIGHT = (
    {v: v for v in range(0, 12) if v not in (3, 7, 8)}  # shared, except rewritten 3, 7, 8
    | {3: 100, 7: 101, 8: 102}  # different
    | {15: 50, 16: 103}  # 15 shared, 16 different
    | {22: 104, 23: 105, 24: 106}  # right_only (written since the old snapshot)
    | {30: 70}  # 31 discarded -> left_only; 20 discarded -> left_only
    | {39: 107}  # last block rewritten (beyond the usable size in the clipping case)
)
CHANGED_BLOCKS = {3, 7, 8, 16, 22, 23, 24, 20, 31, 39}


def _mappings(table: dict[int, int]) -> str:
    lines: list[str] = []
    items = sorted(table.items())
    i = 0
    while i < len(items):
        v0, d0 = items[i]
        n = 1
        while i + n < len(items) and items[i + n] == (v0 + n, d0 + n):
            n += 1
        if n == 1:
            lines.append(f'    <single_mapping origin_block="{v0}" data_block="{d0}" time="0"/>')
        else:
            lines.append(
                f'    <range_mapping origin_begin="{v0}" data_begin="{d0}" length="{n}" time="0"/>'
            )
        i += n
    return "\n".join(lines)


def _metadata_xml(sectors: int) -> str:
    devs = []
    for dev_id, table, trans, ctime in ((1, LEFT, 0, 0), (2, RIGHT, 1, 1)):
        devs.append(
            f'  <device dev_id="{dev_id}" mapped_blocks="{len(table)}" transaction="{trans}" '
            f'creation_time="{ctime}" snap_time="1">\n{_mappings(table)}\n  </device>'
        )
    return (
        f'<superblock uuid="" time="1" transaction="2" data_block_size="{sectors}" '
        f'nr_data_blocks="200">\n' + "\n".join(devs) + "\n</superblock>\n"
    )


def _restore(tmp_path: Path, sectors: int) -> Path:
    xml = tmp_path / "meta.xml"
    xml.write_text(_metadata_xml(sectors))
    meta = tmp_path / "meta.bin"
    fd = os.open(meta, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 16 << 20)  # thin_restore needs a preallocated target
    finally:
        os.close(fd)
    subprocess.run(["thin_restore", "-i", str(xml), "-o", str(meta)], check=True,
                   capture_output=True)
    return meta


@pytest.fixture
def meta(tmp_path: Path) -> Path:
    return _restore(tmp_path, 128)


def test_exact_changed_chunks_64k_blocks(meta: Path) -> None:
    delta = run_thin_delta(str(meta), 1, 2, metadata_snap=False)
    blk = 64 * 1024
    assert delta.data_block_size_bytes == blk
    assert delta.ranges == (
        (3 * blk, blk),
        (7 * blk, 2 * blk),
        (16 * blk, blk),
        (20 * blk, blk),
        (22 * blk, 3 * blk),
        (31 * blk, blk),
        (39 * blk, blk),
    )
    size = NR_BLOCKS * blk
    assert thin_delta_map(delta, size, blk) == CHANGED_BLOCKS
    # 128 KiB chunks: chunk p covers blocks 2p, 2p+1
    assert thin_delta_map(delta, size, 2 * blk) == {b // 2 for b in CHANGED_BLOCKS}
    # 16 KiB chunks: four per block
    assert thin_delta_map(delta, size, 16 * 1024) == {
        b * 4 + i for b in CHANGED_BLOCKS for i in range(4)
    }
    # DRBD's usable size ends inside block 31 (internal metadata at the end of the LV)
    usable = 31 * blk + 20 * 1024
    assert thin_delta_map(delta, usable, blk) == {b for b in CHANGED_BLOCKS if b <= 31}


def test_reverse_direction_same_blocks(meta: Path) -> None:
    fwd = run_thin_delta(str(meta), 1, 2, metadata_snap=False)
    back = run_thin_delta(str(meta), 2, 1, metadata_snap=False)
    assert fwd.ranges == back.ranges  # left_only <-> right_only, both count


def test_identical_devices_no_change(meta: Path) -> None:
    assert run_thin_delta(str(meta), 2, 2, metadata_snap=False).ranges == ()


def test_verbose_output_parses_the_same(meta: Path) -> None:
    out = subprocess.run(
        ["thin_delta", "--verbose", "--snap1", "1", "--snap2", "2", str(meta)],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "<range " in out
    assert parse_thin_delta(out) == run_thin_delta(str(meta), 1, 2, metadata_snap=False)


def test_large_pool_block_size(tmp_path: Path) -> None:
    meta = _restore(tmp_path, 1024)  # 512 KiB data blocks, 64 KiB backup chunks
    delta = run_thin_delta(str(meta), 1, 2, metadata_snap=False)
    assert delta.data_block_size_bytes == 512 * 1024
    assert thin_delta_map(delta, NR_BLOCKS * 512 * 1024, 64 * 1024) == {
        b * 8 + i for b in CHANGED_BLOCKS for i in range(8)
    }


def test_unknown_device_id(meta: Path) -> None:
    with pytest.raises(ThinDeltaError, match=r"snap2 \(9\)"):
        run_thin_delta(str(meta), 1, 9, metadata_snap=False)


def test_metadata_snap_requested_but_absent(meta: Path) -> None:
    # A restored file has no reserved metadata snapshot; the tool refuses -m.
    with pytest.raises(ThinDeltaError, match="thin_delta failed") as info:
        run_thin_delta(str(meta), 1, 2, metadata_snap=True)
    assert "Usage" not in str(info.value)


def test_missing_metadata_file(tmp_path: Path) -> None:
    with pytest.raises(ThinDeltaError, match="thin_delta failed"):
        run_thin_delta(str(tmp_path / "nope"), 1, 2, metadata_snap=False)
