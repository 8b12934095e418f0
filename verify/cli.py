"""``drbdverify``: independent verification of a drbdbackup repository.

Exit codes: 0 every check passed, or the repository holds no generations (verdict "empty");
1 integrity failure found (including a damaged config or no readable key file); 2 bad usage or
input (unknown volume/generation, missing passphrase, **wrong passphrase**); 3 environment
failure (I/O, permission) or a check that could not be performed (``--source`` missing: verdict
"unverifiable"); 4 repository locked. Every error is one line ``drbdverify: error: ...`` on
stderr; with ``--json`` also ``{"ok": false, "verdict": "error", "error", "exit_code"}`` on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import Any, NoReturn

from . import audit, evidence
from .checker import Options, Verifier, select_targets
from .errors import EXIT_ENVIRONMENT, EXIT_INTEGRITY, EXIT_OK, UsageError, VerifyError
from .format import HEX64_RE
from .lock import SharedLock
from .report import to_json, to_junit, to_text
from .repository import Repository
from .results import FAIL, NOTE, Finding, RunResult
from .sampler import Selection
from .store import open_store

DEFAULT_SAMPLE = 0.05
EPILOG = """\
default: every volume, its latest generation, full structure check + --sample 0.05;
            with --full every retained generation (--generation latest limits it;
            with --source the latest, since a source holds one generation's bytes).
always: the audit chain and its ties to the records (format.md 12.1); --audit-head HASH
            also fails unless that head (recorded in a report or elsewhere) is in the chain.
--sample P  checks max(1, ceil(P*A)) of the A chunk positions, chosen with --seed.
--subset n/t checks positions whose chunk id has int(id[:8], 16) % t == n-1 (and re-hashes
            packs whose id is in that bucket); runs 1/t..t/t together cover everything.
--full      checks every position and re-hashes every pack the generations use.
an empty repository (no generations) is not an error: verdict "empty", exit 0.
exit codes: 0 pass (or empty); 1 integrity failure; 2 bad usage or input (incl. wrong
            passphrase, a --volume-id/--generation that does not exist); 3 environment
            failure or unverifiable (--source missing); 4 repository locked.
errors: one line "drbdverify: error: ..." on stderr (--debug adds the traceback, never
            changes the exit code); with --json also {"ok": false, ...} on stdout.
"""
PREFIX = "drbdverify: error: "
MAX_AUDITED_CHECKS = 1000  # keeps the verify audit entry far below the audit-entry size limit


def version() -> str:
    """The installed drbdbackup distribution's version (drbdverify ships in it), or "unknown"."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("drbdbackup")
    except PackageNotFoundError:
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (`--password SECRET` must not pass as `--password-file`), and the
    values of unrecognized arguments are not echoed (they may be secrets)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix):].split()
            names = [w.split("=", 1)[0] for w in words if w.startswith("-")]
            hidden = len(words) - len(names) + sum("=" in w for w in words if w.startswith("-"))
            message = prefix + " ".join(names) + (f" (and {hidden} value(s), not shown)" if hidden else "")
        raise UsageError(f"drbdverify: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="drbdverify",
        description="Independently verify a drbdbackup repository (reads docs/format.md only).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument("--repo", required=True, help="repository directory")
    p.add_argument("--volume-id", help="only this volume (default: every volume)")
    p.add_argument("--generation", help="GEN, 'latest' or 'all' (default: 'all' with --full, "
                   "else 'latest')")
    p.add_argument("--audit-head", metavar="HASH",
                   help="an audit head recorded elsewhere; FAIL unless it is in the chain")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sample", type=float, metavar="P",
                      help=f"check a random fraction P of chunk positions (default {DEFAULT_SAMPLE})")
    mode.add_argument("--full", action="store_true", help="check every chunk and re-hash every pack")
    mode.add_argument("--subset", metavar="n/t", help="deterministic partition n of t (1-based)")
    p.add_argument("--source", help="compare checked chunks with this file/device at the same offsets")
    p.add_argument("--seed", type=int, help="sampling seed (default: random, printed)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--password-file", help="file holding the passphrase (else DRBDBACKUP_PASSWORD)")
    p.add_argument("--no-quarantine", action="store_true", help="do not write quarantine records")
    p.add_argument("--no-audit", action="store_true", help="do not append an audit entry")
    p.add_argument("--debug", action="store_true", help="tracebacks on errors")
    p.add_argument("--version", action="version", version=f"drbdverify {version()}")
    return p


def _selection(args: argparse.Namespace, seed: int) -> Selection:
    if args.full:
        return Selection("full", 1.0, seed)
    if args.subset:
        try:
            return Selection.parse_subset(args.subset, seed)
        except ValueError as e:
            raise UsageError(str(e)) from None
    rate = DEFAULT_SAMPLE if args.sample is None else args.sample
    if not 0 < rate <= 1:
        raise UsageError("--sample P needs 0 < P <= 1")
    return Selection("sample", rate, seed)


