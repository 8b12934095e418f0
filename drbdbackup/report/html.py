"""The HTML form of the report: one self-contained file (inline CSS, no script runs, nothing
loaded from the network), a timeline per volume (one cell per day, coloured by its status),
readable when printed. The signed JSON sits in a `drbdbackup-signed` script block."""

from __future__ import annotations

import html
from typing import Any

from drbdbackup.report.coverage import NOTE
from drbdbackup.report.volume import COLOURS

esc = html.escape

CSS = """body{font-family:sans-serif;margin:2em;color:#212121}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #999;padding:2px 6px;font-size:85%;vertical-align:top;text-align:left}
.timeline{display:flex;flex-wrap:wrap;gap:3px;margin:.5em 0}
.day{width:7.2em;min-height:3.6em;padding:3px;font-size:75%;border:1px solid #616161;color:#fff}
.day.d-pending,.day.d-not-protected-yet,.day.d-future{color:#212121}
.fail,.damaged,.unreadable,.violation{color:#c62828;font-weight:bold}.pass,.ok,.compliant{color:#2e7d32}
code{font-size:90%;word-break:break-all}h2{border-bottom:2px solid #424242;margin-top:1.5em}
ul{padding-left:1.2em;margin:0}
@media print{body{margin:0;font-size:10pt}table{width:100%;table-layout:fixed}.day{-webkit-print-color-adjust:exact;print-color-adjust:exact}
h2{break-after:avoid}table,.timeline{break-inside:auto}tr{break-inside:avoid}}"""


def _bytes(n: object) -> str:
    if not isinstance(n, int):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _cls(verdict: object) -> str:
    return esc(str(verdict))


def _summary_rows(s: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, value, class) for one volume's summary."""
    cov, rpo, ret = s["coverage"], s["rpo"], s["retention"]
    restore = s["last_verified_restore"]
    return [
        ("label", esc(", ".join(s["labels"].values()) or "-"), ""),
        ("policy", esc(s["policy"] or "none (no policy names this volume)"), ""),
        ("covered days", f"{s['covered_days']} with a backup, {s['judged_days']} judged, "
                         f"{len(s['failing_days'])} failing: {esc(', '.join(s['failing_days']) or 'none')}", ""),
        ("RPO", f"RPO {rpo['seconds'] // 3600}h ({esc(rpo['source'])}): {esc(rpo['verdict'].upper())}",
         _cls(rpo["verdict"])),
        ("last good generation", esc(str(s["last_good_generation"])), ""),
        ("last verified restore",
         esc(f"{restore['generation']} at {restore['time']}") if restore else "none", ""),
        ("coverage", f"coverage: oldest unverified chunk {cov['oldest_unverified_age_days']} days old "
                     f"({'target ' + str(cov['target_days']) if cov['target_days'] else 'no target'}): "
                     f"{esc(cov['verdict'].upper())}", _cls(cov["verdict"])),
        ("retention", f"retention {esc(ret['verdict'])}", _cls(ret["verdict"])),
        ("open problems", "<ul>" + ("".join(f"<li>{esc(p)}</li>" for p in s["open_problems"]) or "<li>none</li>")
         + "</ul>", ""),
    ]


def _summary(rep: dict[str, Any]) -> str:
    out = ["<h2>Summary</h2><p>Days are UTC. A day without a backup fails whatever the RPO; a day "
           "is late when the newest backup was older than the RPO at some moment of it. Coverage: "
           f"{esc(NOTE)}.</p>"]
    for s in rep["summary"]:
        rows = "".join(f"<tr><th>{k}</th><td class='{c}'>{v}</td></tr>" for k, v, c in _summary_rows(s))
        out.append(f"<h3>{esc(s['volume_id'])}</h3><table class='summary'>{rows}</table>")
    return "".join(out)


def _cell(d: dict[str, Any]) -> str:
    marks = []
    if d["backups"]:
        marks.append(f"{len(d['backups'])} backup(s)")
    if d["failed_backups"]:
        marks.append(f"{len(d['failed_backups'])} failed")
    if d["verifications"]:
        marks.append("verify FAIL" if d["verification_failed"] else "verified")
    if d["restores"]:
        marks.append("restore")
    if d["prunes"]:
        marks.append("prune")
    if d["quarantines"]:
        marks.append("quarantine")
    return (f"<div class='day d-{esc(d['status'])}' data-day='{d['day']}' data-status='{esc(d['status'])}' "
            f"style='background-color:{d['colour']}'><b>{d['day']}</b><br>{esc(d['status'])}"
            f"<br>{esc(', '.join(marks))}</div>")


def _legend() -> str:
    return "<p>" + " ".join(f"<span class='day d-{k}' style='background-color:{c};display:inline-block;"
                             f"min-height:0;width:auto'>{k}</span>" for k, c in COLOURS.items()) + "</p>"


def _verification(c: dict[str, Any]) -> str:
    return (f"<li class='{_cls(c['verdict'])}'>{esc(c['selection'])} of {esc(str(c['generation']))}: "
            f"{c['chunks_checked']} of {c['chunks_total']} chunks read, {c['chunks_failed']} failed, "
            f"{_bytes(c['bytes_compared_with_source'])} compared with the source; "
            f"{esc(c['confidence'])}; verdict {esc(str(c['verdict']).upper())}</li>")


