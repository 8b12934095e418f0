"""Faults against a token-protected controller: one error line, the documented exit code,
no drbdbackup snapshot left behind, the repository unchanged, and the next run succeeds.
Also the controller failing or dying in the middle of a backup."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from fixtures import workload
from fixtures.sandbox import Sandbox
from tests.helpers import REPO_ROOT
from tests.linstor.conftest import start_sandbox
from tests.linstor.lsupport import Ctx, MiB, assert_one_error_line

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp("faults"), "auto", token=TOKEN)
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("tokens")
    (d / "good").write_text(TOKEN + "\n")
    (d / "bad").write_text("not-the-token\n")
    return {"good": str(d / "good"), "bad": str(d / "bad")}


@pytest.fixture(scope="module")
def base(sb: Sandbox, tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Ctx:
    """Resource `flt` (two volumes, node-a diskful, node-b diskless), backed up once;
    resource `dl` is diskless on both nodes."""
    c = Ctx(sb, tmp_path_factory.mktemp("frepo") / "repo",
            conn=["--token", tokens["good"], "--allow-insecure"]).init()
    sb.create_resource("flt", [3 * MiB, 2 * MiB], nodes=["node-a"])
    c.add_diskless("flt", "node-b")
    for vnr in (0, 1):
        dev, usable, _b = c.device("flt", "node-a", vnr)
        workload.sequential_run(dev, 0, usable, seed=vnr)
    sb.create_resource("dl", [2 * MiB], nodes=["node-a", "node-b"], pool="DfltDisklessStorPool")
    c.assert_only_newest_snapshot("flt", c.backup("flt"))
    return c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _faulty(**switches: object) -> Callable[[Ctx, dict], dict]:
    def arrange(c: Ctx, tokens: dict) -> dict:
        c.sb.set_faults(**switches)
        return {}
    return arrange


def _closed_port(c: Ctx, tokens: dict) -> dict:
    return {"env": {"LS_CONTROLLERS": f"linstor://127.0.0.1:{_free_port()}"}}


def _wrong_token(c: Ctx, tokens: dict) -> dict:
    return {"conn": ["--token", tokens["bad"], "--allow-insecure"]}


def _no_token(c: Ctx, tokens: dict) -> dict:
    return {"conn": []}


def _args(*rscs: str, extra: tuple[str, ...] = ()) -> Callable[[Ctx, dict], dict]:
    def arrange(c: Ctx, tokens: dict) -> dict:
        return {"rscs": rscs, "extra": extra}
    return arrange


# name: (arrange the fault, exit code, words the error line must contain)
FAULTS = {
    "controller-unreachable": (_closed_port, 3, ["unreachable"]),
    "controller-down": (_faulty(down=True), 3, ["unreachable"]),
    "wrong-token": (_wrong_token, 3, ["token"]),
    "no-token": (_no_token, 3, ["token"]),
    "unknown-resource": (_args("nosuch"), 2, ["nosuch"]),
    "unknown-volume-nr": (_args("flt", extra=("--volume-nr", "7")), 2, ["7"]),
    "diskless-only": (_args("dl"), 2, ["diskless"]),
    "unknown-node": (_args("flt", extra=("--node", "node-z")), 2, ["node-z"]),
    "snapshot-fails-on-node": (_faulty(snapshot_fail_on_node="node-a"), 3, ["snapshot"]),
    "snapshot-create-refused": (_faulty(error_routes=[r"^POST /v1/.*snapshot"]), 3, ["snapshot"]),
    "snapshot-list-fails-after-create": (_faulty(error_routes=[r"^GET /v1/view/snapshots"]), 3,
                                         ["snapshot"]),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_is_clean(fault: str, base: Ctx, tokens: dict[str, str]) -> None:
    arrange, code, words = FAULTS[fault]
    c = base
    snaps_before = c.snapshots()
    repo_before = c.repo_state()
    files_before = c.snapshot_files("flt")
    try:
        how = arrange(c, tokens)
        proc = c.backup_proc(*how.get("rscs", ("flt",)), extra=how.get("extra", ()),
                             env=how.get("env"), conn=how.get("conn"))
    finally:
        c.sb.set_faults(reset=True)
    line = assert_one_error_line(proc, code)
    assert all(w.lower() in line.lower() for w in words), line
    # --json: the error object on stdout, the same line on stderr (DESIGN section 9)
    assert json.loads(proc.stdout) == {"ok": False, "exit_code": code,
                                       "error": line.removeprefix("drbdbackup: error: ")}
    assert c.snapshots() == snaps_before, "the failed run left a snapshot behind"
    assert c.snapshot_files("flt") == files_before
    assert c.repo_state() == repo_before, "the failed run changed the repository"
    c.check()

    results = c.backup("flt")  # the fault cleared: the next run succeeds
    assert [r["mode"] for r in results] == ["incremental", "incremental"]
    c.assert_only_newest_snapshot("flt", results)


def test_token_over_plain_http_without_allow_insecure_is_one_clear_line(
    base: Ctx, tokens: dict[str, str]
) -> None:
    proc = base.backup_proc("flt", conn=["--token", tokens["good"]])
    line = assert_one_error_line(proc, 2)  # a usage problem, refused before connecting
    assert "--allow-insecure" in line


# ---- the controller fails or dies in the middle of a backup ------------------------------


@pytest.fixture(scope="module")
def rotation_delete_fails(sb: Sandbox, tokens: dict[str, str],
                          tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Generations written, then deleting the previous snapshot fails; then a normal run."""
    c = Ctx(sb, tmp_path_factory.mktemp("rot") / "repo",
            conn=["--token", tokens["good"], "--allow-insecure"]).init()
    sb.create_resource("rot", [2 * MiB], nodes=["node-a"])
    dev, usable, _b = c.device("rot")
    workload.sequential_run(dev, 0, usable, seed=5)
    out: dict = {"ctx": c, "first": c.backup("rot")}
    out["snap1"] = c.assert_only_newest_snapshot("rot", out["first"])
    sb.set_faults(error_routes=[r"^DELETE /v1/resource-definitions/rot/snapshots/"])
    try:
        out["proc"] = c.backup_proc("rot")
    finally:
        sb.set_faults(reset=True)
    out["gens_after_fault"] = c.generations("linstor.rot.0")
    out["snaps_after_fault"] = c.snapshots("rot").get("rot", [])
    out["check"] = subprocess.run([sys.executable, "-m", "drbdbackup", "check", "--repo", str(c.repo)],
                                  capture_output=True, text=True, cwd=REPO_ROOT).returncode
    out["next"] = c.backup("rot")
    out["snaps_after_next"] = c.snapshots("rot").get("rot", [])
    return out


