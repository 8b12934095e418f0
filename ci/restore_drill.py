"""Restore drill for CI: restore the latest generation of each volume, verify it, run a hook.

For every chosen volume (default: every volume in the repository):

1. ``drbdbackup list --repo REPO --json`` -> the latest generation id (pinned, so a backup landing
   during the drill cannot change what is checked);
2. ``drbdbackup restore --repo REPO --volume-id ID --generation GEN --target SCRATCH/ID.img``;
3. ``drbdverify --repo REPO --full --volume-id ID --generation GEN --source SCRATCH/ID.img``:
   every chunk re-hashed and compared with the restored bytes — two independent readers agree;
4. optionally a user hook, e.g. ``--hook 'fsck -n {target}'`` (``{target}``, ``{volume_id}``,
   ``{generation}`` are substituted, shell-quoted);
5. one JUnit testcase per step (restore, verify, hook), scratch removed, exit 1 on any failure.

The product is only ever run as a subprocess: this module imports nothing from ``drbdbackup``.
Exit codes: 0 all steps passed; 1 a step failed; 2 bad usage; 3 the repository could not be listed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3
TAIL = 4000


@dataclass
class Step:
    """One JUnit testcase: restore, verify or hook of one volume."""

    volume_id: str
    name: str
    status: str = "pass"  # pass | fail | skipped
    message: str = ""
    output: str = ""
    seconds: float = 0.0


@dataclass
class Drill:
    """Everything a drill run did."""

    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return any(s.status == "pass" for s in self.steps) and not any(
            s.status == "fail" for s in self.steps)


def _default_cmd(script: str, module: str) -> list[str]:
    found = shutil.which(script)
    return [found] if found else [sys.executable, "-m", module]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"restore_drill: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="restore_drill", description="Restore, verify and check each volume.")
    p.add_argument("--repo", required=True)
    p.add_argument("--volume-id", action="append", dest="volumes", metavar="ID",
                   help="volume to drill (repeatable; default: every volume)")
    p.add_argument("--scratch", help="directory for restored images (default: system temp)")
    p.add_argument("--hook", help="command run on each restored image, e.g. 'fsck -n {target}'")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--password-file", help="passphrase file (else DRBDBACKUP_PASSWORD)")
    p.add_argument("--drbdbackup", help="command for the product CLI (default: drbdbackup)")
    p.add_argument("--drbdverify", help="command for the verifier (default: drbdverify)")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per step")
    p.add_argument("--keep", action="store_true", help="keep restored images (debugging)")
    return p


def _run(cmd: list[str] | str, timeout: float, shell: bool = False) -> tuple[int, str, float, str]:
    """Run a command; (exit code, combined output, seconds, stdout alone). Callers keep only the
    last TAIL characters of the combined output in reports; JSON is parsed from stdout alone (a
    warning on stderr must not break it), whole (a long `list --json` must not be cut)."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, shell=shell,
                           stdin=subprocess.DEVNULL)
        rc, out, stdout = p.returncode, (p.stdout + p.stderr), p.stdout
    except subprocess.TimeoutExpired:
        rc, out, stdout = 124, f"timed out after {timeout:.0f} s", ""
    except OSError as e:
        rc, out, stdout = 127, f"cannot run {cmd!r}: {e.strerror}", ""
    return rc, out, time.monotonic() - start, stdout


def latest_generations(backup: list[str], repo: str, pw: list[str],
                       timeout: float) -> dict[str, str]:
    """volume_id -> latest generation id, from ``drbdbackup list --json``."""
    rc, out, _s, stdout = _run([*backup, "list", "--repo", repo, "--json", *pw], timeout)
    if rc != 0:
        raise RuntimeError(f"drbdbackup list failed (exit {rc}): {out[-TAIL:].strip().splitlines()[-1:]}")
    try:
        gens = json.loads(stdout)["generations"]
    except (ValueError, KeyError, TypeError):
        raise RuntimeError("drbdbackup list --json did not print {\"generations\": [...]}") from None
    latest: dict[str, str] = {}
    for g in gens:
        vid, gen = g["volume_id"], g["generation"]
        if gen > latest.get(vid, ""):
            latest[vid] = gen
    return latest


