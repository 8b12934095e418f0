"""report/pdf.py: a hung Chromium is killed with everything it started; a silent one is one line."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from drbdbackup.errors import EnvironmentFailure
from drbdbackup.report.pdf import html_to_pdf


def _fake(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "chromium"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


def test_a_hung_chromium_and_its_children_are_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"drbdbackup-test-{os.getpid()}-{time.monotonic_ns()}"
    child = tmp_path / f"{marker}.sh"  # a helper Chromium would start: its command line names it
    child.write_text("sleep 30\n")
    monkeypatch.setenv("DRBDBACKUP_CHROMIUM", _fake(tmp_path, f"sh {child} & sleep 30"))
    started = time.monotonic()
    with pytest.raises(EnvironmentFailure, match="did not print the PDF within"):
        html_to_pdf(b"<html></html>", timeout_s=1.5)
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, timeout=10).stdout
    assert left == ""


def test_chromium_that_prints_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRBDBACKUP_CHROMIUM", _fake(tmp_path, "echo 'no display' >&2; exit 1"))
    with pytest.raises(EnvironmentFailure, match="Chromium printed no PDF: no display"):
        html_to_pdf(b"<html></html>", timeout_s=10)
