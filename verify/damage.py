"""Phase C and the repository-wide verdicts: what is left without an intact copy, and quarantine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .format import ZERO_ID, chunk_range, pack_name, quarantine_name
from .results import FAIL, NOTE, PASS, UNVERIFIABLE, Finding
from .source import SourceComparer
from .state import RunState
from .walk import TreeWalker


@dataclass
class _Chunkfail:
    kind: str
    message: str
    object: str | None
    positions: list[int] = field(default_factory=list)


def name_failed_chunks(st: RunState, walker: TreeWalker, ci: int, source: SourceComparer) -> None:
    """Walk generation ``ci`` again; name every chunk left without an intact copy or wrong-sized."""
    rec = st.records[ci]
    chk = st.checks[ci]
    if rec is None:
        return
    fails: dict[bytes, _Chunkfail] = {}
    fails_len: dict[bytes, _Chunkfail] = {}
    for pos, cid in walker.walk(ci, rec, first=False):
        if cid == ZERO_ID:
            continue
        f = fails.get(cid)
        if f is None:
            if cid not in st.repo.locations:
                f = _Chunkfail("chunk-missing", "no index file lists this chunk", None)
            elif not st.repo.good_locations(cid, st.bad):
                f = _Chunkfail("chunk-damaged", f"no intact copy ({st.no_copy_reason(cid)})",
                               st.first_pack(cid))
            if f is not None:
                fails[cid] = f
        if f is None:
            s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
            plen = st.repo.locations[cid][0].plain_length
            if plen == e - s:
                continue
            lf = fails_len.get(cid)
            if lf is None:
                lf = fails_len[cid] = _Chunkfail(
                    "chunk-length", f"chunk is {plen} bytes but its position needs {e - s}",
                    st.first_pack(cid))
            lf.positions.append(pos)
            continue
        f.positions.append(pos)
    for cid, f in [*fails.items(), *fails_len.items()]:
        chk.failed_positions.update(f.positions)
        chk.findings.append(
            Finding(f.kind, f.message, f.object, chk.volume_id, chk.generation, cid.hex(),
                    [chunk_range(p, rec.size_bytes, rec.chunk_size) for p in f.positions])
        )
    if source.path is not None:
        if source.error:
            chk.findings.append(
                Finding("source-unverifiable", source.error, source.path, chk.volume_id,
                        chk.generation, severity=UNVERIFIABLE)
            )
            chk.source_status = UNVERIFIABLE
        elif any(f.kind == "source-mismatch" for f in chk.findings):
            chk.source_status = FAIL
        else:
            chk.source_status = PASS


def _known_bad(st: RunState, pid: str) -> bool:
    """Every index entry of the pack is already quarantined (section 11): evidence, not news."""
    ids = [b.id for b in st.repo.by_pack.get(pid, ())]
    return bool(ids) and all((bid.hex(), pid) in st.repo.quarantined for bid in ids)


def pack_findings(st: RunState) -> list[Finding]:
    """A finding per missing or damaged pack (a note when it is already quarantined)."""
    out = []
    for pid, ps in sorted(st.repo.packs.items()):
        if ps.damage:
            kind = "pack-missing" if ps.missing else "pack-damaged"
            known = _known_bad(st, pid)
            msg = f"{ps.damage} (already quarantined)" if known else ps.damage
            out.append(Finding(kind, msg, pack_name(pid), severity=NOTE if known else FAIL))
    return out


def copy_findings(st: RunState) -> list[Finding]:
    """A finding per bad blob copy (a note when it is already quarantined)."""
    return [
        Finding("blob-copy", reason, pack_name(pid), chunk_id=bid.hex(),
                severity=NOTE if (bid.hex(), pid) in st.repo.quarantined else FAIL)
        for (bid, pid), reason in sorted(st.bad.items())
    ]


def _quarantine_candidates(st: RunState) -> dict[tuple[str, str], str]:
    out = {(bid.hex(), pid): reason for (bid, pid), reason in st.bad.items()}
    for pid, ps in st.repo.packs.items():
        if ps.damage:
            for b in st.repo.by_pack.get(pid, ()):
                out.setdefault((b.id.hex(), pid), ps.damage)
    return {k: v for k, v in out.items() if k not in st.repo.quarantined}


def write_quarantine(st: RunState) -> list[str]:
    """Write a quarantine record for every bad copy not yet quarantined; return their names."""
    names = []
    now = datetime.now(UTC).isoformat()
    for (hexid, pid), reason in sorted(_quarantine_candidates(st).items()):
        rec = {"id": hexid, "pack": pid, "reason": reason, "found_by": "drbdverify", "time": now}
        name = quarantine_name(hexid, pid)
        if st.repo.store.put_exclusive(name, json.dumps(rec).encode()):
            names.append(name)
    return names
