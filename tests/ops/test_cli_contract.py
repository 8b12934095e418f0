"""The command line's error path and the small promises of DESIGN section 9 (issue 16's list)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drbdbackup.progress import Progress, end_open_line
from tests.helpers import run_cli


def _one_error(proc, code: int) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, proc.stderr
    assert lines and lines[-1].startswith("drbdbackup: error: "), proc.stderr
    return lines[-1]


@pytest.mark.parametrize("args,code", [
    (["check", "--repo", "/nonexistent/repo"], 2),
    (["backup", "--repo", "/nonexistent/repo", "--file", "/etc/hostname", "--volume-id", "v"], 2),
    (["restore", "--bogus-option"], 2),
    (["list"], 2),
])
def test_json_failure_prints_the_error_object(args: list[str], code: int) -> None:
    proc = run_cli(*args, "--json", check=False)
    line = _one_error(proc, code)
    assert json.loads(proc.stdout) == {"ok": False, "exit_code": code,
                                       "error": line.removeprefix("drbdbackup: error: ")}


def test_debug_adds_a_traceback_and_keeps_the_exit_code() -> None:
    proc = run_cli("list", "--debug", check=False)  # --repo missing: a usage error
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("drbdbackup: error: ")


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.stdout.startswith("drbdbackup ") and proc.stdout.split()[1][0].isdigit()


def test_check_on_a_file_says_it_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "not-a-repo"
    f.write_text("x")
    line = _one_error(run_cli("check", "--repo", str(f), check=False), 2)
    assert "is a file, not a directory" in line and "no such directory" not in line


def test_failed_init_leaves_no_directory(tmp_path: Path) -> None:
    target = tmp_path / "new" / "repo"
    env = {k: v for k, v in os.environ.items() if k != "DRBDBACKUP_PASSWORD"}
    proc = run_cli("init", "--repo", str(target), "--encryption", "aes-256-gcm", check=False,
                   env=env | {"DRBDBACKUP_PASSWORD": ""})
    assert "passphrase" in _one_error(proc, 2)
    assert not target.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    run_cli("init", "--repo", str(existing), "--encryption", "aes-256-gcm", check=False,
            env=env | {"DRBDBACKUP_PASSWORD": ""})
    assert existing.is_dir(), "a directory the user made is never removed"


def test_directory_as_source_and_as_target_are_both_bad_input(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", "--repo", str(repo))
    src = tmp_path / "v.img"
    src.write_bytes(os.urandom(1 << 20))
    _one_error(run_cli("backup", "--repo", str(repo), "--file", str(tmp_path), "--volume-id", "v",
                       check=False), 2)
    run_cli("backup", "--repo", str(repo), "--file", str(src), "--volume-id", "v")
    _one_error(run_cli("restore", "--repo", str(repo), "--volume-id", "v", "--target", str(tmp_path),
                       check=False), 2)


def test_empty_repository_checks_clean(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", "--repo", str(repo))
    proc = run_cli("check", "--repo", str(repo), "--json")
    assert json.loads(proc.stdout)["ok"] is True


def test_unreadable_record_is_listed_not_a_crash(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", "--repo", str(repo))
    src = tmp_path / "v.img"
    src.write_bytes(os.urandom(1 << 20))
    run_cli("backup", "--repo", str(repo), "--file", str(src), "--volume-id", "v")
    rec = next((repo / "generations" / "v").iterdir())
    rec.write_bytes(b"{broken")
    proc = run_cli("list", "--repo", str(repo))
    assert "unreadable" in proc.stdout and "internal error" not in proc.stderr


def test_progress_line_has_rate_in_mib_and_an_eta(capsys: pytest.CaptureFixture[str]) -> None:
    p = Progress(100 << 20, "backup v", enabled=True)
    p.start -= 2.0  # 2 s elapsed
    p.done = 50 << 20
    line = p.line(p.start + 2.0)
    assert "MiB/s" in line and "MB/s" not in line and "ETA 0:02" in line and "50.0%" in line
    p.advance(0)
    p._draw(p.start + 2.0)  # noqa: SLF001 - a drawn, unfinished line
    end_open_line()  # what the CLI does before "interrupted"
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\r") >= 1


@pytest.mark.parametrize("tool", ["drbdbackup", "verify"])
@pytest.mark.parametrize("typo", [["--password", "hunter2"], ["--password=hunter2"]])
def test_a_secret_typed_as_an_abbreviated_option_is_never_echoed(tmp_path: Path, tool: str,
                                                                typo: list[str]) -> None:
    """`--password` is no abbreviation of `--password-file`: the value would come back in the
    error line as a file name."""
    args = (["list", "--repo", str(tmp_path)] if tool == "drbdbackup" else ["--repo", str(tmp_path)])
    proc = subprocess.run([sys.executable, "-m", tool, *args, *typo], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    assert "--password" in proc.stderr
