"""Prune per policy / per volume on a real repository (in-process ops, simulated clock), the
service's prune job (every policy by its own rules, one sweep) and the command line."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drbdbackup.errors import UnknownVolume, UsageError
from drbdbackup.ops import backup as backup_mod
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.maintenance import InitRequest, PruneRequest, check, init, list_volumes, prune
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.service.config import load_config
from drbdbackup.service.jobs import JobContext, prune_policy
from tests.helpers import run_cli

NEWEST = datetime(2026, 11, 30, 18, tzinfo=UTC)
PLAN = {  # volume -> (policy, hours between generations, count), newest at NEWEST
    "db1": ("db", 6, 16),       # four days, four a day
    "vm1": ("vms", 24, 8),      # eight days, one a day
    "man": (None, 24, 3),       # a manual backup: no policy
}


def _labels(rows: list[dict], volume: str) -> list[str]:
    return [f"{volume}/{r['generation']}" for r in rows if r["volume_id"] == volume]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository every test starts from (built once: 27 backups on a simulated clock)."""
    where = tmp_path_factory.mktemp("template")
    ref = RepositoryRef.of(str(where / "repo"))
    init(ref, InitRequest(chunk_size=65536))
    src = where / "disk.img"
    clock = [NEWEST]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backup_mod, "now", lambda: clock[0])
        for volume, (policy, step_h, count) in PLAN.items():
            for i in range(count - 1, -1, -1):
                clock[0] = NEWEST - timedelta(hours=step_h * i)
                src.write_bytes(os.urandom(65536) + bytes(65536))  # unique data: removal frees packs
                back_up_file(ref, FileBackup(str(src), volume, policy), BackupOptions())
    return where / "repo"


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> RepositoryRef:
    shutil.copytree(template, tmp_path / "repo")
    return RepositoryRef.of(str(tmp_path / "repo"))


def _last_audit(ref: RepositoryRef) -> dict:
    assert ref.location is not None
    names = sorted(p for p in (Path(ref.location) / "audit").iterdir() if p.name.isdigit())
    return json.loads(names[-1].read_bytes())


def test_service_prunes_each_policy_by_its_own_rules(repo: RepositoryRef, tmp_path: Path) -> None:
    conf = tmp_path / "service.toml"
    conf.write_text(f'[service]\nlisten = "127.0.0.1:8470"\ntoken_file = "t"\nstate_db = "s.db"\n'
                    f'[repository]\nlocation = "{repo.location}"\n'
                    '[[policy]]\nname = "db"\nfiles = [{ path = "a", volume_id = "db1" }]\n'
                    'keep_within = "2d"\n'
                    '[[policy]]\nname = "vms"\nfiles = [{ path = "b", volume_id = "vm1" }]\n'
                    'keep_daily = 3\nkeep_monthly = 1\n'
                    '[[policy]]\nname = "none"\nfiles = [{ path = "c", volume_id = "x" }]\n')
    settings = load_config(str(conf))  # different keep rules per policy are fine now
    before = list_volumes(repo)
    ctx = JobContext(settings, None, None, throttle=None)  # type: ignore[arg-type]
    out = prune_policy(ctx, settings.policy[0])
    after = list_volumes(repo)
    db, vm = _labels(before, "db1"), _labels(before, "vm1")
    assert _labels(after, "db1") == db[-8:]  # 2 days at 6 h: the newest 8 (the 9th is exactly 48 h)
    assert _labels(after, "vm1") == vm[-3:]  # newest of the last 3 days (monthly: the newest again)
    assert _labels(after, "man") == _labels(before, "man"), "no policy: only a manual prune"
    removed = db[:-8] + vm[:-3]
    assert sorted(out["removed_generations"]) == sorted(removed) and out["removed_packs"] >= len(removed)
    assert all("within 2d" in out["kept_because"][g] for g in db[-8:])
    assert out["kept_because"][vm[-1]] == ["daily 2026-11-30", "monthly 2026-11"]
    assert "policy vms" in out["removed_because"][vm[0]] and "daily 3" in out["removed_because"][vm[0]]
    assert out["outside_scope"] == 3
    entry = _last_audit(repo)
    assert entry["event"] == "prune"
    details = entry["details"]
    assert sorted(details["removed_generations"]) == sorted(removed)
    assert set(details["removed_because"]) == set(removed)
    assert {s["policy"] for s in details["scopes"]} == {"db", "vms"}
    assert check(repo, read_data=True).ok


def test_manual_prune_by_volume_and_policy(repo: RepositoryRef) -> None:
    before = list_volumes(repo)
    rep = prune(repo, PruneRequest(keep_last=1, volume_id="man"))
    assert rep.removed_generations == _labels(before, "man")[:-1]
    rep = prune(repo, PruneRequest(keep_yearly=1, policy="vms", volume_id="db1"))
    assert rep.removed_generations == [] and rep.outside_scope == len(before) - 2  # db1 is not vms
    rep = prune(repo, PruneRequest(keep_hourly=2, dry_run=True))  # no policy: every generation
    assert len(rep.kept_generations) == 5 and rep.dry_run  # 2 + 2 + the one "man" kept
    assert len(list_volumes(repo)) == len(before) - 2, "a dry run removes nothing"
    with pytest.raises(UnknownVolume):
        prune(repo, PruneRequest(keep_last=1, volume_id="nope"))


def test_no_rule_is_refused_before_the_repository_is_touched(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least one keep rule"):
        prune(RepositoryRef.of(str(tmp_path / "absent")), PruneRequest(policy="db"))
    with pytest.raises(UsageError, match="invalid duration"):
        prune(RepositoryRef.of(str(tmp_path / "absent")), PruneRequest(keep_within="2 days"))
    assert not (tmp_path / "absent").exists()


def test_cli(repo: RepositoryRef) -> None:
    assert repo.location is not None
    before = list_volumes(repo)
    proc = run_cli("prune", "--repo", repo.location, "--policy", "vms", "--keep-within", "36h",
                   "--dry-run", "--json")
    out = json.loads(proc.stdout)
    assert len(out["kept_because"]) == 2 and len(out["removed_generations"]) == 6
    assert all("within 1d12h" in why for why in out["kept_because"].values())
    text = run_cli("prune", "--repo", repo.location, "--volume-id", "vm1", "--keep-monthly", "1").stdout
    assert "removed 7 generation(s)" in text and "monthly 2026-11" in text
    proc = run_cli("prune", "--repo", repo.location, "--keep-within", "2days", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("drbdbackup: error: invalid duration")
    assert len(list_volumes(repo)) == len(before) - 7
