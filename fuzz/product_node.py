"""drbdbackup's tree reader (format.md sections 7 and 17): one node, then a walk of a tree.

Input: selector byte (fanout), height byte, u32 chunk_count, then nodes, each a u32 length and
its bytes; the first is the root and a child id resolves to node `id[0] % len(nodes)`, so a
mutant can repeat subtrees. Documented error: TreeFormatError (a ValueError). Oracles: a node
holds at most `fanout` ids; a walk never yields more ids than `chunk_count`; it visits at most
one node per id it may yield, times the height (time proportional to the record's count).
"""

import struct
import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import tree

import _common
import _revert_product

HEADER = 6  # selector, height, u32 chunk_count


def split_nodes(raw: bytes) -> list[bytes]:
    nodes: list[bytes] = []
    pos = 0
    while pos + 4 <= len(raw) and len(nodes) < 64:
        (n,) = struct.unpack_from("<I", raw, pos)
        nodes.append(raw[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return nodes


def test_one_input(data: bytes) -> None:
    if len(data) < 6:
        return
    _cs, fanout = _common.config_of(data[0])
    height = data[1]
    (chunk_count,) = struct.unpack_from("<I", data, 2)
    nodes = split_nodes(data[6:])
    if not nodes:
        return
    try:
        _level, ids = tree.decode_node(nodes[0], fanout)
        _common.hold(len(ids), fanout, "node ids")
    except tree.TreeFormatError as exc:
        _common.one_line_str(exc)
    loads = [0]

    def load(nid: bytes) -> bytes:
        loads[0] += 1
        _common.hold(loads[0], (chunk_count + 1) * 65, "nodes visited")
        return nodes[nid[0] % len(nodes)]

    try:
        out = tree.read_chunk_ids(bytes(32), height, load, fanout=fanout, chunk_count=chunk_count)
    except tree.TreeFormatError as exc:
        _common.one_line_str(exc)
        return
    _common.hold(len(out), chunk_count, "chunk ids")


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_product.revert, header=HEADER)
    sys.exit(0)
