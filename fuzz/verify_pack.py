"""drbdverify's pack reader (verify/binary.py): header, trailer, TOC, then every listed blob.

Input as product_pack.py: selector byte, then a whole pack (unsealed). Documented error:
FormatError. Oracle: each plaintext within the format's bound.
"""

import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import binary, limits
    from verify.errors import FormatError

import _common
import _revert_verify

HEADER = 1  # selector


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    chunk_size, fanout = _common.config_of(data[0])
    raw = data[1:]
    lim = limits.BlobLimits(chunk_size, fanout)
    try:
        binary.parse_pack_header(raw[:16])
        toc_offset, toc_len = binary.parse_pack_trailer(raw[-12:], len(raw))
        entries = binary.parse_toc(raw[toc_offset : toc_offset + toc_len], toc_offset, lim)
    except FormatError as exc:
        _common.one_line_str(exc)
        return
    for e in entries:
        try:
            plain = binary.decode_blob(raw[e.offset : e.offset + e.stored_length], e.plain_length,
                                       lim.max_plain(e.kind))
        except FormatError as exc:
            _common.one_line_str(exc)
            continue
        _common.hold(len(plain), _common.format_max_plain(e.kind, chunk_size, fanout), "blob")


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_verify.revert, header=HEADER)
    sys.exit(0)