def test_rotation_failure_is_reported_and_repo_consistent(rotation_delete_fails: dict) -> None:
    r = rotation_delete_fails
    # The generation is complete when the rotation fails: the run warns and exits 0 (the next
    # run removes the leftover); an exit 3 with one error line would also be clean.
    if r["proc"].returncode != 0:
        line = assert_one_error_line(r["proc"], 3)
        assert "snapshot" in line
    else:
        assert json.loads(r["proc"].stdout)["mode"] == "incremental"
    assert r["check"] == 0
    # the generation was complete before the rotation failed: it stays, with its snapshot
    assert len(r["gens_after_fault"]) == 2
    assert len(r["snaps_after_fault"]) == 2 and r["snap1"] in r["snaps_after_fault"]
    (nxt,) = r["next"]
    assert nxt["mode"] == "incremental"
    new = r["snaps_after_next"]
    assert new and new[-1] == max(new)


def test_rotation_failure_leaves_no_stray_snapshot(rotation_delete_fails: dict) -> None:
    r = rotation_delete_fails
    assert len(r["snaps_after_next"]) == 1, r["snaps_after_next"]


@pytest.fixture(scope="module")
def controller_killed(sb: Sandbox, tokens: dict[str, str],
                      tmp_path_factory: pytest.TempPathFactory) -> dict:
    """SIGKILL the emulator right after the backup's snapshot was taken; restart it; run again."""
    c = Ctx(sb, tmp_path_factory.mktemp("kill") / "repo",
            conn=["--token", tokens["good"], "--allow-insecure"]).init()
    sb.create_resource("kil", [2 * MiB], nodes=["node-a"])
    dev, usable, _b = c.device("kil")
    workload.sequential_run(dev, 0, usable, seed=6)
    out: dict = {"ctx": c, "first": c.backup("kil")}
    out["snap1"] = c.assert_only_newest_snapshot("kil", out["first"])
    out["repo_before"] = c.repo_state()
    before = set(_state_snapshots(sb, "kil"))
    sb.set_faults(slow_ms=700)  # every reply waits: the CLI is mid-request when we kill
    args = ["backup", "--repo", str(c.repo), "--resource", "kil", *c.conn, "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "drbdbackup", *args], env={**c.env, **_env()},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    deadline = time.monotonic() + 30
    while not (set(_state_snapshots(sb, "kil")) - before):  # the controller committed it
        assert proc.poll() is None and time.monotonic() < deadline, "no snapshot appeared"
        time.sleep(0.01)
    assert sb.proc is not None
    sb.proc.kill()  # the emulator we started: dies without replying
    sb.proc.wait()
    stdout, stderr = proc.communicate(timeout=120)
    out["proc"] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    sb.restart_emulator()  # same port, same state; fault switches cleared
    out["repo_after"] = c.repo_state()
    out["check"] = subprocess.run([sys.executable, "-m", "drbdbackup", "check", "--repo", str(c.repo)],
                                  capture_output=True, text=True, cwd=REPO_ROOT).returncode
    out["next"] = c.backup("kil")
    out["snaps_after_next"] = c.snapshots("kil").get("kil", [])
    return out


def _env() -> dict[str, str]:
    return dict(os.environ)


def _state_snapshots(sb: Sandbox, rsc: str) -> list[str]:
    """Snapshot names in the emulator's persisted state (written after the files exist)."""
    try:
        state = json.loads((sb.state_dir / "cluster.json").read_text())
    except (OSError, ValueError):
        return []
    return list(state.get("snapshots", {}).get(rsc, {}))


def test_controller_killed_mid_backup(controller_killed: dict) -> None:
    r = controller_killed
    line = assert_one_error_line(r["proc"], 3)
    assert "unreachable" in line or "controller" in line.lower()
    assert r["repo_after"] == r["repo_before"], "a half backup reached the repository"
    assert r["check"] == 0
    (nxt,) = r["next"]
    assert nxt["mode"] == "incremental" and nxt["parent"] == r["first"][0]["generation"]
    assert r["snap1"] not in r["snaps_after_next"]


def test_controller_killed_mid_backup_leaves_no_stray_snapshot(controller_killed: dict) -> None:
    r = controller_killed
    assert len(r["snaps_after_next"]) == 1, r["snaps_after_next"]


def test_snapshot_failing_half_way_through_a_group(sb: Sandbox, tokens: dict[str, str],
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    """Group hwa+hwb; hwb reads from node-b (its node-a replica is Outdated), so the group is
    snapshotted on node-a, then node-b; node-b fails after node-a's snapshot was taken."""
    c = Ctx(sb, tmp_path_factory.mktemp("halfway") / "repo",
            conn=["--token", tokens["good"], "--allow-insecure"]).init()
    for i, rsc in enumerate(("hwa", "hwb")):
        sb.create_resource(rsc, [2 * MiB], nodes=["node-a", "node-b"])
        for node in ("node-a", "node-b"):
            dev, usable, _b = c.device(rsc, node)
            workload.sequential_run(dev, 0, usable, seed=10 + i)
    sb.action("set_disk_state", resource="hwb", node="node-a", disk_state="Outdated")
    first = c.backup("hwa", "hwb")
    nodes = {r["volume_id"]: c.record_source(r["volume_id"], r["generation"])["node"] for r in first}
    assert nodes == {"linstor.hwa.0": "node-a", "linstor.hwb.0": "node-b"}
    snaps_before, repo_before = c.snapshots(), c.repo_state()
    assert {k: len(v) for k, v in snaps_before.items() if k in ("hwa", "hwb")} == {"hwa": 1, "hwb": 1}

    sb.set_faults(snapshot_fail_on_node="node-b")
    try:
        proc = c.backup_proc("hwa", "hwb")
    finally:
        sb.set_faults(reset=True)
    line = assert_one_error_line(proc, 3)
    assert "node-b" in line
    assert c.snapshots() == snaps_before
    assert c.repo_state() == repo_before
    c.check()

    second = c.backup("hwa", "hwb")
    assert [r["mode"] for r in second] == ["incremental", "incremental"]
    assert [r["parent"] for r in second] == [r["generation"] for r in first]
    for rsc in ("hwa", "hwb"):
        c.assert_only_newest_snapshot(rsc, second)


def test_slow_controller_still_succeeds(base: Ctx) -> None:
    base.sb.set_faults(slow_ms=150)
    try:
        results = base.backup("flt")
    finally:
        base.sb.set_faults(reset=True)
    assert [r["mode"] for r in results] == ["incremental", "incremental"]
    base.assert_only_newest_snapshot("flt", results)
