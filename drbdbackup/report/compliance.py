"""Compliance reports from the audit log: JSON or HTML, tamper-evident (chain head + digest)."""

from __future__ import annotations

import hashlib
import html
import json
from datetime import datetime

from drbdbackup.errors import IntegrityError, UsageError
from drbdbackup.repo import audit
from drbdbackup.repo.listing import list_generations
from drbdbackup.repo.records import iso, now
from drbdbackup.repo.repository import Repository


def _since(text: str | None) -> str:
    if not text:
        return ""
    try:
        return datetime.fromisoformat(text).isoformat()[:10]
    except ValueError:
        raise UsageError(f"invalid --since date {text!r}: use YYYY-MM-DD") from None


def build_report(repo: Repository, since: str | None = None,
                 unprotected: list[dict[str, str]] | None = None) -> dict:
    """Audit entries (chain checked), generations with status, and a digest over it all."""
    cutoff = _since(since)
    entries, chain_ok, chain_error = [], True, None
    head = audit.GENESIS
    try:
        for e in audit.read_chain(repo.backend):
            head = hashlib.sha256(repo.backend.get(audit.entry_name(e["seq"]))).hexdigest()
            if e["time"][:10] >= cutoff:
                entries.append(e)
    except IntegrityError as exc:
        chain_ok, chain_error = False, str(exc)
    gens = list_generations(repo)
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    body = {
        "report": "drbdbackup compliance report",
        "generated": iso(now()),
        "repository_id": repo.id,
        "since": cutoff or None,
        "audit_chain_ok": chain_ok,
        "audit_chain_error": chain_error,
        "audit_chain_head": head,
        "event_counts": counts,
        "verifications": [e for e in entries if e["event"] == "verify"],
        "failures": [e for e in entries if e["event"] == "failure"],
        "generations": gens,
        "entries": entries,
    }
    if unprotected is not None:
        body["unprotected"] = unprotected
    body["digest_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return body


def _unprotected_html(rep: dict) -> str:
    if "unprotected" not in rep:
        return ""
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(u['resource'])}</td><td class='damaged'>{esc(u['reason'])}</td></tr>"
                   for u in rep["unprotected"])
    return (f"<h2>Unprotected resources ({len(rep['unprotected'])})</h2>"
            f"<table><tr><th>resource</th><th>why</th></tr>{rows}</table>")


def render_html(rep: dict) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(g['volume_id'])}</td><td>{esc(', '.join((g.get('labels') or {}).values()))}</td>"
        f"<td>{esc(g['generation'])}</td><td>{esc(str(g['mode']))}</td>"
        f"<td>{esc(str(g['tracker']))}</td><td>{g['size_bytes']}</td>"
        f"<td class='{esc(g['status'])}'>{esc(g['status'])}</td></tr>"
        for g in rep["generations"]
    )
    events = "".join(
        f"<tr><td>{e['seq']}</td><td>{esc(e['time'])}</td><td>{esc(e['event'])}</td>"
        f"<td><code>{esc(json.dumps(e.get('details', {}), sort_keys=True))}</code></td></tr>"
        for e in rep["entries"]
    )
    chain = "intact" if rep["audit_chain_ok"] else f"BROKEN: {esc(rep['audit_chain_error'] or '')}"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>drbdbackup compliance report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:2px 6px;font-size:90%}}.damaged,.unreadable{{color:#b00;font-weight:bold}}</style>
</head><body>
<h1>drbdbackup compliance report</h1>
<p>Repository <code>{esc(rep['repository_id'])}</code>, generated {esc(rep['generated'])},
entries since {esc(rep['since'] or 'the beginning')}.</p>
<p>Audit chain: <b>{chain}</b>; head <code>{esc(rep['audit_chain_head'])}</code>.
Report digest (SHA-256 of the JSON form): <code>{esc(rep['digest_sha256'])}</code>.</p>
<h2>Generations</h2>
<table><tr><th>volume</th><th>label</th><th>generation</th><th>mode</th><th>tracker</th><th>bytes</th><th>status</th></tr>{rows}</table>
{_unprotected_html(rep)}
<h2>Audit log</h2>
<table><tr><th>seq</th><th>time</th><th>event</th><th>details</th></tr>{events}</table>
</body></html>
"""


def write_report(repo: Repository, fmt: str, output: str, since: str | None = None,
                 unprotected: list[dict[str, str]] | None = None) -> dict:
    rep = build_report(repo, since, unprotected)
    text = json.dumps(rep, indent=1, sort_keys=True) if fmt == "json" else render_html(rep)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    return {
        "output": output,
        "format": fmt,
        "entries": len(rep["entries"]),
        "generations": len(rep["generations"]),
        "chain_ok": rep["audit_chain_ok"],
        "digest_sha256": rep["digest_sha256"],
    }
