"""The volume index tree (format.md section 7). Pure: building and parsing nodes.

Reading holds every count against the fanout (at most MAX_FANOUT, format.md section 17) and the
node's bytes before it builds a list, and stops a walk that yields more ids than the record's
chunk_count: a hostile tree cannot make a reader allocate beyond what the record declares.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

NODE_MAGIC = b"DRBT"
NODE_HEADER = struct.Struct("<4sB3xI")
ID_LEN = 32
DEFAULT_FANOUT = 4096
MAX_FANOUT = 1 << 16  # readers refuse larger fanouts (format.md section 17)
MAX_HEIGHT = 64


def max_node_bytes(fanout: int) -> int:
    """Plain length of a full node: the largest tree blob a repository with `fanout` holds."""
    return NODE_HEADER.size + ID_LEN * fanout


class TreeFormatError(ValueError):
    """A node does not parse."""


def encode_node(level: int, ids: list[bytes]) -> bytes:
    return NODE_HEADER.pack(NODE_MAGIC, level, len(ids)) + b"".join(ids)


def decode_node(data: bytes, fanout: int = MAX_FANOUT) -> tuple[int, list[bytes]]:
    """Return (level, ids); the count must be <= fanout and match the node's length."""
    if len(data) < NODE_HEADER.size:
        raise TreeFormatError("tree node too short")
    magic, level, count = NODE_HEADER.unpack_from(data)
    if magic != NODE_MAGIC:
        raise TreeFormatError("tree node magic mismatch")
    if count > fanout:
        raise TreeFormatError(f"tree node holds {count} ids, more than the fanout {fanout}")
    if len(data) != NODE_HEADER.size + count * ID_LEN:
        raise TreeFormatError("tree node length does not match its count")
    off = NODE_HEADER.size
    return level, [data[off + i * ID_LEN : off + (i + 1) * ID_LEN] for i in range(count)]


def build_tree(
    chunk_ids: list[bytes], fanout: int, node_id: Callable[[bytes], bytes]
) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
    """Build all nodes. Returns (root id, height, [(node id, node bytes)])."""
    nodes: list[tuple[bytes, bytes]] = []
    level = 0
    ids = chunk_ids
    while True:
        groups = [ids[i : i + fanout] for i in range(0, len(ids), fanout)] or [[]]
        next_ids = []
        for group in groups:
            data = encode_node(level, group)
            nid = node_id(data)
            nodes.append((nid, data))
            next_ids.append(nid)
        level += 1
        if len(next_ids) == 1:
            return next_ids[0], level, nodes
        ids = next_ids


def walk_tree(
    root: bytes, height: int, load: Callable[[bytes], bytes], *, fanout: int = MAX_FANOUT,
    chunk_count: int | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield (level, node id) for every node, top-down, then the leaves' chunk ids via read_ids.

    With `chunk_count`, a walk that reaches more leaves than the record can have (each holds at
    least one id, only an empty volume's single root leaf none) stops with TreeFormatError; an
    inner node without children is refused. So a tree that repeats a subtree of empty leaves
    cannot make the walk take fanout^height steps (found by fuzzing)."""
    if not 1 <= height <= MAX_HEIGHT:
        raise TreeFormatError(f"tree height {height} out of range [1, {MAX_HEIGHT}]")
    max_leaves = None if chunk_count is None else max(1, chunk_count)
    leaves = 0
    stack = [(height - 1, root)]
    while stack:
        level, nid = stack.pop()
        if level == 0:
            leaves += 1
            if max_leaves is not None and leaves > max_leaves:
                raise TreeFormatError(f"tree has more leaves than its {chunk_count} chunks")
        yield level, nid
        if level > 0:
            lvl, children = decode_node(load(nid), fanout)
            if lvl != level:
                raise TreeFormatError(f"node {nid.hex()} has level {lvl}, expected {level}")
            if not children:
                raise TreeFormatError(f"node {nid.hex()} at level {level} has no children")
            stack.extend((level - 1, c) for c in reversed(children))


def read_chunk_ids(
    root: bytes, height: int, load: Callable[[bytes], bytes], *, fanout: int = MAX_FANOUT,
    chunk_count: int | None = None,
) -> list[bytes]:
    """Return the full chunk-id list of a generation; more than `chunk_count` ids is an error
    raised as soon as it happens (a tree that repeats subtrees cannot inflate the list)."""
    out: list[bytes] = []
    for level, nid in walk_tree(root, height, load, fanout=fanout, chunk_count=chunk_count):
        if level == 0:
            lvl, ids = decode_node(load(nid), fanout)
            if lvl != 0:
                raise TreeFormatError(f"node {nid.hex()} has level {lvl}, expected 0")
            out.extend(ids)
            if chunk_count is not None and len(out) > chunk_count:
                raise TreeFormatError(f"tree lists more than the record's {chunk_count} chunks")
    return out
