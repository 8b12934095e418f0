"""Encrypted repositories: wrong / missing passphrase, password files, and no secret leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import PASSWORD
from .helpers import (
    Scenario,
    assert_ok,
    assert_one_line_error,
    assert_untouched,
    copy_scenario,
    full_snapshot,
    nobody_skip_reason,
    repo_files,
    run_cli,
)

WRONG = "wrong-passphrase-4d1f"


def _commands(sc: Scenario) -> list[list[object]]:
    return [
        ["list", "--repo", sc.repo],
        sc.backup_args(),
        ["restore", "--repo", sc.repo, "--volume-id", sc.volume, "--target", sc.work / "out"],
        ["check", "--repo", sc.repo, "--read-data"],
        ["prune", "--repo", sc.repo, "--keep-last", "1"],
    ]


def test_wrong_passphrase(enc_scenario: Scenario) -> None:
    sc = enc_scenario
    before = full_snapshot(sc.repo)
    for args in _commands(sc):
        proc = run_cli(*args, env={"DRBDBACKUP_PASSWORD": WRONG})
        line = assert_one_line_error(proc, 2, "wrong passphrase")
        assert WRONG not in line and PASSWORD not in line
    assert_untouched(sc.repo, before)  # so it keeps the template's health
    assert not (sc.work / "out").exists()


def test_missing_passphrase(enc_scenario: Scenario) -> None:
    sc = enc_scenario
    before = full_snapshot(sc.repo)
    for args in _commands(sc):
        proc = run_cli(*args)  # no DRBDBACKUP_PASSWORD, no --password-file
        assert_one_line_error(proc, 2, "encrypted", "DRBDBACKUP_PASSWORD")
    assert_untouched(sc.repo, before)


def test_init_encrypted_without_passphrase(tmp_path: Path) -> None:
    proc = run_cli("init", "--repo", tmp_path / "r", "--encryption", "aes-256-gcm")
    assert_one_line_error(proc, 2, "passphrase")
    assert not (tmp_path / "r" / "config").exists()
    assert not (tmp_path / "r" / "keys").exists() or not os.listdir(tmp_path / "r" / "keys")


def test_password_file_works_and_env_is_not_needed(enc_scenario: Scenario, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    assert_ok(run_cli("list", "--repo", enc_scenario.repo, "--password-file", pw))


@pytest.mark.parametrize("kind", ["missing", "directory", "empty-wrong"])
def test_bad_password_file(enc_scenario: Scenario, tmp_path: Path, kind: str) -> None:
    sc = enc_scenario
    path = {"missing": tmp_path / "nope", "directory": tmp_path, "empty-wrong": tmp_path / "wrong"}[kind]
    if kind == "empty-wrong":
        path.write_text(WRONG + "\n")
    before = full_snapshot(sc.repo)
    proc = run_cli("backup", "--repo", sc.repo, "--file", sc.src, "--volume-id", sc.volume,
                   "--password-file", path)
    if kind == "empty-wrong":
        assert_one_line_error(proc, 2, "wrong passphrase")
    else:
        assert_one_line_error(proc, 2, "password file", str(path))
    assert_untouched(sc.repo, before)


def test_unreadable_password_file_as_nobody(enc_template: Scenario, public_dir: Path) -> None:
    reason = nobody_skip_reason()
    if reason:
        pytest.skip(reason)
    sc = copy_scenario(enc_template, public_dir / "sc")
    pw = public_dir / "pw"
    pw.write_text(PASSWORD)
    pw.chmod(0o000)
    proc = run_cli("list", "--repo", sc.repo, "--password-file", pw, as_nobody=True)
    line = assert_one_line_error(proc, 2, "password file", str(pw), "permission denied")
    assert PASSWORD not in line


def test_password_file_not_utf8(enc_scenario: Scenario, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_bytes(b"\xff\xfe secret \x80")
    proc = run_cli("list", "--repo", enc_scenario.repo, "--password-file", pw)
    assert_one_line_error(proc, 2, "password file")


def test_passphrase_never_leaks(enc_scenario: Scenario, tmp_path: Path) -> None:
    """Run every command (successes and failures, env and --password-file) and grep every output,
    every repository file (tmp files included) and the audit log for both passphrases."""
    sc = enc_scenario
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    outputs: list[str] = []

    def run(*args: object, **kw):
        proc = run_cli(*args, **kw)
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    env = {"DRBDBACKUP_PASSWORD": PASSWORD}
    sc.mutate()
    assert_ok(run(*sc.backup_args(), env=env))
    assert_ok(run(*sc.backup_args(), "--password-file", pw))
    assert_ok(run("list", "--repo", sc.repo, "--json", env=env))
    assert_ok(run("check", "--repo", sc.repo, "--read-data", "--json", "--password-file", pw))
    assert_ok(run("restore", "--repo", sc.repo, "--volume-id", sc.volume, "--target",
                  tmp_path / "out", "--json", env=env))
    assert_ok(run("prune", "--repo", sc.repo, "--keep-last", "2", "--json", env=env))
    run("list", "--repo", sc.repo, env={"DRBDBACKUP_PASSWORD": WRONG})
    run("list", "--repo", sc.repo, "--debug", env={"DRBDBACKUP_PASSWORD": WRONG})
    run("init", "--repo", sc.repo, "--encryption", "aes-256-gcm", env=env)
    new = tmp_path / "new"
    assert_ok(run("init", "--repo", new, "--encryption", "aes-256-gcm", "--password-file", pw))

    secrets = [PASSWORD.encode(), WRONG.encode()]
    for text in outputs:
        for s in secrets:
            assert s.decode() not in text, f"passphrase in command output: {text!r}"
    for repo in (sc.repo, new):
        for name in repo_files(repo):
            data = (repo / name).read_bytes()
            for s in secrets:
                assert s not in data, f"passphrase stored in {repo / name}"
    audit = [(sc.repo / n).read_text() for n in repo_files(sc.repo) if n.startswith("audit/")]
    assert len(audit) >= 5 and not any(PASSWORD in a or WRONG in a for a in audit)
