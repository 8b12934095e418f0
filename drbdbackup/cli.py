"""Command line: argument parsing, output (text or --json), exit codes. No logic lives here:
each command builds a request, calls one operation in `drbdbackup.ops` and renders its result."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from drbdbackup import render
from drbdbackup.errors import EXIT_ENVIRONMENT, EXIT_INTEGRITY, EXIT_OK, UsageError, describe
from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.ops.backup import ReadOptions
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.progress import end_open_line

PROG = "drbdbackup"
EXIT_INTERRUPTED = 130


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


def _read_file(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} file {path} is not UTF-8 text") from None


def read_password(args: argparse.Namespace) -> str | None:
    if getattr(args, "password_file", None):
        return _read_file(args.password_file, "password").rstrip("\r\n")
    return os.environ.get("DRBDBACKUP_PASSWORD") or None


def _ref(args: argparse.Namespace) -> RepositoryRef:
    return RepositoryRef(location=args.repo, password=read_password(args))


def _controller(args: argparse.Namespace) -> ControllerSettings:
    token = os.environ.get("DRBDBACKUP_LINSTOR_TOKEN") or None
    if args.token:
        token = _read_file(args.token, "token").strip()
    return ControllerSettings(args.controllers, token=token, certfile=args.certfile,
                              keyfile=args.keyfile, cafile=args.cafile,
                              allow_insecure=args.allow_insecure)


def _emit(args: argparse.Namespace, obj: Any, text: Callable[[], str]) -> None:
    print(json.dumps(obj, sort_keys=True) if args.json else text())


# ---- commands --------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from drbdbackup.ops.maintenance import InitRequest, init

    chunk = parse_size(args.chunk_size)
    repo = init(_ref(args), InitRequest(chunk, args.encryption))
    _emit(args, {"repository": args.repo, "repository_id": repo.id, "chunk_size": chunk,
                 "encryption": args.encryption},
          lambda: f"created repository {repo.id[:16]} at {args.repo} "
          f"(chunk size {render.human(chunk)}, encryption {args.encryption})")
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file

    opts = BackupOptions.parse(
        args.tracker, verify_sample=args.verify_sample, checksum_every=args.checksum_every,
        read=ReadOptions(rate_bytes_s=_rate(args.read_limit)))
    chosen = [n for n, v in (("--resource", args.resource), ("--resource-group", args.resource_group),
                             ("--all", args.all), ("--file", args.file)) if v]
    if len(chosen) > 1:
        raise UsageError(f"use one of {', '.join(chosen)}, not several")
    if args.resource_group or args.all:
        return _backup_group(args, opts)
    if args.resource:
        from drbdbackup.ops.backup_linstor import LinstorBackup, back_up_resources

        req = LinstorBackup(tuple(args.resource), _controller(args), volume_nr=args.volume_nr,
                            node=args.node, cluster=args.cluster)
        results = back_up_resources(_ref(args), req, opts)
    else:
        if not args.file or not args.volume_id:
            raise UsageError("backup needs --resource RSC, or --file PATH with --volume-id ID")
        results = [back_up_file(_ref(args), FileBackup(args.file, args.volume_id), opts)]
    out = [r.to_dict() for r in results]
    _emit(args, out[0] if len(out) == 1 else {"results": out},
          lambda: "\n".join(render.backup_text(d) for d in out))
    return EXIT_OK if all(r.verified_ok for r in results) else EXIT_INTEGRITY


def _backup_group(args: argparse.Namespace, opts: Any) -> int:
    from drbdbackup.ops.backup_linstor import GroupBackup, back_up_group

    req = GroupBackup(args.resource_group, _controller(args), args.consistency_group, args.cluster)
    res = back_up_group(_ref(args), req, opts)
    out = [r.to_dict() for r in res.results]
    obj = {"results": out, "skipped": res.skipped, "failed": res.failed}

    def text() -> str:
        lines = [render.backup_text(d) for d in out]
        lines += [f"skipped {s['resource']}: {s['reason']}" for s in res.skipped]
        lines += [f"FAILED {f['resource']}: {f['error']}" for f in res.failed]
        return "\n".join(lines) or "the group has no resources"

    _emit(args, obj, text)
    if res.failed:
        return EXIT_ENVIRONMENT
    return EXIT_OK if all(r.verified_ok for r in res.results) else EXIT_INTEGRITY


def cmd_status(args: argparse.Namespace) -> int:
    from drbdbackup.ops.status import status

    rules = None
    if args.config:
        from drbdbackup.service.config import load_config

        cfg = load_config(args.config)
        password = read_password(args)
        if cfg.repository.password_file and password is None:
            password = _read_file(cfg.repository.password_file, "password").rstrip("\r\n")
        ref = RepositoryRef(location=cfg.repository.location, password=password)
        token = _read_file(cfg.linstor.token_file, "token").strip() if cfg.linstor.token_file else None
        controller: ControllerSettings | None = ControllerSettings(
            cfg.linstor.controllers, token=token, allow_insecure=cfg.linstor.allow_insecure)
        rules = [p.selection_rule() for p in cfg.policy if p.selects_linstor]
    elif args.repo:
        ref = _ref(args)
        wants_controller = args.plan or args.unprotected or args.controllers
        controller = _controller(args) if wants_controller else None
    else:
        raise UsageError("status needs --repo REPO or --config FILE")
    rep = status(ref, controller, rules).to_dict()
    if not args.plan:
        rep.pop("plan", None)
    if not args.unprotected:
        rep.pop("unprotected", None)
    _emit(args, rep, lambda: render.status_text(rep))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from drbdbackup.ops.maintenance import list_volumes

    gens = list_volumes(_ref(args), args.volume_id)
    _emit(args, {"generations": gens}, lambda: render.list_text(gens))
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from drbdbackup.ops.restore import ResourceTarget, RestoreRequest, restore

    if args.to_resource and args.target:
        raise UsageError("use either --target or --to-resource, not both")
    req = RestoreRequest(args.volume_id, args.generation, args.target, force=args.force)
    to = None
    if args.to_resource:
        to = ResourceTarget(args.to_resource, _controller(args), node=args.node,
                            storage_pool=args.storage_pool, volume_nr=args.volume_nr or 0,
                            resource_group=args.resource_group, like_original=args.like_original)
    elif args.resource_group or args.like_original:
        raise UsageError("--resource-group and --like-original go with --to-resource")
    d = restore(_ref(args), req, to).to_dict()
    _emit(args, d, lambda: render.restore_text(d))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from drbdbackup.ops.maintenance import check

    d = check(_ref(args), read_data=args.read_data).to_dict()
    _emit(args, d, lambda: render.check_text(d))
    return EXIT_OK if d["ok"] else EXIT_INTEGRITY


def cmd_prune(args: argparse.Namespace) -> int:
    from drbdbackup.ops.maintenance import PruneRequest, prune

    d = prune(_ref(args), PruneRequest(args.keep_last, args.keep_daily, args.keep_weekly,
                                       dry_run=args.dry_run)).to_dict()
    _emit(args, d, lambda: render.prune_text(d))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from drbdbackup.ops.maintenance import report

    summary = report(_ref(args), args.format, args.output, since=args.since)
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
    p.add_argument("--version", action="store_true", help="print the version and exit")
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

    _data_commands(cmd, linstor_opts)
    _maintenance_commands(cmd, linstor_opts)
    return p


def _data_commands(cmd: Callable[..., argparse.ArgumentParser],
                   linstor_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    """init, backup, list, restore (DESIGN section 9)."""
    sp = cmd("init", cmd_init, "create a repository")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--chunk-size", default="1M")
    sp.add_argument("--encryption", default="none", choices=["none", "aes-256-gcm"])

    sp = cmd("backup", cmd_backup, "back up a LINSTOR resource or a file/block device")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--resource", action="append", help="LINSTOR resource (repeat for a consistency group)")
    sp.add_argument("--resource-group", help="every resource spawned from this LINSTOR resource group")
    sp.add_argument("--all", action="store_true", help="every LINSTOR resource (minus those tagged exclude)")
    sp.add_argument("--consistency-group", action="store_true",
                    help="with --resource-group/--all: one snapshot across all of them")
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
    sp.add_argument("--resource-group", help="--to-resource: spawn the resource from this group")
    sp.add_argument("--like-original", action="store_true",
                    help="--to-resource: the recorded group and properties, minus identity properties")
    sp.add_argument("--force", action="store_true", help="overwrite an existing file / resource")
    linstor_opts(sp)



def _maintenance_commands(cmd: Callable[..., argparse.ArgumentParser],
                          linstor_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    """status, prune, check, report, serve, demo (DESIGN section 9)."""
    sp = cmd("status", cmd_status, "cluster view: volumes, what each policy selects, what is unprotected")
    sp.add_argument("--repo", help="the repository (or take it from --config)")
    sp.add_argument("--config", help="the service config: repository, controllers and policies")
    sp.add_argument("--plan", action="store_true", help="per policy, what it selects and why")
    sp.add_argument("--unprotected", action="store_true", help="resources no policy protects, with the reason")
    sp.add_argument("--cluster", default=os.environ.get("DRBDBACKUP_CLUSTER", "linstor"))
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


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("drbdbackup")
    except PackageNotFoundError:
        return "unknown"


class _WarningLines(logging.Handler):
    """Warnings of lower layers as `drbdbackup: warning: ...` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        end_open_line()
        print(f"{PROG}: warning: {record.getMessage()}", file=sys.stderr)


def _fail(code: int, message: str, *, as_json: bool, debug: bool) -> int:
    end_open_line()
    if debug:
        traceback.print_exc()
    print(f"{PROG}: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"ok": False, "error": message, "exit_code": code}, sort_keys=True))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, as_json = "--debug" in argv, "--json" in argv
    log = logging.getLogger("drbdbackup")
    handler = _WarningLines(logging.WARNING)
    log.addHandler(handler)
    try:
        args = build_parser().parse_args(argv)
        if args.version:
            print(f"{PROG} {version()}")
            return EXIT_OK
        if not getattr(args, "func", None):
            raise UsageError(
                "a command is required: init, backup, list, restore, status, prune, check, report, "
                "serve, demo"
            )
        return args.func(args)
    except KeyboardInterrupt:
        end_open_line()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback without --debug
        code, message = describe(exc)
        if message.startswith("internal error"):
            message += " (rerun with --debug)"
        return _fail(code, message, as_json=as_json, debug=debug)
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
