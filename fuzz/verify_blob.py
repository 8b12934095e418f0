"""drbdverify's blob decoder (verify/binary.py), read as format.md sections 5 and 17 say.

Input as product_blob.py: selector byte, kind byte, u32 plain_length, the stored blob (unsealed).
Documented error: FormatError. Oracle: plaintext within the format's bound.
"""

import struct
import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import binary, limits
    from verify.errors import FormatError

import _common
import _revert_verify

HEADER = 6  # selector, kind, u32 plain_length


def test_one_input(data: bytes) -> None:
    if len(data) < 6:
        return
    chunk_size, fanout = _common.config_of(data[0])
    kind = data[1] % 2
    (plain_length,) = struct.unpack_from("<I", data, 2)
    lim = limits.BlobLimits(chunk_size, fanout)
    try:
        plain = binary.decode_blob(data[6:], plain_length, lim.max_plain(kind))
    except FormatError as exc:
        _common.one_line_str(exc)
        return
    _common.hold(len(plain), _common.format_max_plain(kind, chunk_size, fanout), "decoded blob")


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_verify.revert, header=HEADER)
    sys.exit(0)
