"""The independent verifier (`python -m verify`), run as its own process: one command builder
and one verdict parser for the command line and the service; and coverage runs: the pieces the
planner (`report/coverage_plan`) says are due, each a `drbdverify --subset n/t --generation all`
of one volume, which records the normal verify audit entry (selection, and per generation the
chunks checked of the total and the verdict: what the report credits)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from drbdbackup.ops.session import RepositoryRef, operation
from drbdbackup.repo import audit
from drbdbackup.repo.listing import list_generations
from drbdbackup.report.coverage import Check
from drbdbackup.report.coverage_plan import Gen, Piece, Plan, Terms, plan
from drbdbackup.report.days import parse_time
from drbdbackup.report.evidence import collect


@dataclass(frozen=True)
class VerifyRequest:
    """Verify one generation (`latest`, `all`) of a volume: a sample rate in (0, 1], a subset
"n/t", or neither = full."""

    volume_id: str
    generation: str = "latest"
    sample: float | None = None
    timeout_s: float | None = None
    subset: str | None = None

    @property
    def selection(self) -> float | str:
        if self.subset:
            return f"subset {self.subset}"
        return self.sample if self.sample else "full"


def _command(ref: RepositoryRef, req: VerifyRequest) -> list[str]:
    if ref.location is None:
        raise ValueError("the verifier needs a repository location, not an in-memory backend")
    cmd = [sys.executable, "-m", "verify", "--repo", ref.location, "--volume-id", req.volume_id,
           "--generation", req.generation, "--json"]
    if req.subset:
        return cmd + ["--subset", req.subset]
    return cmd + (["--sample", str(req.sample)] if req.sample else ["--full"])


def _env(ref: RepositoryRef) -> dict[str, str]:
    env = dict(os.environ)
    if ref.password:
        env["DRBDBACKUP_PASSWORD"] = ref.password  # never on the command line
    return env


def _verdict(stdout: bytes | str, stderr: bytes | str, returncode: int, req: VerifyRequest) -> dict[str, Any]:
    if isinstance(stdout, bytes):
        stdout = stdout.decode(errors="replace")
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    try:
        verdict = json.loads(stdout)
        if not isinstance(verdict, dict):
            raise ValueError
    except ValueError:
        err = stderr.strip().splitlines()
        verdict = {"ok": False, "verdict": "error", "error": err[-1] if err else f"exit {returncode}"}
    verdict["exit_code"] = returncode
    verdict["sample"] = req.selection
    return verdict


def run_verifier(ref: RepositoryRef, req: VerifyRequest) -> dict[str, Any]:
    """Run the verifier (blocking) and return its JSON verdict (with `exit_code`, `sample`)."""
    try:
        proc = subprocess.run(_command(ref, req), capture_output=True, env=_env(ref),
                              stdin=subprocess.DEVNULL, start_new_session=True,
                              timeout=req.timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "verdict": "error", "error": f"verifier timed out after {req.timeout_s}s",
                "exit_code": None, "sample": req.selection}
    return _verdict(proc.stdout, proc.stderr, proc.returncode, req)


async def run_verifier_async(ref: RepositoryRef, req: VerifyRequest) -> dict[str, Any]:
    """The same, for the event loop: the verifier runs in its own process and session."""
    proc = await asyncio.create_subprocess_exec(
        *_command(ref, req), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, start_new_session=True, env=_env(ref))
    stdout, stderr = await proc.communicate()
    return _verdict(stdout, stderr, proc.returncode or 0, req)


def failed_verification(verdicts: list[dict[str, Any]]) -> str | None:
    """One line naming the first failed verdict, or None when all passed."""
    bad = [v for v in verdicts if not v.get("ok")]
    if not bad:
        return None
    v = bad[0]
    what = v.get("error") or f"{v.get('chunks_failed', '?')} chunk(s) failed"
    return f"verification failed for {v.get('volume_id')} {v.get('generation')}: {what}"


AUDIT_FIELDS = ("ok", "verdict", "chunks_checked", "chunks_failed", "exit_code", "sample")


def verdict_summary(verdict: dict[str, Any]) -> dict[str, Any]:
    """The verdict fields a backup's audit entry keeps."""
    return {k: verdict.get(k) for k in AUDIT_FIELDS}


@dataclass(frozen=True)
class CoverageRequest:
    """A policy's coverage terms: its volumes, N days, the longest time until the next run."""

    volume_ids: tuple[str, ...]
    days: int
    horizon_s: float
    budget_bytes: int | None = None


def coverage_plan(ref: RepositoryRef, req: CoverageRequest, now: datetime | None = None) -> Plan:
    """What is due now (reads the audit log and the generations; no lock, writes nothing).
    Damaged or unreadable generations are left out: their problem is reported, not re-read."""
    with operation(ref, "verify-plan") as s:
        entries = []
        for w in audit.walk(s.repo.backend):
            if w.entry is not None:
                details = audit.open_details(w.entry, s.repo.enc_key)
                entries.append({**w.entry, "details": details if details is not None else {}})
        rows = list_generations(s.repo)
    wanted = set(req.volume_ids)
    gens = [Gen(r["volume_id"], r["generation"], t, int(r["size_bytes"] or 0)) for r in rows
            if r["volume_id"] in wanted and r["status"] == "ok" and (t := parse_time(r["created"]))]
    ev = collect(entries)
    checks = [Check(t, v, c["generation"], c["selection"], c["verdict"], c["chunks_checked"],
                    c["chunks_total"])
              for v in wanted for c in ev.of(v).checks if (t := parse_time(c["time"]))]
    terms = Terms(req.days, timedelta(seconds=req.horizon_s), req.budget_bytes)
    return plan(gens, checks, now or datetime.now(UTC), terms)


def piece_request(piece: Piece) -> VerifyRequest:
    """One planned piece: every retained generation of the volume (`--full` when t = 1)."""
    return VerifyRequest(piece.volume_id, "all", subset=piece.subset if piece.t > 1 else None)


def _row(x: Piece) -> dict[str, Any]:
    return {"volume_id": x.volume_id, "subset": x.subset, "deadline": x.deadline.isoformat(),
            "cost_bytes": x.cost_bytes}


async def run_coverage_async(ref: RepositoryRef, req: CoverageRequest) -> dict[str, Any]:
    """Run the due pieces, one verifier process each; `behind` when some did not fit."""
    p = await asyncio.to_thread(coverage_plan, ref, req)
    verdicts = [await run_verifier_async(ref, piece_request(x)) for x in p.run]
    return {"planned": [_row(x) for x in p.run], "deferred": [_row(x) for x in p.deferred],
            "behind": p.behind, "verifications": verdicts}
