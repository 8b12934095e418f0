"""What a job does: backup / verify / prune of one policy, through the ops layer.

Blocking operations run in worker threads (`asyncio.to_thread`); LINSTOR policies get a
controller whose calls take a slot of the service-wide API throttle. The verifier runs as its
own process (`ops.verification`), like `drbdbackup backup --verify-sample`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from drbdbackup.errors import (
    EXIT_INTEGRITY,
    EXIT_OK,
    EXIT_USAGE,
    DrbdBackupError,
    RepositoryLocked,
    UsageError,
    describe,
)
from drbdbackup.linstor.client import ControllerSettings
from drbdbackup.linstor.inventory import take_inventory
from drbdbackup.linstor.selection import Selection, select
from drbdbackup.ops.backup import BackupOptions, BackupResult, FileBackup, ReadOptions, back_up_file
from drbdbackup.ops.backup_linstor import LinstorBackup, back_up_resources
from drbdbackup.ops.maintenance import list_volumes, prune
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.ops.verification import (
    CoverageRequest,
    VerifyRequest,
    coverage_plan,
    failed_verification,
    run_coverage_async,
    run_verifier_async,
)
from drbdbackup.service.config import Policy, Settings
from drbdbackup.service.throttle import ApiThrottle

log = logging.getLogger("drbdbackup.service")
COVERAGE_TICK_S = 3600.0  # the scheduler plans coverage verification this often (and after backups)


@dataclass
class JobContext:
    """Everything a job needs besides its policy (secrets stay in memory, never in results)."""

    settings: Settings
    password: str | None
    linstor_token: str | None
    throttle: ApiThrottle
    warned: set[str] = field(default_factory=set)  # planning warnings already logged

    @property
    def repo(self) -> RepositoryRef:
        return RepositoryRef(location=self.settings.repository.location, password=self.password)

    def controller(self) -> ControllerSettings:
        """The controller, every API call of which takes a slot of the service's throttle."""
        ls = self.settings.linstor
        return ControllerSettings(ls.controllers, token=self.linstor_token,
                                  allow_insecure=ls.allow_insecure,
                                  before_call=self.throttle.wait_slot)


@dataclass
class Outcome:
    """How a job ended."""

    ok: bool
    exit_code: int
    error: str | None
    result: dict[str, Any] = field(default_factory=dict)


def backup_policy(ctx: JobContext, policy: Policy, out: list[BackupResult]) -> None:
    """Back up every target of `policy`, appending results to `out` as they complete (blocking).

    A LINSTOR policy's resources are selected anew on every run (resource groups, patterns,
    properties): a resource spawned since the last run is included, a deleted one is not. One
    failing resource does not stop the others; the first failure is raised at the end.
    """
    opts = BackupOptions.parse(
        policy.tracker, verify_sample=policy.verify_sample or None,
        read=ReadOptions(rate_bytes_s=ctx.settings.service.read_rate_mib << 20, progress=False))
    if policy.files:
        for f in policy.files:
            out.append(back_up_file(ctx.repo, FileBackup(f.path, f.volume_id, policy.name), opts))
        return
    chosen = plan_policies(ctx).chosen[policy.name]
    why = {c.resource: c.reason for c in chosen}
    names = [c.resource for c in chosen]
    groups = [names] if policy.consistency_group and names else [[r] for r in names]
    first_error: BaseException | None = None
    for rscs in groups:
        req = LinstorBackup(tuple(rscs), ctx.controller(), cluster=ctx.settings.linstor.cluster,
                            policy=policy.name,
                            selected_by="; ".join(dict.fromkeys(why[r] for r in rscs)),
                            label_properties=tuple(policy.label_properties))
        try:
            out.extend(back_up_resources(ctx.repo, req, opts))
        except DrbdBackupError as exc:
            log.warning("policy %s: backup of %s failed: %s", policy.name, ", ".join(rscs), exc)
            first_error = first_error or exc
    if first_error is not None:
        raise first_error


def plan_policies(ctx: JobContext) -> Selection:
    """Which policy protects which resource now (one inventory of the controller). Conflicts and
    warnings (two policies, an empty selection, an unknown group) are logged once each."""
    with ctx.controller().connect() as ctl:
        inv = take_inventory(ctl, with_replicas=False)
    rules = [p.selection_rule() for p in ctx.settings.policy if p.selects_linstor]
    sel = select(inv.resources, rules, set(inv.groups))
    for line in sel.conflicts + sel.warnings:
        if line not in ctx.warned:
            ctx.warned.add(line)
            log.warning("%s", line)
    return sel


def policy_volumes(ctx: JobContext, policy: Policy) -> list[str]:
    """The volume ids a policy has produced that exist in the repository (blocking)."""
    rows = list_volumes(ctx.repo)
    if policy.files:
        wanted = {f.volume_id for f in policy.files}
        return sorted({g["volume_id"] for g in rows if g["volume_id"] in wanted})
    rsc_of = {g["volume_id"]: g.get("resource") for g in rows}
    try:
        mine = {c.resource for c in plan_policies(ctx).chosen[policy.name]}
    except DrbdBackupError:
        mine = set(policy.resources)  # controller unreachable: what the policy names
    prefix = f"{ctx.settings.linstor.cluster}."
    return sorted(v for v, rsc in rsc_of.items()
                  if v.startswith(prefix) and (rsc or v[len(prefix):].rsplit(".", 1)[0]) in mine)


