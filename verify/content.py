"""Phase B: read the chosen blobs grouped by pack, each pack once, in offset order.

``pread`` of just the needed ranges, or one sequential pass that also re-hashes the whole pack
when the selection says so; each copy is decoded, re-hashed and compared with the source.
A copy that fails is remembered and the next copy of the blob is queued.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import blake3

from .format import FormatError, IndexBlob, pack_name
from .keys import SealError
from .source import SourceComparer
from .state import RunState
from .store import ObjectMissing, ObjectReader
from .walk import GCM_MISMATCH

STREAM_BLOCK = 1 << 20
Plan = dict[str, list[IndexBlob]]


def _hash_through(reader: ObjectReader, h: Any, pos: int, end: int) -> int:
    """Feed bytes [pos, end) of the object into `h`; return where reading stopped."""
    while pos < end:
        b = reader.pread(pos, min(STREAM_BLOCK, end - pos))
        if not b:
            break
        h.update(b)
        pos += len(b)
    return pos


class ContentPass:
    """Reads and verifies every needed blob once, re-hashing the packs the selection names."""

    def __init__(self, st: RunState, source: SourceComparer) -> None:
        self.st = st
        self.source = source
        self.source_done: set[bytes] = set()

    def run(self) -> None:
        st = self.st
        plan: Plan = defaultdict(list)
        for bid in st.needed:
            self._enqueue(bid, plan)
        to_hash = {
            p for p in st.referenced_packs
            if st.sel.pack_hashed(p) and st.repo.pack_state(p).damage is None
        }
        while plan or to_hash:  # later rounds only retry other copies of blobs that failed
            advise = getattr(st.repo.store, "advise", None)
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

    def _enqueue(self, bid: bytes, plan: Plan) -> None:
        good = self.st.repo.good_locations(bid, self.st.bad)
        if good:
            plan[good[0].pack].append(good[0])

    def _open_pack(self, pid: str, locs: list[IndexBlob], plan: Plan) -> ObjectReader | None:
        """Open a pack; a missing one is marked damaged and its blobs are queued elsewhere."""
        try:
            return self.st.repo.store.open(pack_name(pid))
        except ObjectMissing:
            self.st.repo.mark_pack_damaged(pid, "pack is missing")
            for loc in locs:
                self._enqueue(loc.id, plan)
            return None

    def _pread_pack(self, pid: str, locs: list[IndexBlob], plan: Plan) -> None:
        reader = self._open_pack(pid, locs, plan)
        if reader is None:
            return
        try:
            for loc in locs:
                self._take(loc, reader.pread(loc.offset, loc.length), plan)
        finally:
            reader.close()

    def _stream_pack(self, pid: str, locs: list[IndexBlob], plan: Plan) -> None:
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
            self.st.repo.mark_pack_damaged(pid, "pack content hash differs from its name")
            for loc in taken:  # verified copies in a damaged pack do not count: look elsewhere
                self.st.verified.discard(loc.id)
                self._enqueue(loc.id, plan)

    def _take(self, loc: IndexBlob, stored: bytes, plan: Plan) -> bool:
        """Verify one blob copy; on failure remember it and queue the next copy."""
        try:
            plain = self.st.repo.decode(loc, stored)
        except SealError:
            self.st.bad[(loc.id, loc.pack)] = GCM_MISMATCH
        except FormatError as e:
            self.st.bad[(loc.id, loc.pack)] = str(e)
        else:
            self.st.verified.add(loc.id)
            if loc.id not in self.source_done:
                self.source_done.add(loc.id)
                self.source.compare_blob(loc.id, plain)
            return True
        self._enqueue(loc.id, plan)
        return False
