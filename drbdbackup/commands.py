"""The commands of the command line: each builds a request, calls one operation in
`drbdbackup.ops` and renders its result (text or --json). No logic lives here."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drbdbackup import render
from drbdbackup.errors import EXIT_ENVIRONMENT, EXIT_INTEGRITY, EXIT_OK, UsageError
from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.linstor.selection import SelectionRule
from drbdbackup.ops.backup import ReadOptions
from drbdbackup.ops.session import RepositoryRef


def parse_size(text: str) -> int:
    """'1M', '64KiB', '1048576' -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", text)
    if not m:
        raise UsageError(f"invalid size {text!r}: use e.g. 64K, 1M, 4MiB")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


def _rate(text: str | None) -> int:
    return parse_size(text) if text else 0


def probability(text: str) -> float:
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


@dataclass(frozen=True)
class _FromConfig:
    """What `status` and `report` take from a service config: repository, controller, policies."""

    ref: RepositoryRef
    controller: ControllerSettings
    rules: list[SelectionRule]
    lease_s: float | None
    policies: tuple[Any, ...] = ()


def _from_config(args: argparse.Namespace) -> _FromConfig:
    from drbdbackup.service.config import load_config

    cfg = load_config(args.config)
    password = read_password(args)
    if cfg.repository.password_file and password is None:
        password = _read_file(cfg.repository.password_file, "password").rstrip("\r\n")
    token = _read_file(cfg.linstor.token_file, "token").strip() if cfg.linstor.token_file else None
    return _FromConfig(
        RepositoryRef(location=cfg.repository.location, password=password),
        ControllerSettings(cfg.linstor.controllers, token=token,
                           allow_insecure=cfg.linstor.allow_insecure),
        [p.selection_rule() for p in cfg.policy if p.selects_linstor],
        cfg.cluster.lease_s if cfg.cluster else None, tuple(cfg.policy))


def cmd_status(args: argparse.Namespace) -> int:
    from drbdbackup.ops.status import status

    if args.config:
        c = _from_config(args)
        rep = status(c.ref, c.controller, c.rules, c.lease_s).to_dict()
    elif args.repo:
        wants_controller = args.plan or args.unprotected or args.controllers
        rep = status(_ref(args), _controller(args) if wants_controller else None).to_dict()
    else:
        raise UsageError("status needs --repo REPO or --config FILE")
    if not args.plan:
        rep.pop("plan", None)
    if not args.unprotected:
        rep.pop("unprotected", None)
    _emit(args, rep, lambda: render.status_text(rep))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from drbdbackup.ops.maintenance import list_volumes

    controller = _controller(args) if args.source_status else None
    gens = list_volumes(_ref(args), args.volume_id, controller)
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

    req = PruneRequest(args.keep_last, args.keep_daily, args.keep_weekly, dry_run=args.dry_run,
                       keep_within=args.keep_within, keep_hourly=args.keep_hourly,
                       keep_monthly=args.keep_monthly, keep_yearly=args.keep_yearly,
                       policy=args.policy, volume_id=args.volume_id, lock_wait=args.lock_wait)
    d = prune(_ref(args), req).to_dict()
    _emit(args, d, lambda: render.prune_text(d))
    return EXIT_OK


def cmd_key(args: argparse.Namespace) -> int:
    from drbdbackup.ops import keys

    new = None
    if args.new_password_file:
        new = _read_file(args.new_password_file, "new password").rstrip("\r\n")
    elif args.action in ("add", "passwd"):
        new = os.environ.get("DRBDBACKUP_NEW_PASSWORD") or None
    if args.key_id and args.action != "remove":
        raise UsageError(f"key {args.action} takes no key id")
    if args.paper != (args.action == "export"):
        raise UsageError("key export needs --paper (the only export format); --paper goes with export")
    ref = _ref(args)
    if args.action == "list":
        rows = keys.list_keys(ref)
        _emit(args, {"keys": rows}, lambda: render.keys_text(rows))
        return EXIT_OK
    d = {"add": lambda: keys.add_key(ref, new), "passwd": lambda: keys.change_passphrase(ref, new),
         "remove": lambda: keys.remove_key(ref, args.key_id),
         "export": lambda: keys.export_paper(ref)}[args.action]()
    _emit(args, d, lambda: render.key_text(d))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from drbdbackup.ops.reporting import ReportRequest, keygen, policy_terms, report

    if args.action == "keygen":
        if not args.output_dir:
            raise UsageError("report keygen needs --output-dir DIR")
        k = keygen(args.output_dir)
        _emit(args, k, lambda: render.keygen_text(k))
        return EXIT_OK
    if not ((args.repo or args.config) and args.format and args.output):
        raise UsageError("report needs --repo REPO (or --config FILE), --format json|html|pdf "
                         "and --output FILE")
    unprotected, policies = None, []
    ref = _ref(args) if args.repo else None
    if args.config:
        from drbdbackup.ops.status import status

        c = _from_config(args)
        ref = ref or c.ref
        if c.rules:  # resources no policy protects: only a config with LINSTOR policies knows
            unprotected = status(ref, c.controller, c.rules).unprotected or []
        policies = [policy_terms(p) for p in c.policies]
    req = ReportRequest(args.format, args.output, since=args.since, until=args.until,
                        sign_key=args.sign_key, rpo=args.rpo, volume_id=args.volume_id,
                        policies=policies, unprotected=unprotected)
    assert ref is not None
    summary = report(ref, req)
    _emit(args, summary, lambda: render.report_text(summary))
    return EXIT_OK if summary["chain_ok"] else EXIT_INTEGRITY


def cmd_verify_report(args: argparse.Namespace) -> int:
    from drbdbackup.ops.reporting import verify_report

    d = verify_report(args.file, args.public_key, args.extract)
    _emit(args, d, lambda: render.verify_report_text(d))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from drbdbackup.service.main import serve

    return serve(args.config, node=args.node)


def cmd_demo(args: argparse.Namespace) -> int:
    from drbdbackup.demo import run_demo

    return run_demo(args.workdir, as_json=args.json)
