"""Comparing checked chunks with the source volume at the same offsets (``--source``)."""

from __future__ import annotations

import os

from .format import ZERO_ID, chunk_range
from .results import Finding
from .state import RunState


class SourceComparer:
    """Holds the source open for one run; a source that cannot be read leaves ``error`` set."""

    def __init__(self, st: RunState, path: str | None) -> None:
        self.st = st
        self.path = path
        self.fd: int | None = None
        self.error: str | None = None

    def open(self) -> None:
        if self.path is None:
            return
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            self.error = f"source {self.path} cannot be read: {e.strerror}"

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def compare_at(self, ci: int, pos: int, expected: bytes, chunk_hex: str) -> None:
        """Compare one chunk position's bytes with the source; a difference is a finding."""
        chk = self.st.checks[ci]
        rec = self.st.records[ci]
        assert rec is not None and self.fd is not None
        s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
        got = os.pread(self.fd, e - s, s)
        chk.bytes_compared_with_source += len(got)
        if got != expected[: e - s] or len(expected) != e - s:
            what = "shorter than the volume" if len(got) < e - s else "differs"
            chk.findings.append(
                Finding("source-mismatch", f"source {what} from the backup at this chunk",
                        self.path, chk.volume_id, chk.generation, chunk_hex, [(s, e)])
            )
            chk.failed_positions.add(pos)

    def compare_blob(self, bid: bytes, plain: bytes) -> None:
        """Compare a verified chunk with the source at every checked position holding it."""
        if self.fd is None:
            return
        for ci, pos in self.st.needed.get(bid, ()):
            self.compare_at(ci, pos, plain, bid.hex())

    def compare_zero_positions(self) -> None:
        """Zero markers are compared with zero bytes."""
        if self.fd is None:
            return
        for ci, positions in self.st.zero_positions.items():
            rec = self.st.records[ci]
            assert rec is not None
            for pos in positions:
                s, e = chunk_range(pos, rec.size_bytes, rec.chunk_size)
                self.compare_at(ci, pos, bytes(e - s), ZERO_ID.hex())
