"""Reports: text for people, JSON for scripts, JUnit XML for CI."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from .results import EMPTY, EMPTY_MESSAGE, FAIL, NOTE, PASS, UNVERIFIABLE, CheckResult, RunResult


def to_json(run: RunResult) -> dict[str, Any]:
    """One JSON object; top-level per-check fields are filled when exactly one check ran."""
    one = run.checks[0] if len(run.checks) == 1 else None
    return {
        "ok": run.ok,
        "verdict": run.verdict,
        "repository": run.repository,
        "selection": run.selection,
        "seed": run.seed,
        "volume_id": one.volume_id if one else None,
        "generation": one.generation if one else None,
        "chunks_total": sum(c.chunks_total for c in run.checks),
        "chunks_checked": sum(c.chunks_checked for c in run.checks),
        "chunks_failed": sum(c.chunks_failed for c in run.checks),
        "bytes_checked": sum(c.bytes_checked for c in run.checks),
        "bytes_compared_with_source": sum(c.bytes_compared_with_source for c in run.checks),
        "confidence": one.confidence if one else [c.confidence for c in run.checks],
        "findings": [f.to_json() for f in run.all_findings()],
        "checks": [c.to_json() for c in run.checks],
        "quarantined": run.quarantined,
        "audit_entry": run.audit_entry,
    }


def _check_line(c: CheckResult) -> str:
    line = f"{c.volume_id} {c.generation}: {c.verdict.upper()}  {c.summary()}"
    if c.source is not None:
        line += f"; source {c.source}: {c.bytes_compared_with_source} bytes compared"
    return line


def to_text(run: RunResult) -> str:
    """Human-readable report, one finding per line."""
    out = [f"drbdverify: repository {run.repository}, {run.selection}"]
    if run.empty:
        out.append(EMPTY_MESSAGE)
    for c in run.checks:
        out.append(_check_line(c))
        if c.confidence:
            out.append(f"  confidence: {c.confidence}")
        out.extend(f"  {f.line()}" for f in c.findings)
    if run.findings:
        out.append("repository:")
        out.extend(f"  {f.line()}" for f in run.findings)
    if run.quarantined:
        out.append(f"quarantined {len(run.quarantined)} blob copies")
    if run.audit_entry:
        out.append(f"audit entry {run.audit_entry}")
    out.append(f"verdict: {run.verdict.upper()}")
    return "\n".join(out) + "\n"


def _case(suite: ET.Element, classname: str, name: str, verdict: str, summary: str,
          details: list[str]) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    body = "\n".join(details)
    if verdict == EMPTY:
        ET.SubElement(case, "skipped", message=summary)
    elif verdict == FAIL:
        el = ET.SubElement(case, "failure", message=summary[:500], type="integrity")
        el.text = body
    elif verdict == UNVERIFIABLE:
        el = ET.SubElement(case, "error", message=summary[:500], type="unverifiable")
        el.text = body
    ET.SubElement(case, "system-out").text = summary


def to_junit(run: RunResult, elapsed: float = 0.0) -> bytes:
    """JUnit XML: one testcase per (volume, generation), plus one for repository-wide checks."""
    cases: list[tuple[str, str, str, str, list[str]]] = []
    for c in run.checks:
        first = c.findings[0].line() if c.findings else c.summary()
        cases.append((f"drbdverify.{c.volume_id}", c.generation, c.verdict,
                      first, [c.summary(), c.confidence] + [f.line() for f in c.findings]))
    severities = {f.severity for f in run.findings}
    repo_verdict = FAIL if FAIL in severities else (
        UNVERIFIABLE if UNVERIFIABLE in severities else PASS)
    if run.verdict == EMPTY:
        cases.append(("drbdverify.repository", "generations", EMPTY, EMPTY_MESSAGE,
                      [f.line() for f in run.findings]))
    else:
        cases.append(("drbdverify.repository", "structure", repo_verdict,
                      next((f.line() for f in run.findings if f.severity != NOTE),
                           "packs, indexes and audit log intact"),
                      [f.line() for f in run.findings]))
    failures = sum(1 for c in cases if c[2] == FAIL)
    errors = sum(1 for c in cases if c[2] == UNVERIFIABLE)
    skipped = str(sum(1 for c in cases if c[2] == EMPTY))
    root = ET.Element("testsuites", name="drbdverify", tests=str(len(cases)),
                      failures=str(failures), errors=str(errors), skipped=skipped,
                      time=f"{elapsed:.3f}")
    suite = ET.SubElement(
        root, "testsuite", name=f"drbdverify {run.selection}", tests=str(len(cases)),
        failures=str(failures), errors=str(errors), skipped=skipped, time=f"{elapsed:.3f}",
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), hostname=socket.gethostname(),
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="repository", value=run.repository)
    ET.SubElement(props, "property", name="seed", value=str(run.seed))
    for case in cases:
        _case(suite, *case)
    ET.SubElement(suite, "system-out").text = to_text(run)
    ET.SubElement(suite, "system-err").text = ""
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
