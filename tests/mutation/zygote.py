"""A fork server for the mutation suite: imports both tools once, then runs each command in a
forked child (the CLI's main called in-process) and reports its exit code, wall time and peak
RSS from os.wait4.

Started as its own small process, not forked from pytest: a forked child inherits its parent's
RSS high-water mark, so children of a large pytest process would report pytest's peak. This
process stays small (the tools imported, nothing read), so a child's ru_maxrss is at most a few
MiB above its own peak.

Protocol: one JSON object per line on stdin, one answer per line on stdout.
  {"tool": "drbdbackup"|"drbdverify", "argv": [...], "env": {...}, "out": PATH, "err": PATH,
   "timeout": SECONDS}  ->  {"rc": N, "maxrss_mib": F, "seconds": F, "timed_out": BOOL}
  {"warm": [KEY FILE PATH, ...], "password": PW}  ->  {"ok": true}  (derives the key once here,
  so every child finds it memoized: scrypt at the writers' parameters takes ~1 s per command)
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tempfile
import time

from drbdbackup import cli as drbdbackup_cli
from drbdbackup.cli import main as drbdbackup_main
from drbdbackup.repo import crypto
from verify import cli as verify_cli
from verify import keys
from verify.cli import main as drbdverify_main

MAINS = {"drbdbackup": drbdbackup_main, "drbdverify": drbdverify_main}


def _memoize() -> None:
    """What every child would compute again: scrypt at the writers' parameters (~1 s) and the
    argument parsers (deterministic; each child parses with its own copy)."""
    crypto._kek = functools.lru_cache(maxsize=16)(crypto._kek)
    keys.derive_kek = functools.lru_cache(maxsize=16)(keys.derive_kek)
    drbdbackup_cli.build_parser = functools.lru_cache(maxsize=1)(drbdbackup_cli.build_parser)
    verify_cli.build_parser = functools.lru_cache(maxsize=1)(verify_cli.build_parser)


def _child(req: dict) -> None:
    """Runs in the forked child; never returns."""
    code = 3
    try:
        out = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.environ.update(req.get("env", {}))
        rc = MAINS[req["tool"]](list(req["argv"]))
        code = rc if isinstance(rc, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # noqa: BLE001 - reported as exit 99: an escaped exception
        print(f"zygote: escaped {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(req: dict) -> dict:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(req)
    deadline = start + float(req.get("timeout", 30))
    timed_out = False
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid:
            break
        if time.monotonic() > deadline and not timed_out:
            os.kill(pid, 9)
            timed_out = True
        time.sleep(0.002)
    return {"rc": os.waitstatus_to_exitcode(status), "maxrss_mib": usage.ru_maxrss / 1024,
            "seconds": time.monotonic() - start, "timed_out": timed_out}


def _warm(req: dict) -> dict:
    for path in req["warm"]:
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            crypto.unwrap_master_key(data, req["password"])
            keys.unwrap_master_key([data], req["password"])
        except Exception:  # noqa: BLE001 - a key file that does not open is not memoized
            pass
    return {"ok": True}


def _import_everything_once() -> None:
    """Run each command once in this process on a throw-away repository, so the children find
    every module imported (a child that imports them itself spends a second doing so)."""
    with tempfile.TemporaryDirectory(prefix="zygote-") as tmp:
        repo, disk, target = f"{tmp}/r", f"{tmp}/d", f"{tmp}/t"
        with open(disk, "wb") as fh:
            fh.write(b"warm" * 40000)
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
                contextlib.redirect_stderr(null):
            drbdbackup_main(["init", "--repo", repo, "--chunk-size", "64K"])
            drbdbackup_main(["backup", "--repo", repo, "--file", disk, "--volume-id", "v"])
            drbdbackup_main(["list", "--repo", repo, "--json"])
            drbdbackup_main(["restore", "--repo", repo, "--volume-id", "v", "--target", target])
            drbdbackup_main(["check", "--repo", repo, "--read-data"])
            drbdverify_main(["--repo", repo, "--full"])


def _revert_bounds() -> None:
    """DRBDBACKUP_MUTANTS_REVERT=depth,plain_length (a negative control, never in CI): put the
    pre-fix readers of drbdbackup back (fuzz/_revert_product.py), to see the suite catch them."""
    names = {n for n in os.environ.get("DRBDBACKUP_MUTANTS_REVERT", "").split(",") if n}
    if names:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fuzz"))
        import _revert_product

        _revert_product.revert(names)


def main() -> None:
    _memoize()
    _revert_bounds()
    _import_everything_once()
    for line in sys.stdin:
        req = json.loads(line)
        answer = _warm(req) if "warm" in req else _run(req)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
