"""`drbdbackup demo`: the whole job on a built-in sandbox LINSTOR cluster (the only runtime user
of fixtures/). Every step runs the real command line, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from drbdbackup.errors import EXIT_OK, EnvironmentFailure

RSC = "demo-vm"
SIZE = 256 << 20


def _run(env: dict, *args: str, tool: str = "drbdbackup") -> dict:
    module = "drbdbackup" if tool == "drbdbackup" else "verify"
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--json"], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise EnvironmentFailure(f"demo step `{tool} {' '.join(args[:1])}` failed: {last}")
    return json.loads(proc.stdout)


def _say(as_json: bool, text: str) -> None:
    if not as_json:
        print(text, flush=True)


def run_demo(workdir: str | None, *, as_json: bool = False) -> int:
    try:
        from fixtures.sandbox import Sandbox
        from fixtures.workload import fill, scattered_writes
    except ImportError:
        raise EnvironmentFailure(
            "the demo needs the fixtures package: run it from a source checkout (pip install .)"
        ) from None
    work = Path(workdir or tempfile.mkdtemp(prefix="drbdbackup-demo-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "repo"
    artifacts: dict = {"workdir": str(work), "repository": str(repo)}
    with Sandbox(work / "sandbox") as sb:
        env = {**os.environ, "LS_CONTROLLERS": sb.controllers}
        _say(as_json, f"sandbox: LINSTOR emulator at {sb.controllers}, pool on "
             f"{'XFS with reflink (loop device)' if sb.mounted else 'a plain directory'}")
        sb.create_cluster()
        info = sb.create_resource(RSC, [SIZE])
        vol = info.volumes[(sorted(info.nodes)[0], 0)]
        fill(vol.device_path, size=vol.usable_bytes, seed=1)
        _say(as_json, f"created resource {RSC} ({vol.usable_bytes >> 20} MiB) on {vol.node}: {vol.device_path}")

        _run(env, "init", "--repo", str(repo))
        full = _run(env, "backup", "--repo", str(repo), "--resource", RSC)
        _say(as_json, f"backup 1: {full['mode']}, read {full['read_bytes'] >> 20} MiB, "
             f"stored {full['stored_bytes'] >> 20} MiB in {full['duration_s']:.2f}s")
        touched = scattered_writes(vol.device_path, 40, seed=2, size=vol.usable_bytes)
        _say(as_json, f"changed {len(touched)} scattered 64 KiB blocks")
        incr = _run(env, "backup", "--repo", str(repo), "--resource", RSC, "--verify-sample", "0.2")
        _say(as_json, f"backup 2: {incr['mode']} via {incr['tracker']}, changed "
             f"{incr['changed_bytes'] >> 20} MiB, read {incr['read_bytes'] >> 20} MiB, stored "
             f"{incr['stored_bytes'] >> 10} KiB; verification: {incr['verification'].get('verdict')}")
        restored = _run(env, "restore", "--repo", str(repo), "--volume-id", incr["volume_id"],
                        "--to-resource", f"{RSC}-restored")
        _say(as_json, f"restored to new resource: {restored['target']}")
        snapshot_copy = work / "source-at-backup-2.img"
        image = work / "restored.img"
        _run(env, "restore", "--repo", str(repo), "--volume-id", incr["volume_id"], "--target", str(image), "--force")
        with open(vol.device_path, "rb") as src, open(snapshot_copy, "wb") as dst:
            dst.write(src.read(vol.usable_bytes))
        junit = work / "verify-junit.xml"
        verdict = _run(env, "--repo", str(repo), "--full", "--source", str(snapshot_copy),
                       "--volume-id", incr["volume_id"], "--junit", str(junit), tool="verify")
        _say(as_json, f"drbdverify --full --source: {'PASS' if verdict['ok'] else 'FAIL'}, "
             f"{verdict['chunks_checked']} chunks checked, "
             f"{verdict['bytes_compared_with_source'] >> 20} MiB compared with the source")
        report = work / "report.html"
        _run(env, "report", "--repo", str(repo), "--format", "html", "--output", str(report))
        artifacts.update(
            backups=[full, incr], restored_resource=restored["target"], restored_image=str(image),
            junit=str(junit), report=str(report), verification=verdict["ok"],
        )
    if as_json:
        print(json.dumps(artifacts, sort_keys=True))
    else:
        print("\nartifacts:")
        for key in ("workdir", "repository", "restored_image", "junit", "report"):
            print(f"  {key:<15} {artifacts[key]}")
        print(f"  {'resource':<15} {artifacts['restored_resource']} (removed with the sandbox)")
    return EXIT_OK if artifacts["verification"] else 1
