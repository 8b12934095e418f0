"""An encrypted repository seals its audit details (format.md section 12): the report opens them
with the key, so the day still shows what was backed up; without the passphrase it refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drbdbackup.errors import PasswordRequired
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.maintenance import InitRequest, init
from drbdbackup.ops.reporting import ReportRequest, report
from drbdbackup.ops.session import RepositoryRef


def test_sealed_details_are_opened(tmp_path: Path) -> None:
    img = tmp_path / "v.img"
    img.write_bytes(os.urandom(4 * 65536))
    ref = RepositoryRef.of(str(tmp_path / "repo"), "correct horse")
    init(ref, InitRequest(chunk_size=65536, encryption="aes-256-gcm"))
    back_up_file(ref, FileBackup(str(img), "v"), BackupOptions())
    raw = b"".join(p.read_bytes() for p in (tmp_path / "repo" / "audit").iterdir())
    assert b'"size_bytes"' not in raw  # sealed on disk
    out = tmp_path / "r.json"
    report(ref, ReportRequest("json", str(out)))
    rep = json.loads(out.read_bytes())
    (day,) = rep["volumes"][0]["days"]
    (b,) = day["backups"]
    assert b["mode"] == "full" and b["size_bytes"] == 4 * 65536 and day["status"] == "ok"
    assert "correct horse" not in out.read_text()
    with pytest.raises(PasswordRequired):
        report(RepositoryRef.of(str(tmp_path / "repo")), ReportRequest("json", str(tmp_path / "x.json")))