def _day_row(d: dict[str, Any]) -> str:
    backups = "".join(
        f"<li>{esc(str(b['generation']))}: {esc(str(b['mode']))}, tracker {esc(str(b['tracker']))}"
        f"{' (' + esc(str(b['tracker_reason'])) + ')' if b.get('tracker_reason') else ''}"
        f"{', fallback: ' + esc(str(b['fallback_reason'])) if b.get('fallback_reason') else ''}; "
        f"{_bytes(b['size_bytes'])}, read {_bytes(b['read_bytes'])}, changed {_bytes(b['changed_bytes'])}, "
        f"stored {_bytes(b['stored_bytes'])}</li>" for b in d["backups"])
    backups += "".join(f"<li class='fail'>FAILED at {esc(f['time'])}: {esc(str(f['message']))}</li>"
                       for f in d["failed_backups"])
    checks = "".join(_verification(c) for c in d["verifications"])
    other = "".join(f"<li>restore of {esc(str(r['generation']))}"
                    f"{' verified against drbdverify (drill)' if r.get('verified_by') or r.get('drill') else ''}</li>"
                    for r in d["restores"])
    other += "".join(f"<li class='{_cls(p['verdict'])}'>prune removed {len(p['removed'])}: {esc(p['why'])}</li>"
                     for p in d["prunes"])
    other += "".join(f"<li class='fail'>{q['records']} blob copies quarantined</li>" for q in d["quarantines"])
    colour = d["colour"] if d["status"] in ("ok", "late", "missed") else "#616161"
    return (f"<tr><td>{d['day']}</td><td style='color:{colour}'><b>{esc(d['status'])}</b></td>"
            f"<td><ul>{backups}</ul></td><td><ul>{checks}</ul></td><td><ul>{other}</ul></td></tr>")


def _volume(v: dict[str, Any]) -> str:
    heal = "".join(
        f"<li class='{'ok' if h['healed_at'] else 'fail'}'>{esc(h['generation'])} failed at {esc(h['failed_at'])}"
        f" ({h['chunks_failed']} chunks): {('healed at ' + esc(h['healed_at'])) if h['healed_at'] else 'NOT healed'},"
        f" now {esc(h['current_status'])}</li>" for h in v["summary"]["healing"])
    rows = "".join(_day_row(d) for d in v["days"] if d["status"] not in ("future",))
    return (f"<section class='volume' data-volume='{esc(v['volume_id'])}'><h2>Volume {esc(v['volume_id'])}</h2>"
            f"<h3>Timeline</h3><div class='timeline'>{''.join(_cell(d) for d in v['days'])}</div>"
            + (f"<h3>Quarantine and healing</h3><ul>{heal}</ul>" if heal else "")
            + "<h3>Per day</h3><table><tr><th>day</th><th>status</th><th>generations</th>"
            f"<th>verification evidence</th><th>restores, prunes, quarantine</th></tr>{rows}</table></section>")


def _tail(rep: dict[str, Any]) -> str:
    ctl = "".join(f"<tr><td>{esc(c['control'])}</td><td>{esc(c['objective'])}</td><td>{esc(c['evidence'])}</td>"
                  f"<td>{esc(c['status'])}</td></tr>" for c in rep["controls"])
    gens = "".join(
        f"<tr><td>{esc(g['volume_id'])}</td><td>{esc(', '.join((g.get('labels') or {}).values()))}</td>"
        f"<td>{esc(g['generation'])}</td><td>{esc(str(g['mode']))}</td><td>{esc(str(g['tracker']))}</td>"
        f"<td>{g['size_bytes']}</td><td class='{esc(g['status'])}'>{esc(g['status'])}</td></tr>"
        for g in rep["generations"])
    out = ("<h2>Control families</h2><table><tr><th>control</th><th>objective</th><th>evidence in this report</th>"
           f"<th>status</th></tr>{ctl}</table>")
    if "unprotected" in rep:
        rows = "".join(f"<tr><td>{esc(u['resource'])}</td><td class='damaged'>{esc(u['reason'])}</td></tr>"
                       for u in rep["unprotected"])
        out += (f"<h2>Unprotected resources ({len(rep['unprotected'])})</h2>"
                f"<table><tr><th>resource</th><th>why</th></tr>{rows}</table>")
    return out + ("<h2>Retained generations</h2><table><tr><th>volume</th><th>label</th><th>generation</th>"
                  f"<th>mode</th><th>tracker</th><th>bytes</th><th>status</th></tr>{gens}</table>")


def render_html(rep: dict[str, Any], block: bytes) -> bytes:
    """The whole document; `block` is the script block with the signed JSON."""
    chain = "intact" if rep["audit_chain_ok"] else f"BROKEN: {esc(rep['audit_chain_error'] or '')}"
    signer = rep.get("signer")
    signed = (f"Signed with Ed25519 key <code>{esc(signer['public_key_sha256'])}</code> (SHA-256 of the raw "
              "public key); check with <code>drbdbackup verify-report FILE --public-key KEY.pub</code>."
              if signer else "This report is not signed.")
    problems = "".join(f"<li>{esc(p)}</li>" for p in rep["open_problems"]) or "<li>none</li>"
    problems += "".join(f"<li>note: {esc(w)}</li>" for w in rep.get("audit_warnings", []))
    head = (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>drbdbackup compliance report</title>"
            f"<style>{CSS}</style></head><body><h1>drbdbackup compliance report</h1>"
            f"<p>Repository <code>{esc(rep['repository_id'])}</code>, days {rep['since']} to {rep['until']} (UTC), "
            f"generated {esc(rep['generated'])}.</p><p>Audit chain: <b>{chain}</b>; head "
            f"<code>{esc(rep['audit_chain_head'])}</code>. {signed}</p>"
            f"<h2>Open problems</h2><ul>{problems}</ul>")
    body = _summary(rep) + _legend() + "".join(_volume(v) for v in rep["volumes"]) + _tail(rep)
    return (head + body).encode() + block + b"\n</body></html>\n"
