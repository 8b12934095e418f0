"""thin_delta change maps (LVM_THIN): which blocks differ between two thin snapshots of one pool.

The pool metadata maps every thin device's virtual blocks to data blocks; two snapshots that
still share a data block for a virtual block have identical contents there. `thin_delta`
(thin-provisioning-tools) walks both mapping trees and prints the runs as XML. Parsing is
pure; running the tool, looking up thin ids and reserving the live metadata snapshot are
separate I/O helpers. On a live pool, use `reserved_metadata_snapshot` and `metadata_snap=True`.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from drbdbackup.tracking.changemap import positions_for_ranges

SECTOR = 512
LOCK_PATH = "/var/run/thin-send-recv.lock"  # shared with LINBIT thin-send-recv (LINSTOR shipping)

CHANGED_KINDS = frozenset({"different", "right_only", "left_only"})
KINDS = CHANGED_KINDS | {"same"}
# Range children of a verbose (nested) diff element. Both tool generations (C++ 0.9 and the Rust
# rewrite) print <range begin= length=>; thin_dump-style spellings are tolerated defensively.
_RANGE_TAGS = frozenset({"range", "range_mapping", "single_mapping"})
_BEGIN_ATTRS = ("begin", "origin_begin", "origin_block")


class ThinDeltaError(ValueError):
    """thin_delta output could not be parsed, or a thin tool / dmsetup / lvs call failed."""


@dataclass(frozen=True)
class ThinDelta:
    """Byte ranges (offset, length), sorted and merged, that must be re-read for the new snapshot.

    `ranges` covers `different` and `right_only` runs (new or rewritten data) and also
    `left_only` runs: those blocks were discarded since the old snapshot and now read as
    zero, so their contents changed too.
    """

    data_block_size_bytes: int
    ranges: tuple[tuple[int, int], ...]


def _int_attr(elem: ET.Element, names: tuple[str, ...], what: str) -> int:
    for name in names:
        raw = elem.get(name)
        if raw is not None:
            try:
                value = int(raw)
            except ValueError:
                raise ThinDeltaError(f"thin_delta: bad {what} {raw!r} on <{elem.tag}>") from None
            if value < 0:
                raise ThinDeltaError(f"thin_delta: negative {what} {value} on <{elem.tag}>")
            return value
    raise ThinDeltaError(f"thin_delta: <{elem.tag}> has no {what} attribute")


def _block_runs(elem: ET.Element) -> Iterator[tuple[int, int]]:
    """(begin, length) in data blocks of one diff element, flat or verbose (nested ranges)."""
    children = list(elem)
    if not children:
        if elem.get("begin") is None and elem.get("length") is None:
            return  # an empty verbose group
        yield _int_attr(elem, ("begin",), "begin"), _int_attr(elem, ("length",), "length")
        return
    for child in children:
        if child.tag not in _RANGE_TAGS:
            raise ThinDeltaError(f"thin_delta: unexpected <{child.tag}> inside <{elem.tag}>")
        begin = _int_attr(child, _BEGIN_ATTRS, "begin")
        length = 1 if child.tag == "single_mapping" else _int_attr(child, ("length",), "length")
        yield begin, length


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for off, length in sorted(r for r in ranges if r[1] > 0):
        if out and off <= out[-1][0] + out[-1][1]:
            last_off, last_len = out[-1]
            out[-1] = (last_off, max(last_len, off + length - last_off))
        else:
            out.append((off, length))
    return tuple(out)


def parse_thin_delta(xml_text: str | bytes) -> ThinDelta:
    """Parse `thin_delta [--verbose]` XML into changed byte ranges (see `ThinDelta`).

    `begin`/`length` count data blocks; `data_block_size` on <superblock> is in 512-byte
    sectors. Unknown elements inside <diff> are an error (never silently skip a change).
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ThinDeltaError(f"thin_delta: malformed XML ({exc})") from None
    if root.tag != "superblock":
        raise ThinDeltaError(f"thin_delta: expected <superblock>, got <{root.tag}>")
    sectors = _int_attr(root, ("data_block_size",), "data_block_size")
    if sectors == 0:
        raise ThinDeltaError("thin_delta: data_block_size is 0")
    block = sectors * SECTOR
    diffs = root.findall("diff")
    if len(diffs) != 1:
        raise ThinDeltaError(f"thin_delta: expected one <diff>, found {len(diffs)}")
    ranges: list[tuple[int, int]] = []
    for elem in diffs[0]:
        if elem.tag not in KINDS:
            raise ThinDeltaError(f"thin_delta: unexpected <{elem.tag}> inside <diff>")
        runs = list(_block_runs(elem))  # validate `same` runs too
        if elem.tag in CHANGED_KINDS:
            ranges.extend((begin * block, length * block) for begin, length in runs)
    return ThinDelta(block, _merge(ranges))


