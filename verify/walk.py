"""Walking a generation's tree: every node read, re-hashed and held to the construction rule."""

from __future__ import annotations

from collections.abc import Iterator

from .format import (
    FormatError,
    Node,
    Record,
    expected_count,
    level_sizes,
    node_coverage,
    parse_node,
)
from .keys import SealError
from .results import Finding
from .state import RunState
from .store import ObjectMissing

GCM_MISMATCH = "blob does not open (GCM tag mismatch)"


class TreeWalker:
    """Yields the chunk ids of a generation; a bad node is a finding covering its range."""

    def __init__(self, st: RunState) -> None:
        self.st = st
        self._reported: set[tuple[object, ...]] = set()

    def walk(self, ci: int, rec: Record, first: bool) -> Iterator[tuple[int, bytes]]:
        """(position, chunk id) for every position reachable through readable nodes."""
        height = len(level_sizes(rec.chunk_count, self.st.fanout))  # <= 33: depth is bounded
        yield from self._visit(ci, rec, height - 1, 0, rec.root, first)

    def _visit(
        self, ci: int, rec: Record, level: int, index: int, nid: bytes, first: bool
    ) -> Iterator[tuple[int, bytes]]:
        fanout = self.st.fanout
        start, end = node_coverage(level, index, rec.chunk_count, fanout)
        node = self._read_node(ci, rec, nid, level, index, start, end)
        if node is None:
            return
        want = expected_count(level, index, rec.chunk_count, fanout)
        if node.level != level or len(node.ids) != want:
            self.node_finding(
                ci, rec, nid, f"tree node at level {level} #{index} has level {node.level} and "
                f"{len(node.ids)} ids; the construction rule needs {want}", None, start, end,
            )
            return
        if first:
            self.st.checks[ci].tree_nodes_checked += 1
        base = index * fanout
        if level == 0:
            for k, cid in enumerate(node.ids):
                yield base + k, cid
        else:
            for k, child in enumerate(node.ids):
                yield from self._visit(ci, rec, level - 1, base + k, child, first)

    def _read_node(
        self, ci: int, rec: Record, nid: bytes, level: int, index: int, start: int, end: int,
    ) -> Node | None:
        st = self.st
        st.reference(nid)
        plain = None
        for loc in st.repo.good_locations(nid, st.bad):
            try:
                plain = st.repo.read_blob_at(loc)
                break
            except (FormatError, SealError, ObjectMissing) as e:
                st.bad[(nid, loc.pack)] = GCM_MISMATCH if isinstance(e, SealError) else str(e)
        intact = plain is not None
        if plain is None:  # keep walking through a copy in a damaged pack if one still verifies
            for loc in st.repo.locations.get(nid, ()):
                try:
                    plain = st.repo.read_blob_at(loc)
                    break
                except (FormatError, SealError, ObjectMissing):
                    continue
        if not intact:
            self.node_finding(
                ci, rec, nid, f"tree node at level {level} #{index} has no intact copy "
                f"({st.no_copy_reason(nid)}); chunks it covers cannot be restored",
                st.first_pack(nid), start, end,
            )
        if plain is None:
            return None
        try:
            return parse_node(plain, st.fanout)
        except FormatError as e:
            self.node_finding(ci, rec, nid, str(e), st.first_pack(nid), start, end)
            return None

    def node_finding(
        self, ci: int, rec: Record, nid: bytes, msg: str, obj: str | None, start: int, end: int,
    ) -> None:
        """One tree-node finding per (check, node, start), failing every position it covers."""
        key = (ci, nid, start)
        if key in self._reported:
            return
        self._reported.add(key)
        chk = self.st.checks[ci]
        lo = start * rec.chunk_size
        hi = min(end * rec.chunk_size, rec.size_bytes)
        chk.findings.append(
            Finding("tree-node", msg, obj, chk.volume_id, chk.generation, nid.hex(),
                    [(lo, hi)] if hi > lo else [])
        )
        chk.failed_positions.add_range(start, end)
        if rec.chunk_count == 0:
            chk.failed_positions.add(0)  # an empty volume with a bad root is still a failure
