"""Helpers for the LINSTOR end-to-end tests: drive the CLI against a Sandbox, inspect the
controller through python-linstor, read devices, check the repository did not change."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from drbdbackup.repo.open import backend_for
from drbdbackup.repo.repository import Repository
from fixtures import workload
from fixtures.emulator import storage
from fixtures.sandbox import Sandbox
from tests.helpers import run_cli

MiB = 1 << 20
KiB = 1 << 10
CHUNK = MiB
META_PATTERN = storage.META_PATTERN
SNAP_PREFIX = "drbdbackup-"
SNAP_RE = re.compile(r"^drbdbackup-[0-9a-f]{8}-\d{8}T\d{6}-[0-9a-f]{6}$")  # drbdbackup-<repo id>-<time>-<rand>


def expected_tracker(sb: Sandbox) -> str:
    """reflink when the pool is a loop-mounted XFS with reflink, else checksum."""
    return "reflink" if sb.mounted else "checksum"


def read_range(path: str | os.PathLike[str], size: int, offset: int = 0) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        out = bytearray()
        while len(out) < size:
            got = os.pread(fd, min(4 * MiB, size - len(out)), offset + len(out))
            if not got:
                break
            out += got
        return bytes(out)
    finally:
        os.close(fd)


def save_copy(device: str, usable: int, dest: Path) -> Path:
    """Copy a device's [0, usable) into a file, to compare a restore with later."""
    data = read_range(device, usable)
    assert len(data) == usable, f"{device} is shorter than its usable size {usable}"
    dest.write_bytes(data)
    return dest


def changed_bytes_for(ranges: list[tuple[int, int]], size: int, chunk: int = CHUNK) -> int:
    """Bytes of the chunks the ranges touch (the last chunk may be short)."""
    return sum(min(chunk, size - c * chunk) for c in workload.touched_chunks(ranges, chunk))