def thin_delta_map(delta: ThinDelta, size: int, chunk_size: int) -> set[int]:
    """Chunk positions touched by the delta, clipped to the volume's usable size `size`."""
    return positions_for_ranges(delta.ranges, chunk_size, size)


# --- I/O -----------------------------------------------------------------------------------------


def _tool_message(stderr: str, fallback: str) -> str:
    """The tool's last meaningful stderr line (0.9 prints its usage text after the error)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("Usage:"):
            lines = lines[:i] or lines
            break
    return lines[-1] if lines else fallback


def _run(argv: list[str]) -> str:
    """Run a tool, return stdout; ThinDeltaError with its stderr message on any failure."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ThinDeltaError(f"{argv[0]} not found on PATH") from None
    except OSError as exc:
        raise ThinDeltaError(f"{argv[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        msg = _tool_message(proc.stderr, f"exit status {proc.returncode}")
        raise ThinDeltaError(f"{argv[0]} failed (exit {proc.returncode}): {msg}")
    return proc.stdout


def run_thin_delta(
    metadata_path: str, snap1_id: int, snap2_id: int, *, metadata_snap: bool
) -> ThinDelta:
    """Run `thin_delta [-m] --snap1 A --snap2 B METADATA` and parse it (snap1 = older)."""
    argv = ["thin_delta"]
    if metadata_snap:
        argv.append("-m")
    argv += ["--snap1", str(snap1_id), "--snap2", str(snap2_id), metadata_path]
    return parse_thin_delta(_run(argv))


def thin_id(vg_lv: str) -> int:
    """The pool-internal device id of thin LV `vg/lv` (`lvs --noheadings -o thin_id`)."""
    out = _run(["lvs", "--noheadings", "-o", "thin_id", vg_lv]).strip()
    try:
        return int(out)
    except ValueError:
        raise ThinDeltaError(f"lvs: no thin_id for {vg_lv} (got {out!r})") from None


def dm_name(vg: str, lv: str) -> str:
    """Device-mapper name LVM gives vg/lv (a '-' inside either name is doubled)."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


@contextmanager
def reserved_metadata_snapshot(vg: str, pool: str, *, lock_path: str = LOCK_PATH) -> Iterator[str]:
    """Hold the pool's single metadata snapshot; yields the tmeta path for `thin_delta -m`.

    Takes thin-send-recv's flock first so LINSTOR's own shipping is not disturbed, then
    `dmsetup message <vg>-<pool>-tpool 0 reserve_metadata_snap`; `release_metadata_snap`
    always follows once reserved (a failed reserve releases nothing: it is not ours).
    """
    name = dm_name(vg, pool)
    tpool = f"{name}-tpool"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _run(["dmsetup", "message", tpool, "0", "reserve_metadata_snap"])
        try:
            yield f"/dev/mapper/{name}_tmeta"
        except BaseException:
            try:
                _run(["dmsetup", "message", tpool, "0", "release_metadata_snap"])
            except ThinDeltaError:
                pass  # keep the original error
            raise
        _run(["dmsetup", "message", tpool, "0", "release_metadata_snap"])
    finally:
        os.close(fd)  # drops the flock
