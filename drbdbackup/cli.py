"""Command line: argument parsing, output (text or --json), exit codes. No logic lives here."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence

from drbdbackup.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTEGRITY,
    EXIT_OK,
    DiskFull,
    DrbdBackupError,
    RepositoryLocked,
    UsageError,
)

PROG = "drbdbackup"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parse_size(text: str) -> int:
    """'1M', '64KiB', '1048576' -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", text)
    if not m:
        raise UsageError(f"invalid size {text!r}: use e.g. 64K, 1M, 4MiB")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


def _rate(text: str | None) -> int:
    return parse_size(text) if text else 0


def _probability(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise UsageError(f"invalid sample rate {text!r}: use a number in (0, 1]") from None
    if not 0 < p <= 1:
        raise UsageError(f"sample rate {p} out of range: use a number in (0, 1]")
    return p


def read_password(args: argparse.Namespace) -> str | None:
    if getattr(args, "password_file", None):
        try:
            with open(args.password_file, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read password file {args.password_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"password file {args.password_file} is not UTF-8 text") from None
    return os.environ.get("DRBDBACKUP_PASSWORD") or None


def _open_repo(args: argparse.Namespace):
    from drbdbackup.repo.open import backend_for
    from drbdbackup.repo.repository import Repository

    return Repository.open(backend_for(args.repo), read_password(args))


def _controller(args: argparse.Namespace):
    from drbdbackup.linstor.client import Controller

    token = os.environ.get("DRBDBACKUP_LINSTOR_TOKEN") or None
    if args.token:
        try:
            with open(args.token, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read token file {args.token}: {exc.strerror}") from None
    return Controller(
        args.controllers, token=token, certfile=args.certfile, keyfile=args.keyfile,
        cafile=args.cafile, allow_insecure=args.allow_insecure,
    )


def _emit(args: argparse.Namespace, obj: dict, text: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(obj, sort_keys=True))
    else:
        print(text())


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---- commands --------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from drbdbackup.repo.open import backend_for
    from drbdbackup.repo.repository import Repository

    chunk = parse_size(args.chunk_size)
    repo = Repository.init(
        backend_for(args.repo, create=True),
        chunk_size=chunk,
        encryption=args.encryption,
        passphrase=read_password(args),
    )
    _emit(
        args,
        {"repository": args.repo, "repository_id": repo.id, "chunk_size": chunk, "encryption": args.encryption},
        lambda: f"created repository {repo.id[:16]} at {args.repo} "
        f"(chunk size {_human(chunk)}, encryption {args.encryption})",
    )
    return EXIT_OK


def _audited(command: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Record a failed run of a data command in the repository's audit log, then re-raise."""

    def wrap(fn: Callable[[argparse.Namespace, object], int]) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            repo = _open_repo(args)
            try:
                return fn(args, repo)
            except DrbdBackupError as exc:
                if isinstance(exc, RepositoryLocked):
                    raise  # another process holds the repository exclusively: write nothing
                try:
                    repo.audit("failure", {
                        "command": command,
                        "volume_id": getattr(args, "volume_id", None),
                        "resources": getattr(args, "resource", None),
                        "error": type(exc).__name__,
                        "message": str(exc),
                        "exit_code": exc.exit_code,
                    })
                except Exception:  # noqa: BLE001 - the original error is what the user needs
                    pass
                raise

        return run

    return wrap


@_audited("backup")
def cmd_backup(args: argparse.Namespace, repo) -> int:
    from drbdbackup.engine.backup import BackupRequest, audit_details, run_backup

    if args.resource:
        from drbdbackup.engine.linstor_job import backup_linstor

        if args.file:
            raise UsageError("use either --resource or --file, not both")
        with _controller(args) as ctl:
            results = backup_linstor(
                repo, ctl, args.resource, volume_nr=args.volume_nr, node=args.node,
                tracker=args.tracker, cluster=args.cluster, defer_audit=bool(args.verify_sample),
                read_rate_bytes_s=_rate(args.read_limit), checksum_every=args.checksum_every,
            )
    else:
        if not args.file or not args.volume_id:
            raise UsageError("backup needs --resource RSC, or --file PATH with --volume-id ID")
        req = BackupRequest(
            source_path=args.file, volume_id=args.volume_id, tracker=args.tracker,
            defer_audit=bool(args.verify_sample), read_rate_bytes_s=_rate(args.read_limit),
        )
        results = [run_backup(repo, req)]
    out = []
    for res in results:
        d = res.to_dict()
        if args.verify_sample:
            d["verification"] = run_verifier(args, res.volume_id, res.generation, args.verify_sample)
            repo.audit("backup", audit_details(res, d["verification"]))
        out.append(d)
    ok = all(d.get("verification", {}).get("ok", True) for d in out)
    obj = out[0] if len(out) == 1 else {"results": out}
    _emit(args, obj, lambda: "\n".join(_backup_text(d) for d in out))
    return EXIT_OK if ok else EXIT_INTEGRITY


def _backup_text(d: dict) -> str:
    lines = [
        f"volume {d['volume_id']}: generation {d['generation']} ({d['mode']}, tracker {d['tracker']})",
        f"  size {_human(d['size_bytes'])}, read {_human(d['read_bytes'])}, changed {_human(d['changed_bytes'])}, "
        f"stored {_human(d['stored_bytes'])} in {d['duration_s']:.2f}s",
    ]
    if d.get("fallback_reason"):
        lines.append(f"  fallback to a full read: {d['fallback_reason']}")
    if "verification" in d:
        v = d["verification"]
        lines.append(f"  verification: {v.get('verdict', 'pass' if v.get('ok') else 'fail')}"
                     f" ({v.get('chunks_checked', 0)} chunks checked)")
    return "\n".join(lines)


def run_verifier(args: argparse.Namespace, volume_id: str, generation: str, sample: float) -> dict:
    """Run the independent verifier as a separate process and return its JSON verdict."""
    cmd = [sys.executable, "-m", "verify", "--repo", args.repo, "--volume-id", volume_id,
           "--generation", generation, "--sample", str(sample), "--json"]
    if getattr(args, "password_file", None):
        cmd += ["--password-file", args.password_file]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        verdict = json.loads(proc.stdout)
    except ValueError:
        err = proc.stderr.strip().splitlines()
        verdict = {"ok": False, "verdict": "error", "error": err[-1] if err else f"exit {proc.returncode}"}
    verdict["exit_code"] = proc.returncode
    verdict["sample"] = sample
    return verdict


def cmd_list(args: argparse.Namespace) -> int:
    from drbdbackup.repo.listing import list_generations

    repo = _open_repo(args)
    gens = list_generations(repo, args.volume_id)

    def text() -> str:
        if not gens:
            return "no generations"
        rows = [f"{'VOLUME':<24} {'GENERATION':<32} {'MODE':<11} {'TRACKER':<10} {'SIZE':>10} STATUS"]
        rows += [
            f"{g['volume_id']:<24} {g['generation']:<32} {g['mode']:<11} {g['tracker']:<10} "
            f"{_human(g['size_bytes']):>10} {g['status']}"
            for g in gens
        ]
        return "\n".join(rows)

    _emit(args, {"generations": gens}, text)
    return EXIT_OK


@_audited("restore")
def cmd_restore(args: argparse.Namespace, repo) -> int:
    from drbdbackup.engine.restore import run_restore

    if args.to_resource:
        from drbdbackup.engine.linstor_restore import restore_to_resource

        with _controller(args) as ctl:
            res = restore_to_resource(
                repo, ctl, args.volume_id, args.generation, args.to_resource, node=args.node,
                pool=args.storage_pool, volume_nr=args.volume_nr or 0, force=args.force,
            )
    elif args.target:
        res = run_restore(repo, args.volume_id, args.generation, args.target, force=args.force)
    else:
        raise UsageError("restore needs --target PATH or --to-resource RSC")
    d = res.to_dict()
    _emit(args, d, lambda: f"restored {d['volume_id']} generation {d['generation']} to {d['target']} "
          f"({_human(d['size_bytes'])} in {d['duration_s']:.2f}s)")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from drbdbackup.repo.check import run_check
    from drbdbackup.repo.locks import Lock

    repo = _open_repo(args)
    with Lock(repo.backend, exclusive=False, operation="check"):
        rep = run_check(repo, read_data=args.read_data)
    repo.audit("check", {"ok": rep.ok, "errors": len(rep.errors), "read_data": args.read_data})

    def text() -> str:
        lines = [f"checked {rep.packs} packs and {rep.generations} generations: "
                 + ("no errors" if rep.ok else f"{len(rep.errors)} error(s)")]
        lines += [f"error: {e}" for e in rep.errors] + [f"note: {n}" for n in rep.notes]
        return "\n".join(lines)

    _emit(args, rep.to_dict(), text)
    return EXIT_OK if rep.ok else EXIT_INTEGRITY


def cmd_prune(args: argparse.Namespace) -> int:
    from drbdbackup.repo.prune import run_prune

    repo = _open_repo(args)
    rep = run_prune(repo, args.keep_last, args.keep_daily, args.keep_weekly, dry_run=args.dry_run)
    d = rep.to_dict()
    verb = "would remove" if args.dry_run else "removed"
    _emit(args, d, lambda: f"{verb} {len(rep.removed_generations)} generation(s) and "
          f"{rep.removed_packs} pack(s) ({_human(rep.removed_bytes)}); kept {len(rep.kept_generations)}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from drbdbackup.report.compliance import write_report

    repo = _open_repo(args)
    summary = write_report(repo, args.format, args.output, since=args.since)
    _emit(args, summary, lambda: f"wrote {args.format} report to {args.output} "
          f"({summary['entries']} audit entries, chain {'intact' if summary['chain_ok'] else 'BROKEN'})")
    return EXIT_OK if summary["chain_ok"] else EXIT_INTEGRITY


def cmd_serve(args: argparse.Namespace) -> int:
    from drbdbackup.service.main import serve

    return serve(args.config)


def cmd_demo(args: argparse.Namespace) -> int:
    from drbdbackup.demo import run_demo

    return run_demo(args.workdir, as_json=args.json)


# ---- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="one JSON object on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--password-file", help="file holding the repository passphrase")
    p = _Parser(prog=PROG, description="Block-level, incremental, verified backup for LINSTOR/DRBD.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    def cmd(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    def linstor_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--controllers", help="controller URIs, comma-separated (default: $LS_CONTROLLERS)")
        sp.add_argument("--token", help="bearer token file for the controller (never the token itself)")
        sp.add_argument("--certfile", help="TLS client certificate")
        sp.add_argument("--keyfile", help="TLS client key")
        sp.add_argument("--cafile", help="TLS CA bundle")
        sp.add_argument("--allow-insecure", action="store_true",
                        help="send the token over plain HTTP (test clusters only)")

    sp = cmd("init", cmd_init, "create a repository")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--chunk-size", default="1M")
    sp.add_argument("--encryption", default="none", choices=["none", "aes-256-gcm"])

    sp = cmd("backup", cmd_backup, "back up a LINSTOR resource or a file/block device")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--resource", action="append", help="LINSTOR resource (repeat for a consistency group)")
    sp.add_argument("--volume-nr", type=int, help="only this volume number of the resource")
    sp.add_argument("--file", help="a regular file or block device")
    sp.add_argument("--volume-id", help="volume id for --file")
    sp.add_argument("--tracker", default="auto", choices=["auto", "checksum", "reflink", "thin-delta", "full"])
    sp.add_argument("--verify-sample", type=_probability, help="run drbdverify on this sample rate afterwards")
    sp.add_argument("--read-limit", help="cap snapshot reads, bytes per second (e.g. 200M); protects production I/O")
    sp.add_argument("--checksum-every", type=int, default=14, metavar="N",
                    help="with --tracker auto, every N-th generation reads everything instead of "
                         "trusting a native map (0 = never)")
    sp.add_argument("--node", help="LINSTOR node to read from (default: one with an UpToDate replica)")
    sp.add_argument("--cluster", default=os.environ.get("DRBDBACKUP_CLUSTER", "linstor"),
                    help="cluster name used in volume ids <cluster>.<resource>.<volume-nr>")
    linstor_opts(sp)

    sp = cmd("list", cmd_list, "list generations")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--volume-id")

    sp = cmd("restore", cmd_restore, "restore a generation")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--volume-id", required=True)
    sp.add_argument("--generation", default="latest")
    sp.add_argument("--target", help="file or block device to write")
    sp.add_argument("--to-resource", help="create this LINSTOR resource and restore into it")
    sp.add_argument("--node", help="node for --to-resource")
    sp.add_argument("--storage-pool", help="storage pool for --to-resource")
    sp.add_argument("--volume-nr", type=int, help="volume number to create for --to-resource (default 0)")
    sp.add_argument("--force", action="store_true", help="overwrite an existing file / resource")
    linstor_opts(sp)

    sp = cmd("prune", cmd_prune, "remove old generations and unreferenced data")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--keep-last", type=int, required=True)
    sp.add_argument("--keep-daily", type=int, default=0)
    sp.add_argument("--keep-weekly", type=int, default=0)
    sp.add_argument("--dry-run", action="store_true")

    sp = cmd("check", cmd_check, "check repository consistency")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--read-data", action="store_true", help="also read and verify every blob")

    sp = cmd("report", cmd_report, "write a compliance report from the audit log")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--since", help="only entries at or after this date (YYYY-MM-DD)")
    sp.add_argument("--format", required=True, choices=["json", "html"])
    sp.add_argument("--output", required=True)

    sp = cmd("serve", cmd_serve, "run the backup service (schedules, REST API, metrics)")
    sp.add_argument("--config", required=True, help="TOML configuration file")

    sp = cmd("demo", cmd_demo, "run the whole job on a built-in sandbox")
    sp.add_argument("--workdir", help="where to put the sandbox (default: a new temp dir)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            raise UsageError(
                "a command is required: init, backup, list, restore, prune, check, report, serve, demo"
            )
        return args.func(args)
    except DrbdBackupError as exc:
        if debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            raise
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"{PROG}: error: {DiskFull('no space left on device')}", file=sys.stderr)
        else:
            print(f"{PROG}: error: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback without --debug
        if debug:
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    sys.exit(main())
