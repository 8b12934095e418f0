"""drbdverify's index file parser plus the per-entry limits its repository reader applies
(verify/format.py, verify/limits.py), for 1 MiB chunks and fanout 4096. Documented error:
FormatError. Oracle: every entry the limits accept is within the format's bounds.
"""

import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import format as vformat
    from verify import limits
    from verify.errors import FormatError

import _common
import _revert_verify

CHUNK, FANOUT = 1 << 20, 4096
LIMITS = limits.BlobLimits(CHUNK, FANOUT)


def test_one_input(data: bytes) -> None:
    try:
        blobs = vformat.parse_index(data)
    except FormatError as exc:
        _common.one_line_str(exc)
        return
    for b in blobs:
        if LIMITS.problem(b.kind, b.length, b.plain_length) is None:
            bound = _common.format_max_plain(b.kind, CHUNK, FANOUT)
            _common.hold(b.plain_length, bound, "index plain_length")


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_verify.revert)
    sys.exit(0)
