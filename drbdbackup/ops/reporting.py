"""The compliance report: gather (audit chain, generations, policies), judge (report/build),
render (JSON, HTML, PDF), sign (Ed25519); check a signed report; make a signing key pair."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drbdbackup.errors import EnvironmentFailure, UsageError
from drbdbackup.ops.backup_member import mark_group_gaps
from drbdbackup.ops.evidence import audit_findings
from drbdbackup.ops.session import RepositoryRef, operation
from drbdbackup.repo import audit
from drbdbackup.repo.listing import list_generations
from drbdbackup.report import signing
from drbdbackup.report.build import Chain, PolicyTerms, ReportInput, build_body
from drbdbackup.report.days import parse_day, parse_duration
from drbdbackup.report.html import render_html
from drbdbackup.report.retention import KeepRules

FORMATS = ("json", "html", "pdf")
KEY_NAME, PUB_NAME = "report-signing.key", "report-signing.pub"


@dataclass(frozen=True)
class ReportRequest:
    fmt: str
    output: str
    since: str | None = None
    until: str | None = None
    sign_key: str | None = None
    rpo: str | None = None
    volume_id: str | None = None
    policies: list[PolicyTerms] = field(default_factory=list)
    unprotected: list[dict[str, str]] | None = None


def policy_terms(policy: Any) -> PolicyTerms:
    """A service config policy (duck-typed: the service layer sits above ops) as report terms."""
    def count(name: str) -> int:
        return int(getattr(policy, f"keep_{name}", 0) or 0)
    within = getattr(policy, "keep_within", None)
    rules = KeepRules(last=count("last"), hourly=count("hourly"), daily=count("daily"),
                      weekly=count("weekly"), monthly=count("monthly"), yearly=count("yearly"),
                      within_s=parse_duration(within) if within else 0)
    rpo = getattr(policy, "rpo", None)
    return PolicyTerms(policy.name, parse_duration(rpo) if rpo else None,
                       getattr(policy, "verify_coverage_days", None), rules,
                       tuple(f.volume_id for f in getattr(policy, "files", []) or []))


def _read(path: str, what: str, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")
    return data


def _entries(s: Any) -> list[dict[str, Any]]:
    """Every entry that reads (a broken chain is reported, not fatal), details opened."""
    out = []
    for w in audit.walk(s.repo.backend):
        if w.entry is not None:
            details = audit.open_details(w.entry, s.repo.enc_key)
            out.append({**w.entry, "details": details if details is not None else {}})
    return out


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _input(ref: RepositoryRef, req: ReportRequest) -> ReportInput:
    since = parse_day(req.since, "--since") if req.since else None
    until = parse_day(req.until, "--until") if req.until else None
    rpo = parse_duration(req.rpo) if req.rpo else None
    findings = audit_findings(ref)
    with operation(ref, "report") as s:
        entries, gens = _entries(s), list_generations(s.repo)
        mark_group_gaps(s.repo, gens)
        problems = [*audit.check_chain(s.repo.backend)]
        every = list(dict.fromkeys([*findings.problems, *problems]))
        chain = Chain(not every, findings.head, every[0] if every else None, every, findings.warnings)
        return ReportInput(s.repo.id, entries, chain, gens, datetime.now(UTC), since, until,
                           req.policies, rpo, req.volume_id, req.unprotected)


def render(req: ReportRequest, signed: signing.Signed, key: Any) -> bytes:
    """The file's bytes in the requested format (with the document trailer when `key` is given)."""
    if req.fmt == "json":
        return signed.document()
    page = render_html(signed.body, signing.embedded_block(signed))
    if req.fmt == "pdf":
        from drbdbackup.report.pdf import html_to_pdf

        page = html_to_pdf(page)
    return page + (signing.trailer(signed, page, key, req.fmt == "html") if key else b"")