def assert_one_error_line(proc: subprocess.CompletedProcess, code: int) -> str:
    """Exit `code`, nothing on stdout, exactly one `drbdbackup: error:` line, no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, f"exit {proc.returncode} (want {code}); stderr: {proc.stderr!r}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, f"want one error line on stderr, got {lines!r}"
    assert lines[0].startswith("drbdbackup: error: "), lines[0]
    return lines[0]


@dataclass
class Ctx:
    """A sandbox, one repository, and the connection arguments every command gets."""

    sb: Sandbox
    repo: Path
    conn: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"LS_CONTROLLERS": self.sb.controllers}

    # ---- CLI -------------------------------------------------------------------------------

    def init(self) -> Ctx:
        run_cli("init", "--repo", str(self.repo), "--json")
        return self

    def backup_proc(self, *rscs: str, extra: tuple[str, ...] | list[str] = (),
                    env: dict[str, str] | None = None,
                    conn: list[str] | None = None) -> subprocess.CompletedProcess:
        args = ["backup", "--repo", str(self.repo)]
        for rsc in rscs:
            args += ["--resource", rsc]
        args += [*extra, *(self.conn if conn is None else conn), "--json"]
        return run_cli(*args, env=env or self.env, check=False)

    def backup(self, *rscs: str, extra: tuple[str, ...] | list[str] = ()) -> list[dict]:
        """Run a backup that must succeed; always returns the list of per-volume results."""
        proc = self.backup_proc(*rscs, extra=extra)
        assert proc.returncode == 0, f"backup {rscs} exited {proc.returncode}: {proc.stderr}"
        assert proc.stderr.strip() == "", proc.stderr
        obj = json.loads(proc.stdout)
        return obj.get("results", [obj])

    def restore_proc(self, volume_id: str, to_resource: str, *extra: str,
                     env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return run_cli("restore", "--repo", str(self.repo), "--volume-id", volume_id,
                       "--to-resource", to_resource, *extra, *self.conn, "--json",
                       env=env or self.env, check=False)

    def restore(self, volume_id: str, to_resource: str, *extra: str) -> dict:
        proc = self.restore_proc(volume_id, to_resource, *extra)
        assert proc.returncode == 0, f"restore {volume_id} exited {proc.returncode}: {proc.stderr}"
        return json.loads(proc.stdout)

    def generations(self, volume_id: str | None = None) -> list[str]:
        args = ["list", "--repo", str(self.repo), "--json"]
        if volume_id:
            args += ["--volume-id", volume_id]
        out = json.loads(run_cli(*args).stdout)["generations"]
        assert all(g["status"] == "ok" for g in out), out
        return [f"{g['volume_id']}/{g['generation']}" for g in out]

    def check(self) -> None:
        proc = run_cli("check", "--repo", str(self.repo), "--json", check=False)
        assert proc.returncode == 0, f"check exited {proc.returncode}: {proc.stdout} {proc.stderr}"

    # ---- repository, read directly ---------------------------------------------------------

    def record_source(self, volume_id: str, generation: str) -> dict:
        repo = Repository.open(backend_for(str(self.repo)), None)
        return repo.read_record(volume_id, generation).source

    def repo_state(self) -> dict[str, bytes]:
        """Every file of the repository except the audit log and lock files."""
        out = {}
        for path in sorted(self.repo.rglob("*")):
            rel = path.relative_to(self.repo).as_posix()
            if path.is_file() and not rel.startswith(("audit/", "locks/")):
                out[rel] = path.read_bytes()
        return out

    # ---- controller, through python-linstor -------------------------------------------------

    def snapshots(self, rsc: str | None = None) -> dict[str, list[str]]:
        """{resource: sorted snapshot names} of drbdbackup snapshots, via snapshot_dfn_list."""
        out: dict[str, list[str]] = {}
        with self.sb.session() as lin:
            resp = lin.snapshot_dfn_list(filter_by_resources=[rsc] if rsc else None)
            for sd in resp[0].snapshots:
                if sd.name.startswith(SNAP_PREFIX) and (rsc is None or sd.resource_name == rsc):
                    out.setdefault(sd.resource_name, []).append(sd.name)
        return {k: sorted(v) for k, v in out.items()}

    def snapshot_files(self, rsc: str) -> list[Path]:
        """drbdbackup snapshot files of `rsc` in every node's pool directory."""
        return sorted(p for node in self.sb.nodes
                      for p in self.sb.pool_dir(node).glob(f"{rsc}_*_{SNAP_PREFIX}*.img"))

    def assert_only_newest_snapshot(self, rsc: str, results: list[dict]) -> str:
        """After a successful backup: exactly one drbdbackup snapshot of `rsc`, the one the
        new generations record."""
        snaps = self.snapshots(rsc).get(rsc, [])
        assert len(snaps) == 1, f"{rsc}: want only the newest drbdbackup snapshot, got {snaps}"
        mine = [r for r in results if r["volume_id"].startswith(f"linstor.{rsc}.")]
        assert mine, results
        for r in mine:
            assert self.record_source(r["volume_id"], r["generation"])["snapshot"] == snaps[0]
        files = self.snapshot_files(rsc)
        assert files and all(snaps[0] in f.name for f in files), files
        return snaps[0]

    def resource_exists(self, rsc: str) -> bool:
        with self.sb.session() as lin:
            resp = lin.resource_dfn_list(query_volume_definitions=False)
            return any(rd.name == rsc for rd in resp[0].resource_definitions)

    def device(self, rsc: str, node: str = "node-a", vnr: int = 0) -> tuple[str, int, str]:
        """(device_path, usable_bytes, backing_file) of one volume, as the controller says."""
        vol = self.sb.resource_info(rsc).volumes[(node, vnr)]
        return vol.device_path, vol.usable_bytes, vol.backing_file

    def add_diskless(self, rsc: str, node: str) -> None:
        import linstor

        with self.sb.session() as lin:
            replies = lin.resource_create([linstor.ResourceData(node, rsc, diskless=True)])
            assert all(not r.is_error() for r in replies), [r.message for r in replies]


def assert_metadata_tail_intact(backing_file: str, usable: int) -> None:
    """The emulated DRBD metadata after the usable size is still there (not overwritten)."""
    tail = read_range(backing_file, 64, usable)
    assert tail.startswith(b"DRBDMETA usable=%d " % usable), tail


def assert_no_metadata(data: bytes, what: str) -> None:
    assert META_PATTERN not in data, f"DRBD metadata pattern found in {what}"