def _passphrase(args: argparse.Namespace) -> str | None:
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as e:
            raise UsageError(f"cannot read password file {args.password_file}: {e.strerror}") from None
    return os.environ.get("DRBDBACKUP_PASSWORD")


def _audit_details(run: RunResult) -> dict[str, object]:
    return {
        "tool": "drbdverify",
        "verdict": run.verdict,
        "selection": run.selection,
        "seed": run.seed,
        "checks": [
            {"volume_id": c.volume_id, "generation": c.generation, "verdict": c.verdict,
             "chunks_checked": c.chunks_checked, "chunks_total": c.chunks_total,
             "chunks_failed": c.chunks_failed,
             "bytes_compared_with_source": c.bytes_compared_with_source}
            for c in run.checks[:MAX_AUDITED_CHECKS]
        ],
        "checks_not_listed": max(0, len(run.checks) - MAX_AUDITED_CHECKS),
        "findings": len(run.all_findings()),
        "quarantined": run.quarantined,
    }


def _evidence(repo: Repository, head: str | None, targets: list[tuple[str, str]]) -> list[Finding]:
    """The audit chain, its ties to the records, records that do not open (beyond those
    checked) and the external anchor (section 12.1)."""
    chain = audit.walk_chain(repo.store)
    ties = evidence.record_ties(repo)
    found = chain.findings + evidence.tie_findings(chain, ties)
    found += evidence.unreadable_findings(ties, set(targets))
    found += evidence.seal_findings(chain, repo)
    if head is not None:
        anchor = evidence.anchor_finding(chain, head)
        if anchor is not None:
            found.append(anchor)
    return found


def run(args: argparse.Namespace) -> int:
    """Run one verification; returns the exit code."""
    if args.audit_head is not None and not HEX64_RE.match(args.audit_head.lower()):
        raise UsageError("--audit-head needs the 64 hex digits of an audit entry's SHA-256")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    selection = _selection(args, seed)
    passphrase = _passphrase(args)
    store = open_store(args.repo)
    started = time.monotonic()
    with SharedLock(store, "verify") as lock:
        repo = Repository(store, passphrase)
        generation = args.generation or ("all" if args.full and not args.source else "latest")
        targets = select_targets(repo.generations(), args.volume_id, generation)
        opts = Options(selection, args.source, quarantine=not args.no_quarantine)
        result = Verifier(repo, opts).run(targets)
        result.findings.extend(_evidence(repo, args.audit_head, targets))
        result.findings.extend(
            Finding("stale-lock", "stale lock (expired or its process is gone); left in place",
                    name, severity=NOTE)
            for name in lock.stale
        )
        result.findings.extend(
            Finding("lock-unreadable", f"{why}; ignored", name, severity=NOTE)
            for name, why in lock.unreadable
        )
        if not args.no_audit:
            if result.quarantined:
                audit.append_entry(store, "quarantine", {
                    "tool": "drbdverify", "records": result.quarantined}, crypto=repo.crypto)
            result.audit_entry = audit.append_entry(store, "verify", _audit_details(result),
                                                    crypto=repo.crypto)
    elapsed = time.monotonic() - started
    if args.junit:
        try:
            with open(args.junit, "wb") as f:
                f.write(to_junit(result, elapsed))
        except OSError as e:
            raise VerifyError(f"cannot write {args.junit}: {e.strerror}") from None
    if args.json:
        sys.stdout.write(json.dumps(to_json(result), indent=2) + "\n")
    else:
        sys.stdout.write(to_text(result))
    if result.ok:
        return EXIT_OK
    if result.verdict == FAIL:
        return EXIT_INTEGRITY
    return EXIT_ENVIRONMENT


def _fail(argv: list[str], msg: str, code: int, debug: bool) -> int:
    """One error line on stderr (after the traceback with --debug); the JSON object with --json."""
    if debug:
        traceback.print_exc()
    msg = msg.removeprefix("drbdverify: ").removeprefix("error: ")
    sys.stderr.write(f"{PREFIX}{msg}\n")
    if "--json" in argv:
        sys.stdout.write(json.dumps({"ok": False, "verdict": "error", "error": msg,
                                     "exit_code": code}) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Console entry point; errors are one line on stderr (tracebacks only with --debug)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        return run(build_parser().parse_args(argv))
    except VerifyError as e:
        return _fail(argv, str(e), e.exit_code, debug)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        sys.stderr.write("drbdverify: interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 - one line, never a traceback without --debug
        return _fail(argv, f"internal error: {e.__class__.__name__}: {e}", EXIT_ENVIRONMENT, debug)


if __name__ == "__main__":
    sys.exit(main())