def report(ref: RepositoryRef, req: ReportRequest) -> dict[str, Any]:
    """Write the report; returns its summary (volumes, failing days, chain state, signer)."""
    if req.fmt not in FORMATS:
        raise UsageError(f"unknown report format {req.fmt!r}: use json, html or pdf")
    key = signing.load_private(_read(req.sign_key, "signing key"), req.sign_key) if req.sign_key else None
    body = build_body(_input(ref, req))
    signed = signing.sign_body(body, key)
    _write(req.output, render(req, signed, key))
    return {"output": req.output, "format": req.fmt, "entries": sum(body["event_counts"].values()),
            "generations": len(body["generations"]), "chain_ok": body["audit_chain_ok"],
            "audit_chain_head": body["audit_chain_head"], "since": body["since"], "until": body["until"],
            "volumes": {s["volume_id"]: {"rpo": s["rpo"]["verdict"], "failing_days": s["failing_days"],
                                         "coverage": s["coverage"]["verdict"],
                                         "open_problems": len(s["open_problems"])} for s in body["summary"]},
            "open_problems": len(body["open_problems"]),
            "signed_by": signing.fingerprint(key.public_key()) if key else None,
            "digest_sha256": hashlib.sha256(signed.payload).hexdigest()}


def verify_report(path: str, public_key: str | None, extract_dir: str | None = None) -> dict[str, Any]:
    """Check a signed report (JSON, HTML or PDF) with the public key; with `extract_dir`, also
    write the signed parts for `openssl pkeyutl -verify -rawin` (see README). Raises
    InvalidReport (exit 1) with one line saying why it does not verify."""
    if public_key is None and extract_dir is None:
        raise UsageError("verify-report needs --public-key FILE (or --extract DIR)")
    container = signing.split_container(_read(path, "report", 1 << 30))
    files = _extract(container, extract_dir) if extract_dir else []
    body = container.signed.body
    out: dict[str, Any] = {"file": path, "format": container.kind, "valid": None, "extracted": files,
                           "repository_id": body.get("repository_id"),
                           "audit_chain_head": body.get("audit_chain_head"),
                           "generated": body.get("generated"),
                           "signer": (body.get("signer") or {}).get("public_key_sha256")}
    if public_key is not None:
        pub = signing.load_public(_read(public_key, "public key"), public_key)
        signing.verify_container(container, pub)
        out["valid"] = True
    return out


def _extract(c: signing.Container, where: str) -> list[str]:
    """report.payload/report.sig (and document.payload/document.sig for HTML and PDF)."""
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot create {where}: {exc.strerror}") from None
    parts = {"report.payload": c.signed.payload, "report.sig": c.signed.signature or b""}
    if c.doc_signature is not None:
        parts["document.payload"] = signing.doc_message(c.signed.payload, c.prefix)
        parts["document.sig"] = c.doc_signature
    paths = []
    for name, data in parts.items():
        _write(os.path.join(where, name), data)
        paths.append(os.path.join(where, name))
    return paths


def keygen(output_dir: str) -> dict[str, Any]:
    """A new Ed25519 key pair as PEM files (the private one mode 0600); never overwrites."""
    priv, pub = signing.new_key_pair()
    key_path, pub_path = os.path.join(output_dir, KEY_NAME), os.path.join(output_dir, PUB_NAME)
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise UsageError(f"{path} exists: keygen never overwrites a key")
    try:
        os.makedirs(output_dir, exist_ok=True)
        for path, data, mode in ((key_path, priv, 0o600), (pub_path, pub, 0o644)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(path, mode)
    except FileExistsError as exc:
        raise UsageError(f"{exc.filename} exists: keygen never overwrites a key") from None
    except OSError as exc:
        raise EnvironmentFailure(f"cannot write the key pair in {output_dir}: {exc.strerror}") from None
    fp = signing.fingerprint(signing.load_public(pub, pub_path))
    return {"private_key": key_path, "public_key": pub_path, "public_key_sha256": fp}
