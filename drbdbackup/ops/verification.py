"""The independent verifier (`python -m verify`), run as its own process: one command builder
and one verdict parser for the command line and the service."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from drbdbackup.ops.session import RepositoryRef


@dataclass(frozen=True)
class VerifyRequest:
    """Verify one generation (or `latest`) of a volume: a sample rate in (0, 1], or None = full."""

    volume_id: str
    generation: str = "latest"
    sample: float | None = None
    timeout_s: float | None = None


def _command(ref: RepositoryRef, req: VerifyRequest) -> list[str]:
    if ref.location is None:
        raise ValueError("the verifier needs a repository location, not an in-memory backend")
    cmd = [sys.executable, "-m", "verify", "--repo", ref.location, "--volume-id", req.volume_id,
           "--generation", req.generation, "--json"]
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
    verdict["sample"] = req.sample if req.sample else "full"
    return verdict


def run_verifier(ref: RepositoryRef, req: VerifyRequest) -> dict[str, Any]:
    """Run the verifier (blocking) and return its JSON verdict (with `exit_code`, `sample`)."""
    try:
        proc = subprocess.run(_command(ref, req), capture_output=True, env=_env(ref),
                              stdin=subprocess.DEVNULL, start_new_session=True,
                              timeout=req.timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "verdict": "error", "error": f"verifier timed out after {req.timeout_s}s",
                "exit_code": None, "sample": req.sample if req.sample else "full"}
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
