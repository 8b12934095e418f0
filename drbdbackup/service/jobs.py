"""What a job does: backup / verify / prune of one policy, reusing the engine.

Blocking engine calls run in worker threads (`asyncio.to_thread`); each opens its own
`Repository` and, for LINSTOR policies, its own `ThrottledController`. The verifier runs as a
separate process (`python -m verify ... --json`), like `drbdbackup backup --verify-sample`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from drbdbackup.engine.backup import BackupRequest, BackupResult, audit_details, run_backup
from drbdbackup.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTEGRITY,
    EXIT_OK,
    DrbdBackupError,
    RepositoryLocked,
)
from drbdbackup.repo.open import backend_for
from drbdbackup.repo.prune import run_prune
from drbdbackup.repo.repository import Repository
from drbdbackup.service.config import Policy, Settings
from drbdbackup.service.throttle import ApiThrottle, ThrottledController


@dataclass
class JobContext:
    """Everything a job needs besides its policy (secrets stay in memory, never in results)."""

    settings: Settings
    password: str | None
    linstor_token: str | None
    throttle: ApiThrottle


@dataclass
class Outcome:
    """How a job ended."""

    ok: bool
    exit_code: int
    error: str | None
    result: dict[str, Any] = field(default_factory=dict)


def describe_error(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an exception, as the command line would report it."""
    if isinstance(exc, DrbdBackupError):
        return exc.exit_code, str(exc)
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return EXIT_ENVIRONMENT, "no space left on device"
        return EXIT_ENVIRONMENT, exc.strerror or str(exc)
    return EXIT_ENVIRONMENT, f"internal error: {type(exc).__name__}: {exc}"


def open_repo(ctx: JobContext) -> Repository:
    return Repository.open(backend_for(ctx.settings.repository.location), ctx.password)


def _controller(ctx: JobContext) -> ThrottledController:
    ls = ctx.settings.linstor
    return ThrottledController(ctx.throttle, ls.controllers, token=ctx.linstor_token,
                               allow_insecure=ls.allow_insecure)


def backup_policy(ctx: JobContext, policy: Policy, out: list[BackupResult]) -> None:
    """Back up every target of `policy`, appending results to `out` as they complete (blocking)."""
    repo = open_repo(ctx)
    defer = policy.verify_sample > 0
    rate = ctx.settings.service.read_rate_mib << 20
    try:
        if policy.files:
            for f in policy.files:
                out.append(run_backup(repo, BackupRequest(
                    source_path=f.path, volume_id=f.volume_id, tracker=policy.tracker,
                    progress=False, defer_audit=defer, read_rate_bytes_s=rate)))
            return
        from drbdbackup.engine.linstor_job import backup_linstor

        groups = [policy.resources] if policy.consistency_group else [[r] for r in policy.resources]
        for rscs in groups:
            with _controller(ctx) as ctl:
                out.extend(backup_linstor(repo, ctl, rscs, tracker=policy.tracker,
                                          cluster=ctx.settings.linstor.cluster, progress=False,
                                          defer_audit=defer, read_rate_bytes_s=rate))
    except DrbdBackupError as exc:
        if not isinstance(exc, RepositoryLocked):
            try:
                repo.audit("failure", {"command": "serve-backup", "policy": policy.name,
                                       "error": type(exc).__name__, "message": str(exc),
                                       "exit_code": exc.exit_code})
            except Exception:  # noqa: BLE001 - the original error is what matters
                pass
        raise


def policy_volumes(ctx: JobContext, policy: Policy) -> list[str]:
    """The volume ids a policy produces that exist in the repository (blocking)."""
    repo = open_repo(ctx)
    have = repo.volumes()
    if policy.files:
        return [f.volume_id for f in policy.files if f.volume_id in have]
    prefixes = tuple(f"{ctx.settings.linstor.cluster}.{r}." for r in policy.resources)
    return [v for v in have if v.startswith(prefixes)]


