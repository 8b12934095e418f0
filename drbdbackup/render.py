"""Text renderings of operation results for the command line (JSON is the objects themselves)."""

from __future__ import annotations

from typing import Any


def human(n: float) -> str:
    """Bytes as B / KiB / MiB / GiB / TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def backup_text(d: dict[str, Any]) -> str:
    lines = [
        f"volume {d['volume_id']}: generation {d['generation']} ({d['mode']}, tracker {d['tracker']})",
        f"  size {human(d['size_bytes'])}, read {human(d['read_bytes'])}, changed {human(d['changed_bytes'])}, "
        f"stored {human(d['stored_bytes'])} in {d['duration_s']:.2f}s",
    ]
    if d.get("node"):
        lines.append(f"  read on node {d['node']}")
    if d.get("fallback_reason"):
        lines.append(f"  fallback to a full read: {d['fallback_reason']}")
    if "verification" in d:
        v = d["verification"]
        lines.append(f"  verification: {v.get('verdict', 'pass' if v.get('ok') else 'fail')}"
                     f" ({v.get('chunks_checked', 0)} chunks checked)")
    return "\n".join(lines)


def list_text(gens: list[dict[str, Any]]) -> str:
    if not gens:
        return "no generations"
    rows = [f"{'VOLUME':<24} {'GENERATION':<32} {'MODE':<11} {'TRACKER':<10} {'SIZE':>10} STATUS"]
    for g in gens:
        size = human(g["size_bytes"]) if g.get("size_bytes") is not None else "-"
        status = g["status"] + (f" ({g['problem']})" if g.get("problem") and g["status"] != "ok" else "")
        if g.get("source") == "gone":
            status += ", source gone"
        if g.get("group_incomplete"):
            status += f", group incomplete (missing {', '.join(g['group_incomplete'])})"
        vol = g["volume_id"] + (f" ({', '.join(g['labels'].values())})" if g.get("labels") else "")
        rows.append(f"{vol:<24} {g['generation']:<32} {g.get('mode') or '-':<11} "
                    f"{g.get('tracker') or '-':<10} {size:>10} {status}")
    return "\n".join(rows)


def restore_text(d: dict[str, Any]) -> str:
    return (f"restored {d['volume_id']} generation {d['generation']} to {d['target']} "
            f"({human(d['size_bytes'])} in {d['duration_s']:.2f}s)")


def check_text(d: dict[str, Any]) -> str:
    lines = [f"checked {d['packs_checked']} packs and {d['generations_checked']} generations: "
             + ("no errors" if d["ok"] else f"{len(d['errors'])} error(s)")]
    lines += [f"error: {e}" for e in d["errors"]] + [f"note: {n}" for n in d["notes"]]
    return "\n".join(lines)


def prune_text(d: dict[str, Any]) -> str:
    verb = "would remove" if d["dry_run"] else "removed"
    lines = [f"{verb} {len(d['removed_generations'])} generation(s) and {d['removed_packs']} pack(s) "
             f"({human(d['removed_bytes'])}); kept {len(d['kept_generations'])}"]
    lines += [f"  keep   {g}: {', '.join(why)}" for g, why in d.get("kept_because", {}).items()]
    lines += [f"  remove {g}: {why}" for g, why in d.get("removed_because", {}).items()]
    return "\n".join(lines)


def keys_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'KEY':<34} {'CREATED':<34} {'KDF':<26} STATE"]
    for k in rows:
        state = f"damaged: {k['damaged']}" if k["damaged"] else ("opens with this passphrase"
                                                                  if k["opens"] else "-")
        lines.append(f"{k['key_id']:<34} {k['created'] or '-':<34} {k['kdf'] or '-':<26} {state}")
    return "\n".join(lines)


def key_text(d: dict[str, Any]) -> str:
    if d["action"] == "export":
        return d["paper"].rstrip("\n")
    verb = {"add": "added key", "passwd": "new passphrase for key", "remove": "removed key"}
    return f"{verb[d['action']]} {d['key_id']}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def status_text(d: dict[str, Any]) -> str:
    rows = [f"{'VOLUME':<28} {'NODE':<10} {'LAST GOOD':<32} {'AGE':>7} {'TRACKER':<10} SOURCE"]
    for v in d["volumes"]:
        vol = v["volume_id"] + (f" ({', '.join(v['labels'].values())})" if v.get("labels") else "")
        rows.append(f"{vol:<28} {v['node'] or '-':<10} {v['last_good'] or '-':<32} "
                    f"{_age(v['age_s']):>7} {v['tracker'] or '-':<10} {v['source']}")
    if not d["volumes"]:
        rows = ["no volumes in the repository"]
    if d.get("agents"):
        rows.append("")
        rows.append(f"{'AGENT':<12} {'INSTANCE':<18} {'SEQ':>7} LAST HEARTBEAT")
        rows += [f"{a['node']:<12} {a['instance']:<18} {a['seq']:>7} {a['last_heartbeat']} "
                 f"({_age(a['heartbeat_age_s'])} ago by the repository's clock)" for a in d["agents"]]
    for g in d.get("incomplete_groups", []):
        rows.append(f"INCOMPLETE group snapshot {g['snapshot']}: missing {', '.join(g['missing'])}")
    rows += [f"ALARM: {a}" for a in d.get("alarms", [])]
    if "plan" in d:
        rows.append("")
        for policy, items in d["plan"].items():
            rows.append(f"policy {policy}: {len(items)} resource(s)")
            rows += [f"  {i['resource']}: {i['reason']}"
                     + (f" -> next on {i['agent']}" if i.get("agent") else "") for i in items]
    if "unprotected" in d:
        rows.append("")
        rows.append(f"unprotected: {len(d['unprotected'])} resource(s)")
        rows += [f"  {u['resource']}: {u['reason']}" for u in d["unprotected"]]
    rows += [f"warning: {w}" for w in d.get("warnings", []) + d.get("conflicts", [])]
    return "\n".join(rows)


def report_text(d: dict[str, Any]) -> str:
    """One line for the report, one per volume with its verdicts."""
    signed = f", signed by {d['signed_by'][:16]}…" if d.get("signed_by") else ", unsigned"
    lines = [f"wrote {d['format']} report to {d['output']} ({d['since']} to {d['until']}, "
             f"{d['entries']} audit entries, chain {'intact' if d['chain_ok'] else 'BROKEN'}{signed})"]
    for vid, v in d.get("volumes", {}).items():
        lines.append(f"  {vid}: RPO {v['rpo']}, coverage {v['coverage']}, "
                     f"{len(v['failing_days'])} failing day(s), {v['open_problems']} open problem(s)")
    return "\n".join(lines)


def verify_report_text(d: dict[str, Any]) -> str:
    out = []
    if d["valid"]:
        out.append(f"{d['file']}: valid {d['format']} report of repository {d['repository_id']}, "
                   f"generated {d['generated']}, audit head {d['audit_chain_head']}, key {d['signer']}")
    out += [f"wrote {p}" for p in d.get("extracted", [])]
    return "\n".join(out)


def keygen_text(d: dict[str, Any]) -> str:
    return (f"private key {d['private_key']} (mode 0600: keep it secret)\n"
            f"public key {d['public_key']} (sha256 {d['public_key_sha256']})")
