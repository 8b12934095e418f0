"""The verification pass: structure, content and source comparison.

Phases:

A. per generation: open the record, walk the tree (every node is read and its id re-hashed,
   level/count checked against the construction rule), choose the chunk positions to check;
B. content: read the chosen blobs grouped by pack, each pack once, in pack-offset order
   (``pread`` of the needed ranges, or one sequential pass that also re-hashes the whole pack
   when the selection says so); decode, re-hash, compare with the source;
C. per generation: walk again and name every chunk position and tree node left without an
   intact copy, with the volume byte ranges affected.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import blake3

from .errors import UsageError
from .format import (
    ZERO_ID,
    FormatError,
    IndexBlob,
    Node,
    Record,
    chunk_range,
    expected_count,
    generation_name,
    level_sizes,
    node_coverage,
    pack_name,
    parse_node,
    quarantine_name,
)
from .keys import SealError
from .repository import Repository
from .results import FAIL, NOTE, PASS, UNVERIFIABLE, CheckResult, Finding, RunResult
from .sampler import Selection, confidence_words, escape_probability
from .store import ObjectMissing, ObjectReader

STREAM_BLOCK = 1 << 20


def _hash_through(reader: ObjectReader, h: Any, pos: int, end: int) -> int:
    """Feed bytes [pos, end) of the object into `h`; return where reading stopped."""
    while pos < end:
        b = reader.pread(pos, min(STREAM_BLOCK, end - pos))
        if not b:
            break
        h.update(b)
        pos += len(b)
    return pos


@dataclass
class Options:
    """What to check and how."""

    selection: Selection
    source: str | None = None
    quarantine: bool = True


def select_targets(
    gens: dict[str, list[str]], volume_id: str | None, generation: str | None
) -> list[tuple[str, str]]:
    """(volume, generation) pairs to check; ``generation`` is an id, ``latest`` or ``all``."""
    if volume_id is not None:
        if volume_id not in gens:
            raise UsageError(f"no generations for volume {volume_id}")
        gens = {volume_id: gens[volume_id]}
    out: list[tuple[str, str]] = []
    for vol, gs in gens.items():
        if generation in (None, "latest"):
            out.append((vol, gs[-1]))
        elif generation == "all":
            out.extend((vol, g) for g in gs)
        elif generation in gs:
            out.append((vol, generation))
    if generation not in (None, "latest", "all") and not out:
        raise UsageError(f"generation {generation} not found")
    return out


@dataclass
class _Chunkfail:
    kind: str
    message: str
    object: str | None
    positions: list[int] = field(default_factory=list)


class Verifier:
    """One verification run over a set of generations."""

    def __init__(self, repo: Repository, opts: Options) -> None:
        self.repo = repo
        self.opts = opts
        self.sel = opts.selection
        self.fanout = repo.config.tree_fanout
        self.checks: list[CheckResult] = []
        self.records: list[Record | None] = []
        self.bad: dict[tuple[bytes, str], str] = {}  # (blob id, pack) -> reason
        self.verified: set[bytes] = set()
        self.needed: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        self.zero_positions: dict[int, list[int]] = defaultdict(list)
        self.referenced_packs: set[str] = set()
        self.source_done: set[bytes] = set()
        self._reported: set[tuple[object, ...]] = set()
        self._source_fd: int | None = None
        self._source_error: str | None = None

    # ------------------------------------------------------------ entry point

    def run(self, targets: list[tuple[str, str]]) -> RunResult:
        if self.opts.source is not None and len(targets) != 1:
            raise UsageError("--source needs exactly one volume and generation (use --volume-id)")
        self._open_source()
        try:
            for vol, gen in targets:
                self._phase_a(vol, gen)
            self._phase_b()
            self._compare_zero_positions()
        finally:
            if self._source_fd is not None:
                os.close(self._source_fd)
        for ci in range(len(self.checks)):
            self._phase_c(ci)
        result = RunResult(self.repo.store.location, self.sel.describe(), self.sel.seed, self.checks)
        result.findings = list(self.repo.findings) + self._pack_findings() + self._copy_findings()
        if self.opts.quarantine:
            result.quarantined = self._write_quarantine()
        return result

    # ------------------------------------------------------------ phase A

    def _phase_a(self, vol: str, gen: str) -> None:
        ci = len(self.checks)
        chk = CheckResult(vol, gen, mode=self.sel.mode)
        self.checks.append(chk)
        obj = generation_name(vol, gen)
        rec: Record | None = None
        try:
            rec = self.repo.read_record(vol, gen)
        except ObjectMissing:
            msg = "generation record is missing"
        except SealError:
            msg = "generation record does not open (GCM tag mismatch)"
        except FormatError as e:
            msg = f"generation record is invalid: {e}"
        self.records.append(rec)
        if rec is None:
            chk.findings.append(
                Finding("record", f"{msg}; the whole volume is unrestorable", obj, vol, gen)
            )
            chk.structure_checked = True
            return
        chk.chunks_total = rec.chunk_count
        chk.source = self.opts.source
        sizes = level_sizes(rec.chunk_count, self.fanout)
        if rec.tree_height != len(sizes):
            chk.findings.append(
                Finding("record", f"tree_height {rec.tree_height} but {rec.chunk_count} chunks "
                        f"with fanout {self.fanout} need {len(sizes)} levels", obj, vol, gen,
                        rec.root.hex(), [(0, rec.size_bytes)])
            )
        sample = self.sel.sample_positions(rec.chunk_count, vol, gen)
        for pos, cid in self._walk(ci, rec, first=True):
            hexid = cid.hex()
            chosen = pos in sample if sample is not None else self.sel.id_selected(hexid)
            if chosen:
                s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
                chk.chunks_checked += 1
                chk.bytes_checked += e - s
            if cid == ZERO_ID:
                if chosen:
                    self.zero_positions[ci].append(pos)
                continue
            for loc in self.repo.locations.get(cid, ()):
                self.referenced_packs.add(loc.pack)
            if chosen:
                self.needed[cid].append((ci, pos))
        chk.structure_checked = True
        chk.confidence = confidence_words(self.sel.mode, chk.chunks_checked, chk.chunks_total)
        if self.sel.mode == "sample":
            chk.miss_probability = {
                str(k): round(escape_probability(chk.chunks_checked, chk.chunks_total, k), 6)
                for k in (1, 10)
            }

    def _walk(self, ci: int, rec: Record, first: bool) -> Iterator[tuple[int, bytes]]:
        """(position, chunk id) for every position reachable through readable nodes."""
        height = len(level_sizes(rec.chunk_count, self.fanout))
        yield from self._visit(ci, rec, height - 1, 0, rec.root, first)

    def _visit(
        self, ci: int, rec: Record, level: int, index: int, nid: bytes, first: bool
    ) -> Iterator[tuple[int, bytes]]:
        chk = self.checks[ci]
        start, end = node_coverage(level, index, rec.chunk_count, self.fanout)
        node = self._read_node(ci, rec, nid, level, index, start, end, first)
        if node is None:
            return
        want = expected_count(level, index, rec.chunk_count, self.fanout)
        if node.level != level or len(node.ids) != want:
            self._node_finding(
                ci, rec, nid, "tree-node", f"tree node at level {level} #{index} has level "
                f"{node.level} and {len(node.ids)} ids; the construction rule needs {want}",
                None, start, end,
            )
            return
        if first:
            chk.tree_nodes_checked += 1
        base = index * self.fanout
        if level == 0:
            for k, cid in enumerate(node.ids):
                yield base + k, cid
        else:
            for k, child in enumerate(node.ids):
                yield from self._visit(ci, rec, level - 1, base + k, child, first)

    def _read_node(
        self, ci: int, rec: Record, nid: bytes, level: int, index: int,
        start: int, end: int, first: bool,
    ) -> Node | None:
        for loc in self.repo.locations.get(nid, ()):
            self.referenced_packs.add(loc.pack)
        plain = None
        for loc in self.repo.good_locations(nid, self.bad):
            try:
                plain = self.repo.read_blob_at(loc)
                break
            except (FormatError, SealError, ObjectMissing) as e:
                self.bad[(nid, loc.pack)] = str(e) if not isinstance(e, SealError) else \
                    "blob does not open (GCM tag mismatch)"
        intact = plain is not None
        if plain is None:  # keep walking through a copy in a damaged pack if one still verifies
            for loc in self.repo.locations.get(nid, ()):
                try:
                    plain = self.repo.read_blob_at(loc)
                    break
                except (FormatError, SealError, ObjectMissing):
                    continue
        if not intact:
            reason = self._no_copy_reason(nid)
            self._node_finding(
                ci, rec, nid, "tree-node", f"tree node at level {level} #{index} has no intact "
                f"copy ({reason}); chunks it covers cannot be restored", self._first_pack(nid),
                start, end,
            )
        if plain is None:
            return None
        try:
            return parse_node(plain)
        except FormatError as e:
            self._node_finding(ci, rec, nid, "tree-node", str(e), self._first_pack(nid), start, end)
            return None

    def _node_finding(
        self, ci: int, rec: Record, nid: bytes, kind: str, msg: str, obj: str | None,
        start: int, end: int,
    ) -> None:
        key = (ci, nid, kind, start)
        if key in self._reported:
            return
        self._reported.add(key)
        chk = self.checks[ci]
        lo = start * rec.chunk_size
        hi = min(end * rec.chunk_size, rec.size_bytes)
        chk.findings.append(
            Finding(kind, msg, obj, chk.volume_id, chk.generation, nid.hex(),
                    [(lo, hi)] if hi > lo else [])
        )
        chk.failed_positions.update(range(start, end))
        if rec.chunk_count == 0:
            chk.failed_positions.add(0)  # an empty volume with a bad root is still a failure

    # ------------------------------------------------------------ phase B

    def _phase_b(self) -> None:
        plan: dict[str, list[IndexBlob]] = defaultdict(list)
        for bid in self.needed:
            self._enqueue(bid, plan)
        to_hash = {
            p for p in self.referenced_packs
            if self.sel.pack_hashed(p) and self.repo.pack_state(p).damage is None
        }
        while plan or to_hash:  # later rounds only retry other copies of blobs that failed
            advise = getattr(self.repo.store, "advise", None)
            if advise is not None:  # let the disk work on all sampled ranges at once
                for pid in sorted(set(plan) - to_hash):
                    advise(pack_name(pid), [(loc.offset, loc.length) for loc in plan[pid]])
            for pid in sorted(set(plan) | to_hash):
                locs = sorted(plan.pop(pid, []), key=lambda loc: loc.offset)
                if pid in to_hash:
                    to_hash.discard(pid)
                    self._stream_pack(pid, locs, plan)
                elif locs:
                    self._pread_pack(pid, locs, plan)

    def _enqueue(self, bid: bytes, plan: dict[str, list[IndexBlob]]) -> None:
        good = self.repo.good_locations(bid, self.bad)
        if good:
            plan[good[0].pack].append(good[0])

    def _open_pack(
        self, pid: str, locs: list[IndexBlob], plan: dict[str, list[IndexBlob]]
    ) -> ObjectReader | None:
        """Open a pack; a missing one is marked damaged and its blobs are queued elsewhere."""
        try:
            return self.repo.store.open(pack_name(pid))
        except ObjectMissing:
            self.repo.mark_pack_damaged(pid, "pack is missing")
            for loc in locs:
                self._enqueue(loc.id, plan)
            return None

    def _pread_pack(self, pid: str, locs: list[IndexBlob], plan: dict[str, list[IndexBlob]]) -> None:
        reader = self._open_pack(pid, locs, plan)
        if reader is None:
            return
        try:
            for loc in locs:
                self._take(loc, reader.pread(loc.offset, loc.length), plan)
        finally:
            reader.close()

    def _stream_pack(self, pid: str, locs: list[IndexBlob], plan: dict[str, list[IndexBlob]]) -> None:
        """One sequential pass: re-hash the whole pack, decode the needed blobs on the way."""
        reader = self._open_pack(pid, locs, plan)
        if reader is None:
            return
        h = blake3.blake3()
        pos = 0
        taken: list[IndexBlob] = []
        try:
            for loc in locs:
                if loc.offset < pos:  # overlapping entry: read it on its own
                    self._take(loc, reader.pread(loc.offset, loc.length), plan)
                    continue
                pos = _hash_through(reader, h, pos, loc.offset)
                data = reader.pread(loc.offset, loc.length)
                h.update(data)
                pos += len(data)
                if self._take(loc, data, plan):
                    taken.append(loc)
            _hash_through(reader, h, pos, reader.size)
        finally:
            reader.close()
        if h.hexdigest() != pid:
            reason = "pack content hash differs from its name"
            self.repo.mark_pack_damaged(pid, reason)
            for loc in taken:  # verified copies in a damaged pack do not count: look elsewhere
                self.verified.discard(loc.id)
                self._enqueue(loc.id, plan)

    def _take(self, loc: IndexBlob, stored: bytes, plan: dict[str, list[IndexBlob]]) -> bool:
        """Verify one blob copy; on failure remember it and queue the next copy."""
        try:
            plain = self.repo.decode(loc, stored)
        except SealError:
            self.bad[(loc.id, loc.pack)] = "blob does not open (GCM tag mismatch)"
        except FormatError as e:
            self.bad[(loc.id, loc.pack)] = str(e)
        else:
            self.verified.add(loc.id)
            if loc.id not in self.source_done:
                self.source_done.add(loc.id)
                self._compare_source(loc.id, plain)
            return True
        self._enqueue(loc.id, plan)
        return False

    # ------------------------------------------------------------ source comparison

    def _open_source(self) -> None:
        if self.opts.source is None:
            return
        try:
            self._source_fd = os.open(self.opts.source, os.O_RDONLY)
        except OSError as e:
            self._source_error = f"source {self.opts.source} cannot be read: {e.strerror}"

    def _compare_at(self, ci: int, pos: int, expected: bytes, chunk_hex: str) -> None:
        chk = self.checks[ci]
        rec = self.records[ci]
        assert rec is not None and self._source_fd is not None
        s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
        got = os.pread(self._source_fd, e - s, s)
        chk.bytes_compared_with_source += len(got)
        if got != expected[: e - s] or len(expected) != e - s:
            what = "shorter than the volume" if len(got) < e - s else "differs"
            chk.findings.append(
                Finding("source-mismatch", f"source {what} from the backup at this chunk",
                        self.opts.source, chk.volume_id, chk.generation, chunk_hex, [(s, e)])
            )
            chk.failed_positions.add(pos)

    def _compare_source(self, bid: bytes, plain: bytes) -> None:
        if self._source_fd is None:
            return
        for ci, pos in self.needed.get(bid, ()):
            self._compare_at(ci, pos, plain, bid.hex())

    def _compare_zero_positions(self) -> None:
        if self._source_fd is None:
            return
        for ci, positions in self.zero_positions.items():
            rec = self.records[ci]
            assert rec is not None
            for pos in positions:
                s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
                self._compare_at(ci, pos, bytes(e - s), ZERO_ID.hex())

    # ------------------------------------------------------------ phase C

    def _phase_c(self, ci: int) -> None:
        rec = self.records[ci]
        chk = self.checks[ci]
        if rec is None:
            return
        fails: dict[bytes, _Chunkfail] = {}
        fails_len: dict[tuple[bytes, str], _Chunkfail] = {}
        bad = self.bad
        for pos, cid in self._walk(ci, rec, first=False):
            if cid == ZERO_ID:
                continue
            f = fails.get(cid)
            if f is None:
                if cid not in self.repo.locations:
                    f = _Chunkfail("chunk-missing", "no index file lists this chunk", None)
                elif not self.repo.good_locations(cid, bad):
                    f = _Chunkfail("chunk-damaged", f"no intact copy ({self._no_copy_reason(cid)})",
                                   self._first_pack(cid))
                if f is not None:
                    fails[cid] = f
            if f is None:
                s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
                plen = self.repo.locations[cid][0].plain_length
                if plen == e - s:
                    continue
                key = (cid, "length")
                lf = fails_len.get(key)
                if lf is None:
                    lf = fails_len[key] = _Chunkfail(
                        "chunk-length", f"chunk is {plen} bytes but its position needs {e - s}",
                        self._first_pack(cid))
                lf.positions.append(pos)
                continue
            f.positions.append(pos)
        for cid, f in [*fails.items(), *((k[0], v) for k, v in fails_len.items())]:
            chk.failed_positions.update(f.positions)
            chk.findings.append(
                Finding(f.kind, f.message, f.object, chk.volume_id, chk.generation, cid.hex(),
                        [chunk_range(p, rec.size_bytes, rec.chunk_size) for p in f.positions])
            )
        if self.opts.source is not None:
            err = self._source_error
            if err:
                chk.findings.append(
                    Finding("source-unverifiable", err, self.opts.source, chk.volume_id,
                            chk.generation, severity=UNVERIFIABLE)
                )
                chk.source_status = UNVERIFIABLE
            elif any(f.kind == "source-mismatch" for f in chk.findings):
                chk.source_status = FAIL
            else:
                chk.source_status = PASS

    def _no_copy_reason(self, bid: bytes) -> str:
        reasons = []
        hexid = bid.hex()
        for loc in self.repo.locations.get(bid, ()):
            if (hexid, loc.pack) in self.repo.quarantined:
                why = "quarantined"
            elif (bid, loc.pack) in self.bad:
                why = self.bad[(bid, loc.pack)]
            else:
                why = self.repo.pack_state(loc.pack).damage or "unread"
            reasons.append(f"{pack_name(loc.pack)}: {why}")
        return "; ".join(reasons) if reasons else "no index entry"

    def _first_pack(self, bid: bytes) -> str | None:
        locs = self.repo.locations.get(bid)
        return pack_name(locs[0].pack) if locs else None

    # ------------------------------------------------------------ repository-wide findings

    def _known_bad(self, pid: str) -> bool:
        """Every index entry of the pack is already quarantined (section 11): evidence, not news."""
        ids = [bid for bid, locs in self.repo.locations.items() for loc in locs if loc.pack == pid]
        return bool(ids) and all((bid.hex(), pid) in self.repo.quarantined for bid in ids)

    def _pack_findings(self) -> list[Finding]:
        out = []
        for pid, st in sorted(self.repo.packs.items()):
            if st.damage:
                kind = "pack-missing" if st.missing else "pack-damaged"
                known = self._known_bad(pid)
                msg = f"{st.damage} (already quarantined)" if known else st.damage
                out.append(Finding(kind, msg, pack_name(pid), severity=NOTE if known else FAIL))
        return out

    def _copy_findings(self) -> list[Finding]:
        return [
            Finding("blob-copy", reason, pack_name(pid), chunk_id=bid.hex(),
                    severity=NOTE if (bid.hex(), pid) in self.repo.quarantined else FAIL)
            for (bid, pid), reason in sorted(self.bad.items())
        ]

    def _quarantine_candidates(self) -> dict[tuple[str, str], str]:
        out = {(bid.hex(), pid): reason for (bid, pid), reason in self.bad.items()}
        for pid, st in self.repo.packs.items():
            if st.damage:
                for b in self.repo.by_pack.get(pid, ()):
                    out.setdefault((b.id.hex(), pid), st.damage)
        return {k: v for k, v in out.items() if k not in self.repo.quarantined}

    def _write_quarantine(self) -> list[str]:
        names = []
        now = datetime.now(UTC).isoformat()
        for (hexid, pid), reason in sorted(self._quarantine_candidates().items()):
            rec = {"id": hexid, "pack": pid, "reason": reason, "found_by": "drbdverify", "time": now}
            name = quarantine_name(hexid, pid)
            if self.repo.store.put_exclusive(name, json.dumps(rec).encode()):
                names.append(name)
        return names
