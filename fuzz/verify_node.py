"""drbdverify's tree node parser (verify/binary.py) and the construction rule it checks.

Input: selector byte (fanout), u32 chunk_count, then one node. Documented error: FormatError.
Oracles: at most `fanout` ids; the expected count of any node is at most the fanout.
"""

import struct
import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import binary
    from verify.errors import FormatError

import _common
import _revert_verify

HEADER = 5  # selector, u32 chunk_count


def test_one_input(data: bytes) -> None:
    if len(data) < 5:
        return
    _cs, fanout = _common.config_of(data[0])
    (chunk_count,) = struct.unpack_from("<I", data, 1)
    try:
        node = binary.parse_node(data[5:], fanout)
    except FormatError as exc:
        _common.one_line_str(exc)
        return
    _common.hold(len(node.ids), fanout, "node ids")
    sizes = binary.level_sizes(chunk_count, fanout)
    _common.hold(len(sizes), 33, "tree height")
    if node.level < len(sizes):
        want = binary.expected_count(node.level, 0, chunk_count, fanout)
        _common.hold(want, fanout, "expected node count")


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_verify.revert, header=HEADER)
    sys.exit(0)
