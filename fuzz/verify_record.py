"""drbdverify's generation record parser (verify/format.py). Documented error: FormatError.
Oracles: chunk_count <= 2^32, tree_height in [1, 64].
"""

import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import format as vformat
    from verify.errors import FormatError

import _common
import _revert_verify


def test_one_input(data: bytes) -> None:
    try:
        rec = vformat.parse_record(data)
    except FormatError as exc:
        _common.one_line_str(exc)
        return
    _common.hold(rec.chunk_count, 1 << 32, "chunk_count")
    _common.hold(rec.tree_height, 64, "tree_height")


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_verify.revert)
    sys.exit(0)