def drill_volume(args: argparse.Namespace, backup: list[str], verify: list[str], pw: list[str],
                 vid: str, gen: str, scratch: str) -> list[Step]:
    """Restore, verify and hook one volume; returns its three steps."""
    work = tempfile.mkdtemp(prefix=f"drill-{vid}-", dir=scratch)
    target = os.path.join(work, f"{vid}.img")
    steps = [Step(vid, "restore"), Step(vid, "verify"), Step(vid, "hook")]
    try:
        rc, out, secs, _o = _run([*backup, "restore", "--repo", args.repo, "--volume-id", vid,
                              "--generation", gen, "--target", target, *pw], args.timeout)
        steps[0].seconds, steps[0].output = secs, out[-TAIL:]
        if rc != 0:
            steps[0].status, steps[0].message = "fail", f"restore of {gen} exited {rc}"
            for s in steps[1:]:
                s.status, s.message = "skipped", "restore failed"
            return steps
        steps[0].message = f"restored {gen}"
        rc, out, secs, stdout = _run([*verify, "--repo", args.repo, "--full", "--volume-id", vid,
                              "--generation", gen, "--source", target, "--json", *pw],
                             args.timeout)
        steps[1].seconds, steps[1].output = secs, out[-TAIL:]
        try:
            res = json.loads(stdout)
            summary = (f"checked {res['chunks_checked']} chunks, {res['chunks_failed']} failed, "
                       f"{res['bytes_compared_with_source']} bytes compared with the restore")
        except (ValueError, KeyError):
            summary = out[-TAIL:].strip().splitlines()[-1] if out.strip() else ""
        steps[1].message = summary
        if rc != 0:
            steps[1].status, steps[1].message = "fail", f"drbdverify exited {rc}: {summary}"
        if not args.hook:
            steps[2].status, steps[2].message = "skipped", "no hook configured"
            return steps
        cmd = args.hook.format(target=shlex.quote(target), volume_id=shlex.quote(vid),
                               generation=shlex.quote(gen))
        rc, out, secs, _o = _run(cmd, args.timeout, shell=True)
        steps[2].seconds, steps[2].output = secs, out[-TAIL:]
        steps[2].message = f"hook exited {rc}"
        if rc != 0:
            steps[2].status = "fail"
        return steps
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def to_junit(drill: Drill, elapsed: float) -> bytes:
    """One testsuite, one testcase per volume and step."""
    fails = sum(s.status == "fail" for s in drill.steps)
    skips = sum(s.status == "skipped" for s in drill.steps)
    root = ET.Element("testsuites", name="restore-drill", tests=str(len(drill.steps)),
                      failures=str(fails), errors="0", skipped=str(skips), time=f"{elapsed:.3f}")
    suite = ET.SubElement(root, "testsuite", name="restore-drill", tests=str(len(drill.steps)),
                          failures=str(fails), errors="0", skipped=str(skips),
                          time=f"{elapsed:.3f}",
                          timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                          hostname=socket.gethostname())
    for s in drill.steps:
        case = ET.SubElement(suite, "testcase", classname=f"restore_drill.{s.volume_id}",
                             name=s.name, time=f"{s.seconds:.3f}")
        if s.status == "fail":
            ET.SubElement(case, "failure", message=s.message[:500], type="drill").text = s.output
        elif s.status == "skipped":
            ET.SubElement(case, "skipped", message=s.message[:500])
        if s.output:
            ET.SubElement(case, "system-out").text = s.output
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def main(argv: list[str] | None = None) -> int:
    """Run the drill; exit code as documented in the module docstring."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    backup = shlex.split(args.drbdbackup) if args.drbdbackup else _default_cmd(
        "drbdbackup", "drbdbackup.cli")
    verify = shlex.split(args.drbdverify) if args.drbdverify else _default_cmd(
        "drbdverify", "verify")
    pw = ["--password-file", args.password_file] if args.password_file else []
    scratch = args.scratch or tempfile.gettempdir()
    if not os.path.isdir(scratch):
        sys.stderr.write(f"restore_drill: scratch directory {scratch} does not exist\n")
        return EXIT_USAGE
    start = time.monotonic()
    try:
        latest = latest_generations(backup, args.repo, pw, args.timeout)
    except RuntimeError as e:
        sys.stderr.write(f"restore_drill: {e}\n")
        return EXIT_ENV
    volumes = args.volumes or sorted(latest)
    unknown = [v for v in volumes if v not in latest]
    if unknown:
        sys.stderr.write(f"restore_drill: no generations for volume(s) {', '.join(unknown)}\n")
        return EXIT_USAGE
    if not volumes:
        sys.stderr.write("restore_drill: repository has no generations to drill\n")
        return EXIT_FAIL
    drill = Drill()
    for vid in volumes:
        drill.steps.extend(drill_volume(args, backup, verify, pw, vid, latest[vid], scratch))
    elapsed = time.monotonic() - start
    if args.junit:
        with open(args.junit, "wb") as f:
            f.write(to_junit(drill, elapsed))
    if args.json:
        print(json.dumps({"ok": drill.ok, "steps": [
            {"volume_id": s.volume_id, "step": s.name, "status": s.status,
             "message": s.message, "seconds": round(s.seconds, 3)} for s in drill.steps]}))
    else:
        for s in drill.steps:
            print(f"{s.volume_id} {s.name}: {s.status.upper()} {s.message}")
        print(f"restore drill: {'PASS' if drill.ok else 'FAIL'}")
    return EXIT_OK if drill.ok else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
