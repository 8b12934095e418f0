"""drbdbackup's blob decoder (format.md sections 5 and 17).

Input: selector byte (repository chunk size and fanout, see _common.config_of), kind byte,
u32 plain_length (as a TOC or index entry states it), the stored blob. Documented error: BlobError.
Oracle: the plaintext is never larger than the format's bound for the kind in that repository.
"""

import struct
import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import blob

import _common
import _revert_product

HEADER = 6  # selector, kind, u32 plain_length


def test_one_input(data: bytes) -> None:
    if len(data) < 6:
        return
    chunk_size, fanout = _common.config_of(data[0])
    kind = data[1] % 2
    (plain_length,) = struct.unpack_from("<I", data, 2)
    limit = blob.max_plain_length(kind, chunk_size, fanout)
    try:
        plain = blob.decode_blob(data[6:], bytes(32), None, plain_length, limit=limit)
    except blob.BlobError as exc:
        _common.one_line_str(exc)
        return
    _common.hold(len(plain), _common.format_max_plain(kind, chunk_size, fanout), "decoded blob")


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_product.revert, header=HEADER)
    sys.exit(0)
