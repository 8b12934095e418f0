"""thin_delta tracker: XML parsing, chunk mapping (vs a brute-force model) and the I/O wrappers
(thin_delta / lvs / dmsetup replaced by recording fake scripts on PATH)."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.tracking.thindelta import (
    ThinDelta,
    ThinDeltaError,
    dm_name,
    parse_thin_delta,
    reserved_metadata_snapshot,
    run_thin_delta,
    thin_delta_map,
    thin_id,
)

KIB = 1024
BLK = 64 * KIB  # data_block_size="128" sectors


def _xml(body: str, block_size: str = 'data_block_size="128"') -> str:
    return (
        f'<superblock uuid="" time="1" transaction="1" {block_size} nr_data_blocks="1000">\n'
        f'  <diff left="1" right="2">\n{body}  </diff>\n</superblock>\n'
    )


# Verbatim output of the installed thin_delta 0.9.0 on tests/integration's metadata shape.
SIMPLE = _xml(
    '    <same begin="0" length="2"/>\n'
    '    <different begin="2" length="1"/>\n'
    '    <same begin="3" length="1"/>\n'
    '    <same begin="5" length="1"/>\n'
    '    <right_only begin="6" length="2"/>\n'
    '    <left_only begin="8" length="1"/>\n'
)
VERBOSE = _xml(
    '    <same>\n      <range begin="0" data_begin="0" length="2"/>\n    </same>\n'
    '    <different>\n'
    '      <range begin="2" left_data_begin="2" right_data_begin="20" length="1"/>\n'
    '    </different>\n'
    '    <same>\n      <range begin="3" data_begin="3" length="1"/>\n'
    '      <range begin="5" data_begin="10" length="1"/>\n    </same>\n'
    '    <right_only>\n      <range begin="6" data_begin="21" length="2"/>\n    </right_only>\n'
    '    <left_only>\n      <range begin="8" data_begin="11" length="1"/>\n    </left_only>\n'
)


def test_simple_output() -> None:
    d = parse_thin_delta(SIMPLE)
    assert d.data_block_size_bytes == BLK
    # different [2], right_only [6,7] and left_only [8] merge into one run
    assert d.ranges == ((2 * BLK, BLK), (6 * BLK, 3 * BLK))


def test_verbose_output_matches_simple() -> None:
    assert parse_thin_delta(VERBOSE) == parse_thin_delta(SIMPLE)
    assert parse_thin_delta(VERBOSE.encode()) == parse_thin_delta(SIMPLE)


def test_rust_tool_superblock_attrs_and_metadata_snap() -> None:
    text = (
        '<superblock uuid="" time="3" transaction="4" flags="0" version="2" '
        'data_block_size="256" nr_data_blocks="10" metadata_snap="77">\n'
        '  <diff left="5" right="6">\n    <right_only begin="1" length="1"/>\n  </diff>\n'
        "</superblock>\n"
    )
    assert parse_thin_delta(text) == ThinDelta(128 * KIB, ((128 * KIB, 128 * KIB),))


def test_same_only_and_empty_diff_mean_no_change() -> None:
    assert parse_thin_delta(_xml('<same begin="0" length="9"/>\n')).ranges == ()
    assert parse_thin_delta(_xml("")).ranges == ()


def test_each_changed_kind_alone() -> None:
    for kind in ("different", "right_only", "left_only"):
        d = parse_thin_delta(_xml(f'<{kind} begin="10" length="3"/>\n'))
        assert d.ranges == ((10 * BLK, 3 * BLK),), kind


def test_adjacent_and_unsorted_runs_merge() -> None:
    body = (
        '<right_only begin="20" length="1"/>\n'
        '<different begin="4" length="2"/>\n'
        '<left_only begin="6" length="1"/>\n'
        '<same begin="7" length="1"/>\n'
        '<different begin="8" length="1"/>\n'
        '<different begin="0" length="0"/>\n'
    )
    assert parse_thin_delta(_xml(body)).ranges == (
        (4 * BLK, 3 * BLK),
        (8 * BLK, BLK),
        (20 * BLK, BLK),
    )


def test_tolerated_thin_dump_style_children() -> None:
    body = (
        "<different>\n"
        '  <range_mapping origin_begin="3" data_begin="9" length="2" time="0"/>\n'
        '  <single_mapping origin_block="9" data_block="1" time="0"/>\n'
        "</different>\n"
    )
    assert parse_thin_delta(_xml(body)).ranges == ((3 * BLK, 2 * BLK), (9 * BLK, BLK))


def test_small_block_size() -> None:
    d = parse_thin_delta(_xml('<different begin="3" length="2"/>\n', 'data_block_size="1"'))
    assert d == ThinDelta(512, ((1536, 1024),))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "malformed XML"),
        ("<superblock data_block_size='128'><diff>", "malformed XML"),
        ("not xml at all", "malformed XML"),
        (_xml("", block_size=""), "no data_block_size"),
        (_xml("", 'data_block_size="abc"'), "bad data_block_size"),
        (_xml("", 'data_block_size="0"'), "data_block_size is 0"),
        ('<device dev_id="1"/>', "expected <superblock>"),
        ('<superblock data_block_size="128"/>', "expected one <diff>, found 0"),
        (_xml('<different begin="1"/>\n'), "no length"),
        (_xml('<different length="1"/>\n'), "no begin"),
        (_xml('<different begin="-1" length="1"/>\n'), "negative begin"),
        (_xml('<right_only begin="x" length="1"/>\n'), "bad begin"),
        (_xml('<changed begin="1" length="1"/>\n'), "unexpected <changed>"),
        (_xml('<different><extent begin="1" length="1"/></different>\n'), "unexpected <extent>"),
        (_xml('<same begin="1" length="zz"/>\n'), "bad length"),
    ],
)
def test_malformed(text: str, fragment: str) -> None:
    with pytest.raises(ThinDeltaError) as info:
        parse_thin_delta(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


# --- chunk mapping -------------------------------------------------------------------------------


def test_map_clips_to_usable_size() -> None:
    d = parse_thin_delta(SIMPLE)  # bytes [128K,192K) and [384K,576K)
    assert thin_delta_map(d, 10 * BLK, BLK) == {2, 6, 7, 8}
    assert thin_delta_map(d, 7 * BLK + 100, BLK) == {2, 6, 7}  # DRBD usable size cuts the tail
    assert thin_delta_map(d, 2 * BLK, BLK) == set()
    assert thin_delta_map(d, 10 * BLK, 4 * BLK) == {0, 1, 2}  # 256 KiB chunks
    assert thin_delta_map(d, 10 * BLK, 16 * KIB) == set(range(8, 12)) | set(range(24, 36))


kinds = st.sampled_from(["same", "different", "right_only", "left_only"])


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(st.tuples(kinds, st.integers(0, 40), st.integers(0, 6)), max_size=12),
    sectors=st.sampled_from([1, 8, 128, 256]),
    chunk_size=st.sampled_from([512, 4096, 65536, 3 * 4096, 1 << 20]),
    size=st.integers(0, 50 * 256 * 512),
    verbose=st.booleans(),
)
def test_map_matches_brute_force(
    runs: list[tuple[str, int, int]], sectors: int, chunk_size: int, size: int, verbose: bool
) -> None:
    if verbose:
        body = "".join(
            f'<{k}><range begin="{b}" data_begin="0" length="{n}"/></{k}>\n' for k, b, n in runs
        )
    else:
        body = "".join(f'<{k} begin="{b}" length="{n}"/>\n' for k, b, n in runs)
    d = parse_thin_delta(_xml(body, f'data_block_size="{sectors}"'))
    block = sectors * 512
    changed_bytes: set[int] = set()  # brute force at 512-byte granularity
    for kind, begin, length in runs:
        if kind != "same":
            for b in range(begin, begin + length):
                changed_bytes.update(range(b * block, (b + 1) * block, 512))
    model = {off // chunk_size for off in changed_bytes if off < size}
    assert thin_delta_map(d, size, chunk_size) == model
    # ranges are sorted, disjoint and non-adjacent
    for (o1, n1), (o2, _n2) in zip(d.ranges, d.ranges[1:], strict=False):
        assert o1 + n1 < o2


# --- I/O with fake tools on PATH -----------------------------------------------------------------


def _fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" f'echo "{name} $*" >> "$FAKE_LOG"\n' + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fakebin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    return bin_dir


def _calls(fakebin: Path) -> list[str]:
    log = fakebin.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_run_thin_delta_args_and_parse(fakebin: Path, tmp_path: Path) -> None:
    (tmp_path / "out.xml").write_text(SIMPLE)
    _fake(fakebin, "thin_delta", f'cat "{tmp_path / "out.xml"}"\n')
    assert run_thin_delta("/dev/mapper/vg-pool_tmeta", 3, 7, metadata_snap=True) == (
        parse_thin_delta(SIMPLE)
    )
    assert run_thin_delta("meta.bin", 1, 2, metadata_snap=False).data_block_size_bytes == BLK
    assert _calls(fakebin) == [
        "thin_delta -m --snap1 3 --snap2 7 /dev/mapper/vg-pool_tmeta",
        "thin_delta --snap1 1 --snap2 2 meta.bin",
    ]


def test_run_thin_delta_failure_reports_tool_message(fakebin: Path) -> None:
    _fake(
        fakebin,
        "thin_delta",
        'echo "Unable to find mapping tree for snap2 (9)" >&2\n'
        'echo "Usage: thin_delta [options] <device or file>" >&2\n'
        'echo "  {-V|--version}" >&2\nexit 1\n',
    )
    with pytest.raises(ThinDeltaError, match=r"exit 1\): Unable to find mapping tree for snap2 \(9\)$"):
        run_thin_delta("m", 1, 9, metadata_snap=False)


def test_run_thin_delta_failure_last_line_and_silent(fakebin: Path) -> None:
    _fake(fakebin, "thin_delta", 'echo "first" >&2\necho "bad superblock" >&2\nexit 2\n')
    with pytest.raises(ThinDeltaError, match=r"bad superblock$"):
        run_thin_delta("m", 1, 2, metadata_snap=False)
    _fake(fakebin, "thin_delta", "exit 3\n")
    with pytest.raises(ThinDeltaError, match="exit status 3"):
        run_thin_delta("m", 1, 2, metadata_snap=False)


def test_run_thin_delta_garbage_output(fakebin: Path) -> None:
    _fake(fakebin, "thin_delta", "echo hello\n")
    with pytest.raises(ThinDeltaError, match="malformed XML"):
        run_thin_delta("m", 1, 2, metadata_snap=False)


def test_missing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    with pytest.raises(ThinDeltaError, match="thin_delta not found on PATH"):
        run_thin_delta("m", 1, 2, metadata_snap=False)
    with pytest.raises(ThinDeltaError, match="lvs not found"):
        thin_id("vg/lv")


def test_thin_id(fakebin: Path) -> None:
    _fake(fakebin, "lvs", 'echo "         12  "\n')
    assert thin_id("vg0/snap_1") == 12
    assert _calls(fakebin) == ["lvs --noheadings -o thin_id vg0/snap_1"]


def test_thin_id_not_thin_or_failing(fakebin: Path) -> None:
    _fake(fakebin, "lvs", 'echo "   "\n')
    with pytest.raises(ThinDeltaError, match="no thin_id for vg/thick"):
        thin_id("vg/thick")
    _fake(fakebin, "lvs", 'echo \'  Failed to find logical volume "vg/x"\' >&2\nexit 5\n')
    with pytest.raises(ThinDeltaError, match='lvs failed \\(exit 5\\): Failed to find logical volume "vg/x"'):
        thin_id("vg/x")


def test_dm_name_mangling() -> None:
    assert dm_name("vg0", "pool") == "vg0-pool"
    assert dm_name("my-vg", "thin-pool") == "my--vg-thin--pool"


def _held_elsewhere(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


RESERVE = "dmsetup message vg0-pool-tpool 0 reserve_metadata_snap"
RELEASE = "dmsetup message vg0-pool-tpool 0 release_metadata_snap"


def test_reserved_metadata_snapshot_sequence(fakebin: Path, tmp_path: Path) -> None:
    _fake(fakebin, "dmsetup", "")
    lock = tmp_path / "thin-send-recv.lock"
    with reserved_metadata_snapshot("vg0", "pool", lock_path=str(lock)) as tmeta:
        assert tmeta == "/dev/mapper/vg0-pool_tmeta"
        assert _calls(fakebin) == [RESERVE]
        assert _held_elsewhere(lock)  # flock is exclusive while reserved
    assert _calls(fakebin) == [RESERVE, RELEASE]
    assert not _held_elsewhere(lock)


def test_reserved_metadata_snapshot_hyphenated_names(fakebin: Path, tmp_path: Path) -> None:
    _fake(fakebin, "dmsetup", "")
    with reserved_metadata_snapshot("my-vg", "tp", lock_path=str(tmp_path / "l")) as tmeta:
        assert tmeta == "/dev/mapper/my--vg-tp_tmeta"
    assert _calls(fakebin) == [
        "dmsetup message my--vg-tp-tpool 0 reserve_metadata_snap",
        "dmsetup message my--vg-tp-tpool 0 release_metadata_snap",
    ]


def test_reserved_metadata_snapshot_releases_on_error(fakebin: Path, tmp_path: Path) -> None:
    _fake(fakebin, "dmsetup", "")
    lock = tmp_path / "lock"
    with pytest.raises(RuntimeError, match="boom"), \
            reserved_metadata_snapshot("vg0", "pool", lock_path=str(lock)):
        raise RuntimeError("boom")
    assert _calls(fakebin) == [RESERVE, RELEASE]
    assert not _held_elsewhere(lock)


def test_body_error_wins_over_release_failure(fakebin: Path, tmp_path: Path) -> None:
    _fake(fakebin, "dmsetup", 'case "$*" in *release*) echo "release broke" >&2; exit 1;; esac\n')
    with pytest.raises(RuntimeError, match="boom"), \
            reserved_metadata_snapshot("vg0", "pool", lock_path=str(tmp_path / "lock")):
        raise RuntimeError("boom")
    assert _calls(fakebin) == [RESERVE, RELEASE]


def test_release_failure_after_success_is_reported(fakebin: Path, tmp_path: Path) -> None:
    _fake(fakebin, "dmsetup", 'case "$*" in *release*) echo "release broke" >&2; exit 1;; esac\n')
    with pytest.raises(ThinDeltaError, match="release broke"), \
            reserved_metadata_snapshot("vg0", "pool", lock_path=str(tmp_path / "lock")):
        pass
    assert _calls(fakebin) == [RESERVE, RELEASE]


def test_failed_reserve_releases_nothing(fakebin: Path, tmp_path: Path) -> None:
    _fake(
        fakebin,
        "dmsetup",
        'echo "device-mapper: message ioctl on vg0-pool-tpool  failed: File exists" >&2\nexit 1\n',
    )
    lock = tmp_path / "lock"
    entered = False
    with pytest.raises(ThinDeltaError, match="dmsetup failed \\(exit 1\\): .*File exists"), \
            reserved_metadata_snapshot("vg0", "pool", lock_path=str(lock)):
        entered = True
    assert not entered
    assert _calls(fakebin) == [RESERVE]
    assert not _held_elsewhere(lock)


def test_full_live_flow(fakebin: Path, tmp_path: Path) -> None:
    """The intended composition: ids via lvs, reserve, thin_delta -m on tmeta, release."""
    (tmp_path / "out.xml").write_text(SIMPLE)
    _fake(fakebin, "dmsetup", "")
    _fake(fakebin, "lvs", 'case "$*" in *old*) echo 4;; *) echo 9;; esac\n')
    _fake(fakebin, "thin_delta", f'cat "{tmp_path / "out.xml"}"\n')
    a, b = thin_id("vg0/old"), thin_id("vg0/new")
    with reserved_metadata_snapshot("vg0", "pool", lock_path=str(tmp_path / "lock")) as tmeta:
        delta = run_thin_delta(tmeta, a, b, metadata_snap=True)
    assert thin_delta_map(delta, 9 * BLK, BLK) == {2, 6, 7, 8}
    assert _calls(fakebin) == [
        "lvs --noheadings -o thin_id vg0/old",
        "lvs --noheadings -o thin_id vg0/new",
        RESERVE,
        "thin_delta -m --snap1 4 --snap2 9 /dev/mapper/vg0-pool_tmeta",
        RELEASE,
    ]
