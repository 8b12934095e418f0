"""drbdverify's repository config parser (verify/format.py). Documented error: FormatError.
Oracle: an accepted config's chunk size and fanout lie within the format's limits.
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
        cfg = vformat.parse_config(data)
    except FormatError as exc:
        _common.one_line_str(exc)
        return
    cs, fanout = cfg.chunk_size, cfg.tree_fanout
    if not (65536 <= cs <= 4 << 20 and cs & (cs - 1) == 0 and 2 <= fanout <= 65536):
        raise _common.BoundBreach(f"config accepted with chunk_size {cs} fanout {fanout}")


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_verify.revert)
    sys.exit(0)
