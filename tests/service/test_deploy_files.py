"""The deployment examples parse, their config validates, and the command line they contain
starts the agent (pointed at a test config) and stops on SIGTERM."""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from drbdbackup.service.config import load_config
from tests.helpers import REPO_ROOT, run_cli

DEPLOY = REPO_ROOT / "docs" / "deploy"


def _run_until_listening(argv: list[str], cfg: Path) -> str:
    """Start `argv` with its --config replaced by `cfg`; wait for 'listening'; SIGTERM it."""
    argv = [*argv]
    argv[argv.index("--config") + 1] = str(cfg)
    assert argv[:2] == ["drbdbackup", "serve"] or argv[0].endswith("/drbdbackup"), argv
    proc = subprocess.Popen([sys.executable, "-m", "drbdbackup", *argv[1:]], stderr=subprocess.PIPE,
                            text=True, cwd=REPO_ROOT)
    try:
        out = ""
        deadline = time.monotonic() + 20
        while "listening on" not in out and time.monotonic() < deadline:
            out += proc.stderr.readline() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "listening on" in out and proc.returncode == 0, (out, proc.returncode)
    return out


def _test_config(tmp: Path) -> Path:
    (tmp / "token").write_text("t")
    run_cli("init", "--repo", str(tmp / "repo"))
    cfg = tmp / "test.toml"
    cfg.write_text(f'[service]\nlisten = "127.0.0.1:0"\ntoken_file = "token"\nstate_db = "jobs.db"\n'
                   f'[repository]\nlocation = "{tmp / "repo"}"\n')
    return cfg


def test_systemd_unit_runs_its_command_line(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.read(DEPLOY / "drbdbackup-agent.service")
    assert unit["Service"]["KillSignal"] == "SIGTERM" and unit["Install"]["WantedBy"]
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[1:3] == ["serve", "--config"]
    _run_until_listening(["drbdbackup", *argv[1:]], _test_config(tmp_path))


def test_daemonset_config_validates_and_its_command_runs(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "drbdbackup-agent.daemonset.yaml").read_text()))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    embedded = tmp_path / "embedded.toml"
    embedded.write_text(cm["data"]["drbdbackup.toml"])
    cfg = load_config(str(embedded))  # the shipped config is valid
    assert cfg.cluster is not None and cfg.cluster.node == "auto"
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    (container,) = spec["containers"]
    _run_until_listening(container["command"], _test_config(tmp_path))
    assert os.path.basename(container["command"][0]) == "drbdbackup"