def prune_policy(ctx: JobContext, policy: Policy) -> dict:
    """Prune every policy that has keep rules, each by its own rules and only the generations
    recorded for it (generations without a policy are left to a manual prune), then remove
    unreferenced data once (blocking). `policy` is the one the job runs for."""
    reqs = [p.prune_request() for p in ctx.settings.policy if p.has_retention]
    if not reqs:
        raise UsageError(f"policy {policy.name} has no keep_* rule")
    return prune(ctx.repo, reqs).to_dict()


async def do_backup(ctx: JobContext, policy: Policy) -> Outcome:
    results: list[BackupResult] = []
    try:
        await asyncio.to_thread(backup_policy, ctx, policy, results)
    except Exception as exc:  # noqa: BLE001 - recorded in the job
        code, msg = describe(exc)
        return Outcome(False, code, msg, {"backups": [r.to_dict() for r in results]})
    out = Outcome(True, EXIT_OK, None, {"backups": [r.to_dict() for r in results]})
    failed = failed_verification([r.verification for r in results if r.verification is not None])
    if failed:
        out.ok, out.exit_code, out.error = False, EXIT_INTEGRITY, failed
        return out  # never prune after a failed verification: older generations are the fallback
    if policy.has_retention:
        try:
            out.result["prune"] = await asyncio.to_thread(prune_policy, ctx, policy)
        except RepositoryLocked:
            out.result["prune"] = "skipped: locked"
        except Exception as exc:  # noqa: BLE001 - the backup itself succeeded
            out.result["prune"] = f"failed: {describe(exc)[1]}"
    return out


def coverage_request(policy: Policy, volumes: list[str]) -> CoverageRequest:
    """A policy with verify_coverage_days: its volumes, N, the planning tick and the budget."""
    assert policy.verify_coverage_days is not None
    budget = policy.verify_budget_mib << 20 if policy.verify_budget_mib else None
    return CoverageRequest(tuple(volumes), policy.verify_coverage_days, COVERAGE_TICK_S, budget)


def coverage_due(ctx: JobContext, policy: Policy) -> bool:
    """Does the policy have verification due now (blocking; False when nothing is backed up)?"""
    volumes = policy_volumes(ctx, policy)
    return bool(volumes) and bool(coverage_plan(ctx.repo, coverage_request(policy, volumes)).run)


async def do_verify(ctx: JobContext, policy: Policy) -> Outcome:
    """A policy with verify_coverage_days runs what the coverage planner says is due (subset
    rotation, verify-new, re-verify of evidence older than N days); others verify each volume's
    latest generation (verify_sample, or full)."""
    try:
        volumes = await asyncio.to_thread(policy_volumes, ctx, policy)
    except Exception as exc:  # noqa: BLE001
        code, msg = describe(exc)
        return Outcome(False, code, msg)
    if not volumes:
        return Outcome(False, EXIT_USAGE, f"policy {policy.name} has no backed-up volumes to verify")
    if policy.verify_coverage_days:
        try:
            result = await run_coverage_async(ctx.repo, coverage_request(policy, volumes))
        except Exception as exc:  # noqa: BLE001
            code, msg = describe(exc)
            return Outcome(False, code, msg)
        if result["behind"]:
            log.warning("policy %s: verification coverage is behind: %d due piece(s) exceed "
                        "verify_budget_mib", policy.name, len(result["deferred"]))
        failed = failed_verification(result["verifications"])
        return Outcome(failed is None, EXIT_OK if failed is None else EXIT_INTEGRITY, failed, result)
    verdicts = [await run_verifier_async(ctx.repo, VerifyRequest(v, "latest", policy.verify_sample or None))
                for v in volumes]
    failed = failed_verification(verdicts)
    return Outcome(failed is None, EXIT_OK if failed is None else EXIT_INTEGRITY, failed,
                   {"verifications": verdicts})


async def do_prune(ctx: JobContext, policy: Policy) -> Outcome:
    if not policy.has_retention:
        return Outcome(False, EXIT_USAGE, f"policy {policy.name} has no keep_* rule")
    try:
        return Outcome(True, EXIT_OK, None, {"prune": await asyncio.to_thread(prune_policy, ctx, policy)})
    except Exception as exc:  # noqa: BLE001
        code, msg = describe(exc)
        return Outcome(False, code, msg)


async def execute(ctx: JobContext, policy: Policy, kind: str) -> Outcome:
    """Run one job to its end; never raises (except cancellation)."""
    if kind == "backup":
        return await do_backup(ctx, policy)
    if kind == "verify":
        return await do_verify(ctx, policy)
    return await do_prune(ctx, policy)
