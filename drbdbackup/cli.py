"""Command line: argument parsing, the error path and exit codes. The commands themselves are
in `drbdbackup.commands`; no logic lives in either."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from drbdbackup import commands
from drbdbackup.errors import EXIT_OK, UsageError, describe
from drbdbackup.progress import end_open_line

PROG = "drbdbackup"
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """No abbreviated options: `--password SECRET` must not pass as `--password-file` and come
    back in an error line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):  # a mistyped `--new-password SECRET` must not echo SECRET
            words = message[len(prefix):].split()
            names = [w.split("=", 1)[0] for w in words if w.startswith("-")]
            hidden = len(words) - len(names) + sum("=" in w for w in words if w.startswith("-"))
            message = prefix + " ".join(names) + (f" (and {hidden} value(s), not shown)" if hidden else "")
        raise UsageError(message)


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
    _report_commands(cmd)
    return p


def _data_commands(cmd: Callable[..., argparse.ArgumentParser],
                   linstor_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    """init, backup, list, restore (DESIGN section 9)."""
    sp = cmd("init", commands.cmd_init, "create a repository")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--chunk-size", default="1M")
    sp.add_argument("--encryption", default="none", choices=["none", "aes-256-gcm"])

    sp = cmd("backup", commands.cmd_backup, "back up a LINSTOR resource or a file/block device")
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
    sp.add_argument("--verify-sample", type=commands.probability, help="run drbdverify on this sample rate afterwards")
    sp.add_argument("--read-limit", help="cap snapshot reads, bytes per second (e.g. 200M); protects production I/O")
    sp.add_argument("--checksum-every", type=int, default=14, metavar="N",
                    help="with --tracker auto, every N-th generation reads everything instead of "
                         "trusting a native map (0 = never)")
    sp.add_argument("--node", help="LINSTOR node to read from (default: one with an UpToDate replica)")
    sp.add_argument("--cluster", default=os.environ.get("DRBDBACKUP_CLUSTER", "linstor"),
                    help="cluster name used in volume ids <cluster>.<resource>.<volume-nr>")
    linstor_opts(sp)

    sp = cmd("list", commands.cmd_list, "list generations")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--volume-id")
    sp.add_argument("--source-status", action="store_true",
                    help="ask the controller whether each LINSTOR resource still exists "
                         "(source present / gone)")
    linstor_opts(sp)

    sp = cmd("restore", commands.cmd_restore, "restore a generation")
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
    """status, prune, key, check, serve, demo (DESIGN section 9)."""
    sp = cmd("status", commands.cmd_status, "cluster view: volumes, what each policy selects, what is unprotected")
    sp.add_argument("--repo", help="the repository (or take it from --config)")
    sp.add_argument("--config", help="the service config: repository, controllers and policies")
    sp.add_argument("--plan", action="store_true", help="per policy, what it selects and why")
    sp.add_argument("--unprotected", action="store_true", help="resources no policy protects, with the reason")
    sp.add_argument("--cluster", default=os.environ.get("DRBDBACKUP_CLUSTER", "linstor"))
    linstor_opts(sp)

    sp = cmd("prune", commands.cmd_prune, "remove old generations and unreferenced data")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--policy", help="apply the rules only to generations made for this policy")
    sp.add_argument("--volume-id", help="apply the rules only to this volume's generations")
    sp.add_argument("--keep-last", type=int, default=0, metavar="N")
    sp.add_argument("--keep-within", metavar="DURATION",
                    help="every generation less than DURATION (e.g. 36h, 2d, 1w) older than the newest")
    for period in ("hourly", "daily", "weekly", "monthly", "yearly"):
        sp.add_argument(f"--keep-{period}", type=int, default=0, metavar="N",
                        help=f"the newest generation of each of the last N {period} periods (UTC)")
    sp.add_argument("--dry-run", action="store_true")
    sp.add_argument("--lock-wait", metavar="DURATION",
                    help="wait up to DURATION (e.g. 10m) for running backups to finish; new ones "
                         "fail with exit 4 meanwhile (default: fail at once)")

    sp = cmd("key", commands.cmd_key, "key files of an encrypted repository: one per passphrase")
    sp.add_argument("action", choices=["list", "add", "remove", "passwd", "export"])
    sp.add_argument("key_id", nargs="?", help="remove: the key to remove (see key list)")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--new-password-file",
                    help="add, passwd: file holding the new passphrase (or $DRBDBACKUP_NEW_PASSWORD)")
    sp.add_argument("--paper", action="store_true", help="export: the master key as text to print")

    sp = cmd("check", commands.cmd_check, "check repository consistency")
    sp.add_argument("--repo", required=True)
    sp.add_argument("--read-data", action="store_true", help="also read and verify every blob")

    sp = cmd("serve", commands.cmd_serve, "run the backup service (schedules, REST API, metrics)")
    sp.add_argument("--config", required=True, help="TOML configuration file")
    sp.add_argument("--node", help="cluster mode: this agent's LINSTOR node (overrides [cluster] node)")

    sp = cmd("demo", commands.cmd_demo, "run the whole job on a built-in sandbox")
    sp.add_argument("--workdir", help="where to put the sandbox (default: a new temp dir)")


def _report_commands(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """report (and report keygen), verify-report (DESIGN section 9)."""
    sp = cmd("report", commands.cmd_report, "write a (signed) compliance report; `report keygen` makes a key pair")
    sp.add_argument("action", nargs="?", choices=["keygen"], help="keygen: make an Ed25519 key pair")
    sp.add_argument("--repo", help="the repository (default: the one --config names)")
    sp.add_argument("--config", help="the service config: policies (rpo, verify_coverage_days, keep_*) "
                    "and resources no policy protects")
    sp.add_argument("--since", help="first day of the report (YYYY-MM-DD, UTC; default: the first entry)")
    sp.add_argument("--until", help="last day of the report (YYYY-MM-DD, UTC; default: today)")
    sp.add_argument("--format", choices=["json", "html", "pdf"])
    sp.add_argument("--output")
    sp.add_argument("--sign-key", help="Ed25519 private key (PEM) to sign the report with")
    sp.add_argument("--rpo", help="recovery point objective for every volume, e.g. 24h (overrides policies)")
    sp.add_argument("--volume-id", help="only this volume")
    sp.add_argument("--output-dir", help="keygen: where to write report-signing.key/.pub")

    sp = cmd("verify-report", commands.cmd_verify_report, "check a signed report (JSON, HTML or PDF)")
    sp.add_argument("file")
    sp.add_argument("--public-key", help="the signer's Ed25519 public key (PEM)")
    sp.add_argument("--extract", metavar="DIR", help="write report.payload/report.sig (and document.*) "
                    "for openssl pkeyutl -verify -rawin")


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
    if argv[:1] != ["serve"]:  # the service logs every event itself (service/main.py)
        log.addHandler(handler)
    try:
        args = build_parser().parse_args(argv)
        if args.version:
            print(f"{PROG} {version()}")
            return EXIT_OK
        if not getattr(args, "func", None):
            raise UsageError(
                "a command is required: init, backup, list, restore, status, prune, key, check, "
                "report, verify-report, serve, demo"
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