async def run_verifier(ctx: JobContext, volume_id: str, generation: str, sample: float) -> dict:
    """Run the independent verifier in its own process (and session) and return its verdict."""
    cmd = [sys.executable, "-m", "verify", "--repo", ctx.settings.repository.location,
           "--volume-id", volume_id, "--generation", generation, "--json"]
    cmd += ["--sample", str(sample)] if sample > 0 else ["--full"]
    if ctx.settings.repository.password_file:
        cmd += ["--password-file", ctx.settings.repository.password_file]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
    stdout, stderr = await proc.communicate()
    try:
        verdict = json.loads(stdout)
        if not isinstance(verdict, dict):
            raise ValueError
    except ValueError:
        err = stderr.decode(errors="replace").strip().splitlines()
        verdict = {"ok": False, "verdict": "error", "error": err[-1] if err else f"exit {proc.returncode}"}
    verdict["exit_code"] = proc.returncode
    verdict["sample"] = sample if sample > 0 else "full"
    return verdict


def prune_policy(ctx: JobContext, policy: Policy) -> dict:
    """Apply the policy's keep rules (repository-wide, like `drbdbackup prune`) (blocking)."""
    rep = run_prune(open_repo(ctx), policy.keep_last, policy.keep_daily, policy.keep_weekly)
    return rep.to_dict()


def _verify_failed(verdicts: list[dict]) -> str | None:
    bad = [v for v in verdicts if not v.get("ok")]
    if not bad:
        return None
    v = bad[0]
    what = v.get("error") or f"{v.get('chunks_failed', '?')} chunk(s) failed"
    return f"verification failed for {v.get('volume_id')} {v.get('generation')}: {what}"


async def do_backup(ctx: JobContext, policy: Policy) -> Outcome:
    results: list[BackupResult] = []
    try:
        await asyncio.to_thread(backup_policy, ctx, policy, results)
    except Exception as exc:  # noqa: BLE001 - recorded in the job
        code, msg = describe_error(exc)
        return Outcome(False, code, msg, {"backups": [r.to_dict() for r in results]})
    dicts = [r.to_dict() for r in results]
    out = Outcome(True, EXIT_OK, None, {"backups": dicts})
    if policy.verify_sample > 0:
        for r, d in zip(results, dicts, strict=True):
            d["verification"] = await run_verifier(ctx, r.volume_id, r.generation, policy.verify_sample)

        def audit() -> None:
            repo = open_repo(ctx)
            for r, d in zip(results, dicts, strict=True):
                repo.audit("backup", audit_details(r, d["verification"]))

        try:
            await asyncio.to_thread(audit)
        except Exception as exc:  # noqa: BLE001
            out.result["audit_error"] = describe_error(exc)[1]
        failed = _verify_failed([d["verification"] for d in dicts])
        if failed:
            out.ok, out.exit_code, out.error = False, EXIT_INTEGRITY, failed
            return out  # never prune after a failed verification: older generations are the fallback
    if policy.has_retention:
        try:
            out.result["prune"] = await asyncio.to_thread(prune_policy, ctx, policy)
        except RepositoryLocked:
            out.result["prune"] = "skipped: locked"
        except Exception as exc:  # noqa: BLE001 - the backup itself succeeded
            out.result["prune"] = f"failed: {describe_error(exc)[1]}"
    return out


async def do_verify(ctx: JobContext, policy: Policy) -> Outcome:
    try:
        volumes = await asyncio.to_thread(policy_volumes, ctx, policy)
    except Exception as exc:  # noqa: BLE001
        code, msg = describe_error(exc)
        return Outcome(False, code, msg)
    if not volumes:
        return Outcome(False, 2, f"policy {policy.name} has no backed-up volumes to verify")
    verdicts = [await run_verifier(ctx, v, "latest", policy.verify_sample) for v in volumes]
    failed = _verify_failed(verdicts)
    return Outcome(failed is None, EXIT_OK if failed is None else EXIT_INTEGRITY, failed,
                   {"verifications": verdicts})


async def do_prune(ctx: JobContext, policy: Policy) -> Outcome:
    if not policy.has_retention:
        return Outcome(False, 2, f"policy {policy.name} has no keep_last/keep_daily/keep_weekly rule")
    try:
        return Outcome(True, EXIT_OK, None, {"prune": await asyncio.to_thread(prune_policy, ctx, policy)})
    except Exception as exc:  # noqa: BLE001
        code, msg = describe_error(exc)
        return Outcome(False, code, msg)


async def execute(ctx: JobContext, policy: Policy, kind: str) -> Outcome:
    """Run one job to its end; never raises (except cancellation)."""
    if kind == "backup":
        return await do_backup(ctx, policy)
    if kind == "verify":
        return await do_verify(ctx, policy)
    return await do_prune(ctx, policy)
